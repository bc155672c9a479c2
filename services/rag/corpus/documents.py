"""The corpus' unit of storage: a document with its exact text."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Document", "LoadReport", "corpus_id"]


@dataclass(frozen=True, slots=True)
class Document:
    """A document as stored in the bundle; evidence offsets index into `text`."""

    id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def canonical(self) -> bytes:
        return json.dumps(
            [self.id, self.title, self.text, self.metadata], ensure_ascii=False, sort_keys=True
        ).encode("utf-8")


@dataclass(slots=True)
class LoadReport:
    """What loading a corpus skipped or repaired, so a build can say so and record it."""

    warnings: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append({"source": source, "reason": reason})
        self.warnings.append(f"skipped {source}: {reason}")


def corpus_id(documents: list[Document]) -> str:
    """Content hash of the corpus: same documents (in any file order) → same id."""
    digest = hashlib.sha256()
    for doc_hash in sorted(hashlib.sha256(d.canonical()).hexdigest() for d in documents):
        digest.update(doc_hash.encode())
    return digest.hexdigest()[:16]
