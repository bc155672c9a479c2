"""Index bundle: Builder, manifest, verifying loader; BM25 and dense indexes behind small classes."""

from .builder import Builder, BuildResult
from .bundle import Bundle, parse_manifest, read_manifest, record_evaluation, verify_bundle
from .lexical import Bm25Index, Bm25Params, Tokenizer
from .manifest import FORMAT_VERSION, Evaluation, Manifest

__all__ = [
    "FORMAT_VERSION",
    "Bm25Index",
    "Bm25Params",
    "BuildResult",
    "Builder",
    "Bundle",
    "Evaluation",
    "Manifest",
    "Tokenizer",
    "parse_manifest",
    "read_manifest",
    "record_evaluation",
    "verify_bundle",
]
