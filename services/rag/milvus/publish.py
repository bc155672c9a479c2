"""Load a bundle version into Milvus, check it, and point channels (aliases) at versions.

A version's collection is written once: rows in batches, a flush, then loaded and checked (its row count is
the bundle's, and a probe search finds a unit from its own vector) before any alias may point at it. A
collection that exists already is checked, not rewritten, so publishing again is safe. Switching an alias is
one call on the server: every pod's next search goes to the new collection, none to half of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Bm25Params
from ..errors import MilvusError
from ..index import Bundle
from .schema import (
    MAX_TEXT_BYTES,
    alias_name,
    collection_name,
    collection_schema,
    description,
    index_params,
    version_of,
)

__all__ = ["Published", "point_alias", "publish_bundle", "resolve_alias", "row_count"]

_BATCH = 2_000  # rows per insert: well under the server's 64 MB gRPC message limit at 768 dimensions


@dataclass(frozen=True)
class Published:
    collection: str
    version: str
    rows: int
    created: bool  # False: the collection was there already and passed the checks


def publish_bundle(
    client: Any,
    bundle: Bundle,
    version: str,
    prefix: str,
    *,
    bm25: bool = True,
    bm25_params: Bm25Params | None = None,
) -> Published:
    """Load `bundle` into `<prefix>_v_<version>` (unless it is there) and check it. BM25 in the engine takes
    `bm25_params` (k1, b, title weight): the bundle's defaults unless given."""
    p = bm25_params or Bm25Params()
    name = collection_name(prefix, version)
    manifest = bundle.manifest
    if client.has_collection(name) and _interrupted(client, name, bundle, version):
        client.drop_collection(name)  # an earlier publish of this version stopped half-way: write it again
    created = not client.has_collection(name)
    if created:
        desc = description(version, manifest.corpus_id, manifest.embedding_model.fingerprint)
        schema = collection_schema(manifest.embedding_model.dim, bm25, desc, manifest.build.stemmer)
        client.create_collection(name, schema=schema, index_params=index_params(client, bm25, p.k1, p.b))
        for rows in _rows(bundle, round(p.title_weight)):
            client.insert(name, rows)
        client.flush(name)
    client.load_collection(name)
    _check(client, name, bundle, version)
    return Published(name, version, bundle.seg.n_units, created)


def _rows(bundle: Bundle, title_repeats: int) -> Iterator[list[dict[str, Any]]]:
    seg = bundle.seg
    for start in range(0, seg.n_units, _BATCH):
        units = np.arange(start, min(start + _BATCH, seg.n_units))
        vectors = bundle.unit_vectors[units]
        yield [_row(bundle, int(u), vectors[i], title_repeats) for i, u in enumerate(units)]


def _row(bundle: Bundle, unit: int, vector: np.ndarray, title_repeats: int) -> dict[str, Any]:
    seg = bundle.seg
    doc = bundle.documents[int(seg.unit_doc[unit])]
    first, last = int(seg.unit_first[unit]), int(seg.unit_last[unit])
    start, end = int(seg.sent_start[first]), int(seg.sent_end[last - 1])
    # The bundle's BM25 counts a title term `title_weight` times in every unit of its document, and its
    # length the same way: one text field with the title written that many times has those statistics.
    text = " ".join([doc.title] * title_repeats + [doc.text[start:end]]) if doc.title else doc.text[start:end]
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise MilvusError(
            f"unit {unit} of {doc.id!r} is {len(text.encode()):,} bytes; a Milvus text field holds "
            f"{MAX_TEXT_BYTES:,} (build with RAG_UNIT=sentence or passage to publish to Milvus)"
        )
    sentences: list[list[int | str | None]] = []
    for s in range(first, last):
        at = int(seg.sent_start[s])
        sentences.append(
            [int(seg.sent_idx[s]), at, int(seg.sent_end[s]), doc.page_at(at), doc.section_at(at)]
        )
    return {
        "unit": unit,
        "vector": vector.tolist(),
        "text": text,
        "doc_id": doc.id,
        "doc_row": int(seg.unit_doc[unit]),
        "char_start": start,
        "char_end": end,
        "sentences": {"items": sentences},  # an object: Milvus before 2.4 refuses a JSON array
        "filters": _filter_values(doc.id, doc.title, doc.metadata),
    }


def _filter_values(doc_id: str, title: str, metadata: dict[str, Any]) -> dict[str, list[str]]:
    """Every filterable field as a list of strings: the bundle compares filter values as strings (`2024`
    matches 2024 and "2024") and list fields by membership, and so does a `json_contains_any` on these."""
    values: dict[str, list[str]] = {"doc_id": [doc_id], "title": [title]}
    for key, value in metadata.items():
        items = value if isinstance(value, list) else [value]
        kept = [str(v) for v in items if isinstance(v, str | int | float | bool)]
        if kept:
            values[key] = kept
    return values


def _interrupted(client: Any, name: str, bundle: Bundle, version: str) -> bool:
    """This version's collection, with fewer rows than the bundle has units. Milvus (milvus-lite) cannot
    rename a collection, so there is no write-then-rename; pods refuse such a collection (`/ready` compares
    the count) and a new publish replaces it."""
    found = version_of(client.describe_collection(name).get("description", ""))
    if found.get("version") != version or found.get("corpus") != bundle.manifest.corpus_id:
        return False
    return bool(row_count(client, name) < bundle.seg.n_units)


def row_count(client: Any, name: str, **call: Any) -> int:
    return int(client.query(name, filter="", output_fields=["count(*)"], **call)[0]["count(*)"])


def _check(client: Any, name: str, bundle: Bundle, version: str) -> None:
    found = version_of(client.describe_collection(name).get("description", ""))
    if found.get("version") != version or found.get("corpus") != bundle.manifest.corpus_id:
        raise MilvusError(f"collection {name} holds {found or 'something else'}, not version {version}")
    counted = row_count(client, name)
    if counted != bundle.seg.n_units:
        raise MilvusError(f"collection {name} has {counted} rows; the bundle has {bundle.seg.n_units} units")
    if bundle.seg.n_units:
        probe = int(bundle.seg.n_units // 2)
        vector = bundle.unit_vectors[np.array([probe])][0]
        hits = client.search(
            name, data=[vector.tolist()], anns_field="vector", limit=5, output_fields=["unit"]
        )
        if probe not in {int(hit["id"]) for hit in hits[0]}:
            raise MilvusError(f"collection {name}: a search with unit {probe}'s own vector does not find it")


def point_alias(client: Any, prefix: str, channel: str, version: str) -> str | None:
    """Point the channel's alias at the version's collection; returns the version it pointed at before."""
    target = collection_name(prefix, version)
    if not client.has_collection(target):
        raise MilvusError(f"version {version} is not published to Milvus (no collection {target})")
    alias = alias_name(prefix, channel)
    previous = resolve_alias(client, alias)
    if previous is None:
        client.create_alias(target, alias)
    else:
        client.alter_alias(target, alias)
    return previous[1] if previous else None


def resolve_alias(client: Any, alias: str) -> tuple[str, str] | None:
    """(collection, version) an alias points at, or None when there is no such alias."""
    try:
        collection = client.describe_alias(alias)["collection_name"]
    except Exception as exc:  # pymilvus raises MilvusException with a server code; absent = not found
        if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
            return None
        raise
    found = version_of(client.describe_collection(collection).get("description", ""))
    return collection, found.get("version", "")
