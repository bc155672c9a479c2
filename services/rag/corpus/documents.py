"""The corpus' unit of storage: a document with its exact text, and the structure read from its file."""

from __future__ import annotations

import bisect
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["PROSE", "Block", "BlockKind", "Document", "LoadReport", "corpus_id"]

BlockKind = Literal["heading", "paragraph", "list_item", "table", "code"]
PROSE: frozenset[str] = frozenset(("paragraph", "list_item"))  # split into sentences, not into lines


@dataclass(frozen=True, slots=True)
class Block:
    """A span of a document's text with its kind and the headings above it (`section`, " › "-joined).

    By default only prose blocks are cut into sentences (`BuildConfig.evidence_blocks` can add tables and
    code); a heading never is: it is context, not an answer."""

    start: int
    end: int
    kind: BlockKind
    section: str = ""


@dataclass(frozen=True, slots=True)
class Document:
    """A document as stored in the bundle; evidence offsets index into `text`.

    `blocks` (ordered, not overlapping) come from files with structure (Markdown, HTML, PDF, DOCX); without
    them the whole text is prose. `page_starts[i]` is the offset where page i + 1 begins (PDF; DOCX when it
    records page breaks); empty when pages are unknown."""

    id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    blocks: tuple[Block, ...] = ()
    page_starts: tuple[int, ...] = ()

    def canonical(self) -> bytes:
        fields: list[Any] = [self.id, self.title, self.text, self.metadata]
        if self.blocks or self.page_starts:  # documents without structure keep the ids they always had
            fields += [[[b.start, b.end, b.kind, b.section] for b in self.blocks], list(self.page_starts)]
        return json.dumps(fields, ensure_ascii=False, sort_keys=True).encode("utf-8")

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding `offset`, or None when pages are unknown."""
        if not self.page_starts:
            return None
        return max(1, bisect.bisect_right(self.page_starts, offset))

    def section_at(self, offset: int) -> str | None:
        """The headings above `offset`, " › "-joined, or None outside any section."""
        block = self.block_at(offset)
        return (block.section or None) if block is not None else None

    def block_at(self, offset: int) -> Block | None:
        if not self.blocks:
            return None
        i = bisect.bisect_right(self.blocks, offset, key=lambda b: b.start) - 1
        return self.blocks[i] if i >= 0 and offset < self.blocks[i].end else None


@dataclass(slots=True)
class LoadReport:
    """What loading a corpus skipped or repaired, so a build can say so and record it."""

    warnings: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    # warning index → (file, reason) of a skipped record: 5,000 empty records of a file print as four lines
    _record_skips: dict[int, tuple[str, str]] = field(default_factory=dict, repr=False)

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append({"source": source, "reason": reason})
        self.warnings.append(f"skipped {source}: {reason}")

    def skip_record(self, source: str, record: str, reason: str) -> None:
        """One record of a file skipped (recorded as `source (record)`, as a whole file's skip is)."""
        self._record_skips[len(self.warnings)] = (source, reason)
        self.skip(f"{source} ({record})", reason)

    def summary(self, shown: int = 3) -> list[str]:
        """The warnings for a person to read: past the first `shown` records a file skips for one reason, the
        rest of them as one count. `warnings` and `skipped` keep every one."""
        totals = Counter(self._record_skips.values())
        seen: Counter[tuple[str, str]] = Counter()
        lines = []
        for index, warning in enumerate(self.warnings):
            key = self._record_skips.get(index)
            if key is not None:
                seen[key] += 1
                if seen[key] > shown:
                    if seen[key] == totals[key]:
                        lines.append(f"skipped {seen[key] - shown} more records of {key[0]}: {key[1]}")
                    continue
            lines.append(warning)
        return lines


def corpus_id(documents: list[Document]) -> str:
    """Content hash of the corpus: same documents (in any file order) → same id."""
    digest = hashlib.sha256()
    for doc_hash in sorted(hashlib.sha256(d.canonical()).hexdigest() for d in documents):
        digest.update(doc_hash.encode())
    return digest.hexdigest()[:16]
