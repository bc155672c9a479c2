"""Index bundle: writer, manifest, verifying loader; BM25 and dense indexes behind small classes."""

from .bundle import Bundle, parse_manifest, read_manifest, record_evaluation, verify_bundle
from .lexical import Bm25Index, Bm25Params, Tokenizer
from .manifest import FORMAT_VERSION, Evaluation, Manifest
from .writer import BuildResult, build_bundle

__all__ = [
    "FORMAT_VERSION",
    "Bm25Index",
    "Bm25Params",
    "BuildResult",
    "Bundle",
    "Evaluation",
    "Manifest",
    "Tokenizer",
    "build_bundle",
    "parse_manifest",
    "read_manifest",
    "record_evaluation",
    "verify_bundle",
]
