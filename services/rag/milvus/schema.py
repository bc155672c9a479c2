"""How a bundle version lives in Milvus: one collection per version, one row per retrieval unit, one alias
per channel.

A row holds what candidate retrieval needs (the unit's vector, its text for Milvus' BM25, filterable fields)
and what evidence needs of it (document, character span, its sentences with page and section), so a pod can
answer from a collection without the bundle's vectors.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigError

__all__ = [
    "FIELDS",
    "MAX_TEXT_BYTES",
    "alias_name",
    "collection_name",
    "collection_schema",
    "index_params",
    "version_of",
]

# Milvus VARCHAR holds at most 65,535 bytes: a longer unit (a `document` unit) cannot be published.
MAX_TEXT_BYTES = 65_535
FIELDS = ("unit", "doc_id", "doc_row", "char_start", "char_end", "sentences", "filters", "text")
_NAME = re.compile(r"[^A-Za-z0-9_]")


def collection_name(prefix: str, version: str) -> str:
    """`{prefix}_v_{version}`: Milvus names allow letters, digits and underscores only, so other characters
    of a version (`20261203T0510-abc.1`) become `_`; the version itself is kept in the collection's
    description, which is what `version_of` reads."""
    return f"{_checked_prefix(prefix)}_v_{_NAME.sub('_', version)}"


def alias_name(prefix: str, channel: str) -> str:
    return f"{_checked_prefix(prefix)}_c_{_NAME.sub('_', channel)}"


def _checked_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", prefix):
        raise ConfigError(
            f"bad Milvus prefix {prefix!r}: a letter, then letters, digits and '_' (64 at most)"
        )
    return prefix


def description(version: str, corpus_id: str, model_fingerprint: str) -> str:
    return f"rag bundle version={version} corpus={corpus_id} embedding={model_fingerprint}"


def version_of(collection_description: str) -> dict[str, str]:
    """The version, corpus and embedding fingerprint a collection was published from (its description)."""
    parts = collection_description.split()
    if not parts or parts[0] != "rag":
        return {}
    return dict(part.split("=", 1) for part in parts[1:] if "=" in part)


def collection_schema(dim: int, bm25: bool, desc: str, stemmer: str = "english") -> Any:
    """The row layout. With `bm25`, Milvus (2.5 and later) derives a sparse BM25 vector from `text` at insert
    and scores it at search: the lexical half of hybrid retrieval runs in the engine. Its `english` analyzer
    (lowercase, English stop words, Snowball stemming) is the bundle's tokenizer in kind; a bundle built
    without stemming gets the `standard` one."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=desc)
    schema.add_field("unit", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    analyzer = {"type": "english" if stemmer == "english" else "standard"}
    text_options: dict[str, Any] = {"enable_analyzer": True, "analyzer_params": analyzer} if bm25 else {}
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES, **text_options)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=4096)
    schema.add_field("doc_row", DataType.INT64)
    schema.add_field("char_start", DataType.INT64)
    schema.add_field("char_end", DataType.INT64)
    schema.add_field(
        "sentences", DataType.JSON
    )  # {"items": [[index in document, start, end, page, section]]}
    schema.add_field("filters", DataType.JSON)  # {field: [values as strings]}: doc_id, title, metadata
    if bm25:
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
    return schema


def index_params(client: Any, bm25: bool, k1: float, b: float) -> Any:
    """FLAT inner product: exact, so the collection ranks as the bundle's flat index does (milvus-lite
    accepts FLAT, IVF_FLAT and AUTOINDEX; a cluster may re-index a published collection with HNSW)."""
    params = client.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="IP")
    if bm25:
        params.add_index(
            "sparse",
            index_type="SPARSE_INVERTED_INDEX",
            metric_type="BM25",
            params={"bm25_k1": k1, "bm25_b": b},
        )
    return params
