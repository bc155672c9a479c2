"""`rag models import`: take an ONNX model folder as Hugging Face, Optimum, fastembed or Xenova publish it.

Such a folder holds a graph (`model.onnx`, or `onnx/model.onnx` / `onnx/model_quantized.onnx`, or
`model_optimized.onnx`), a fast tokenizer (`tokenizer.json`) and often, not always, `config.json`. Importing
describes it once — kind, pooling, prefixes, max length, vocabulary, dimension — in `rag_model.json`, and records
the SHA-256 of every file in `manifest.json`; from then on the onnx backend loads and verifies it like a folder
made by `rag models export`. What cannot be detected is asked for (`--pooling`), never guessed silently, and a
folder that is not a usable model fails in one line naming what is wrong.

Detection, first that answers: the option given; the folder's sentence-transformers files (`1_Pooling/`,
`config_sentence_transformers.json`, `sentence_bert_config.json`); the model family in its name (bge: CLS
pooling and its query instruction; e5: mean pooling and "query: "/"passage: "). The graph itself is run once on
a short input to learn its output's rank and width, and once with the tokenizer's highest token id, so a
tokenizer of another model is refused here rather than at the first query that uses a rare word.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ModelError
from ..files import sha256_file, staged_dir, write_json_atomic
from .base import default_max_length, known_prefixes, pooling_mode

if TYPE_CHECKING:
    from .onnx_backend import OnnxModelSpec

__all__ = ["GRAPH_CANDIDATES", "ImportOptions", "import_model_folder", "is_importable"]

Kind = Literal["embedder", "cross-encoder"]
# Where publishers put the graph, in the order one is taken when the folder holds several.
GRAPH_CANDIDATES = ("model.onnx", "model_optimized.onnx", "onnx/model.onnx", "onnx/model_quantized.onnx")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "config.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
)
_POOLING_FAMILIES = (
    ("bge-", "cls"),
    ("e5-", "mean"),
    ("minilm", "mean"),
    ("mpnet", "mean"),
    ("gte-", "mean"),
)
_OUTPUTS: dict[str, Kind] = {"last_hidden_state": "embedder", "logits": "cross-encoder"}


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What the caller knows better than detection; None = detect."""

    kind: Kind | None = None
    name: str | None = None
    pooling: Literal["mean", "cls"] | None = None
    query_prefix: str | None = None
    passage_prefix: str | None = None
    max_seq_length: int | None = None
    graph: str | None = None  # a path inside the folder, when it holds several graphs
    # a calibrated abstention threshold to record: a cross-encoder's probability, or an embedder's cosine (the
    # confidence of answers served without a reranker)
    abstain_threshold: float | None = None
    calibrated_with: str = ""  # how that threshold was found (models, data, rule)


def is_importable(folder: Path) -> bool:
    """A folder that holds a tokenizer and a graph, and no PyTorch weights (a hub repository with both is
    exported from its weights, as `rag models export` and `preload` do)."""
    has_graph = any((folder / g).is_file() for g in GRAPH_CANDIDATES)
    has_weights = any(folder.glob("*.safetensors")) or (folder / "pytorch_model.bin").is_file()
    return (folder / "tokenizer.json").is_file() and has_graph and not has_weights


def import_model_folder(
    source: str | Path, out: str | Path | None = None, options: ImportOptions = ImportOptions()
) -> OnnxModelSpec:
    """Describe `source` in `out` (default: in `source` itself) and return the spec. `out`, when given, is a new
    folder holding the graph as `model.onnx` and the tokenizer files, written whole or not at all."""
    from .onnx_backend import MODEL_FILE, SPEC_FILE, OnnxModelSpec, write_model_manifest

    source = Path(source)
    if not source.is_dir():
        raise ModelError(f"{source}: not a folder")
    graph = _graph_file(source, options.graph, in_place=out is None)
    fields = _describe(source, graph, options)
    try:
        spec = OnnxModelSpec(**fields)
    except ValueError as exc:
        raise ModelError(f"{source}: {exc}") from None
    if out is None:
        write_json_atomic(source / SPEC_FILE, spec.to_json())
        write_model_manifest(source, [SPEC_FILE, MODEL_FILE, *_present(source)])
        return spec
    with staged_dir(Path(out)) as work:
        shutil.copyfile(graph, work / MODEL_FILE)
        for name_ in _present(source):
            shutil.copyfile(source / name_, work / name_)
        write_json_atomic(work / SPEC_FILE, spec.to_json())
        write_model_manifest(work, [SPEC_FILE, MODEL_FILE, *_present(work)])
    return spec


# ---- detection ----------------------------------------------------------------------------------------------


def _describe(source: Path, graph: Path, options: ImportOptions) -> dict[str, Any]:
    """The spec's fields: what the options say, else what the folder's files and a probe run detect."""
    tokenizer = _tokenizer(source)
    config = _json(source / "config.json")
    name = options.name or _model_name(source, config)
    probe = _probe(graph, tokenizer, options.kind)
    kind = probe["kind"]
    fields: dict[str, Any] = {
        "kind": kind,
        "source_model": name,
        "fingerprint": f"onnx-sha256:{sha256_file(graph)}",
        "max_seq_length": options.max_seq_length or _max_length(source),
        "vocab_size": _vocab_size(config, tokenizer),
        "export": {
            "imported": {"graph": graph.relative_to(source).as_posix(), "detected": probe["detected"]},
            "quantization": "int8" if _is_quantized(graph) else None,
        },
    }
    if options.abstain_threshold is not None:
        fields["calibration"] = {
            "abstain_threshold": options.abstain_threshold,
            "with": options.calibrated_with,
        }
    if kind == "embedder":
        query, passage = known_prefixes(name, str(source))
        fields |= {
            "pooling": options.pooling or _pooling(source, name),
            "normalize": True,  # the EmbeddingModel contract: vectors are L2-normalised
            "dim": probe["dim"],
            "query_prefix": query if options.query_prefix is None else options.query_prefix,
            "passage_prefix": passage if options.passage_prefix is None else options.passage_prefix,
        }
    return fields


def _graph_file(folder: Path, chosen: str | None, in_place: bool) -> Path:
    if chosen is not None:
        path = folder / chosen
        if not path.is_file():
            raise ModelError(f"{path}: no such graph file")
    else:
        found = [g for g in GRAPH_CANDIDATES if (folder / g).is_file()]
        if not found:
            raise ModelError(f"{folder}: no ONNX graph (looked for {', '.join(GRAPH_CANDIDATES)})")
        path = folder / found[0]
    if in_place and path.relative_to(folder).as_posix() != "model.onnx":
        raise ModelError(
            f"{folder}: the graph is {path.relative_to(folder)}; import it into a new folder with --out"
        )
    return path


def _tokenizer(folder: Path) -> Any:
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ModelError(f"{folder}: no tokenizer.json (a fast tokenizer file is needed)")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
        raise ModelError(f"{path}: cannot be read ({exc})") from None
    tokenizer.no_padding()  # some publish it padded to a fixed 512
    tokenizer.enable_truncation(max_length=32)
    return tokenizer


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def _model_name(folder: Path, config: dict[str, Any]) -> str:
    """config.json's `_name_or_path` (a sentence-transformers cache folder `BAAI_bge-small-en` → the hub id),
    else the folder's name."""
    recorded = str(config.get("_name_or_path") or "").rstrip("/")
    if recorded:
        last = recorded.split("/")[-1]
        if "sentence_transformers" in recorded.split("/")[:-1]:  # its cache names BAAI/x as BAAI_x
            return last.replace("_", "/", 1)
        return last if recorded.startswith(("/", ".")) else recorded
    return folder.name


def _pooling(folder: Path, name: str) -> str:
    for config_path in sorted(folder.glob("*_Pooling/config.json")):
        return pooling_mode(folder, _json(config_path))
    lowered = name.lower()
    for marker, mode in _POOLING_FAMILIES:
        if marker in lowered:
            return mode
    raise ModelError(f"{folder}: pooling unknown for {name!r}: pass --pooling mean or --pooling cls")


def _max_length(folder: Path) -> int:
    bert = _json(folder / "sentence_bert_config.json").get("max_seq_length")
    limit = default_max_length(folder)
    return min(limit, bert) if isinstance(bert, int) and bert > 1 else limit


def _vocab_size(config: dict[str, Any], tokenizer: Any) -> int:
    size = config.get("vocab_size")
    return (
        size if isinstance(size, int) and size > 0 else int(tokenizer.get_vocab_size(with_added_tokens=True))
    )


_QUANTIZED_OPS = (b"MatMulInteger", b"DynamicQuantizeLinear", b"QLinearMatMul")


def _is_quantized(graph: Path) -> bool:
    """A graph with integer-quantised operators (what int8 exports hold), found by their names in the file,
    read in chunks: a graph can be larger than the memory a worker should spend on this."""
    overlap = max(map(len, _QUANTIZED_OPS)) - 1
    tail = b""
    with graph.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            window = tail + chunk
            if any(op in window for op in _QUANTIZED_OPS):
                return True
            tail = window[-overlap:]
    return False


def _probe(graph: Path, tokenizer: Any, kind: Kind | None) -> dict[str, Any]:
    """Run the graph on a short input (and on the tokenizer's highest id): its kind, output width and rank."""
    import onnxruntime as ort

    try:
        options = ort.SessionOptions()
        options.log_severity_level = 4  # a failing probe is reported once, by ModelError
        session = ort.InferenceSession(str(graph), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/… types
        raise ModelError(f"{graph}: cannot be loaded by onnxruntime ({type(exc).__name__}: {exc})") from None
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    unknown = [n for n in inputs if n not in ("input_ids", "attention_mask", "token_type_ids")]
    if unknown or "input_ids" not in inputs:
        raise ModelError(f"{graph}: unsupported graph inputs {inputs}")
    kinds = {out: k for out, k in _OUTPUTS.items() if out in outputs}
    if kind is None:
        if len(kinds) != 1:
            raise ModelError(
                f"{graph}: outputs {outputs}: an embedder needs last_hidden_state, a cross-encoder logits"
            )
        kind = next(iter(kinds.values()))
    output = next((o for o, k in _OUTPUTS.items() if k == kind), "")
    if output not in outputs:
        raise ModelError(f"{graph}: has no output {output!r} for a {kind} (outputs: {', '.join(outputs)})")
    encoding = (
        tokenizer.encode("what is a probe", "a probe is a short input")
        if kind == "cross-encoder"
        else (tokenizer.encode("what is a probe"))
    )
    ids = np.asarray([encoding.ids], dtype=np.int64)
    feed = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "token_type_ids": np.asarray([encoding.type_ids], dtype=np.int64),
    }
    feed = {n: feed[n] for n in inputs}
    # The highest id first: a tokenizer of another model fails here, and is named as the likely cause.
    highest = tokenizer.get_vocab_size(with_added_tokens=True) - 1
    _run(session, graph, output, feed | {"input_ids": np.full_like(ids, highest)}, highest=highest)
    result = _run(session, graph, output, feed)
    rank = 3 if kind == "embedder" else 2
    if result.ndim != rank:
        raise ModelError(f"{graph}: {output} has rank {result.ndim}, a {kind} gives rank {rank}")
    detected = {"kind": kind, "output": output, "output_width": int(result.shape[-1]), "inputs": inputs}
    return {"kind": kind, "dim": int(result.shape[-1]), "detected": detected}


def _run(session: Any, graph: Path, output: str, feed: dict[str, Any], highest: int | None = None) -> Any:
    try:
        return np.asarray(session.run([output], feed)[0])
    except Exception as exc:  # onnxruntime's own error types
        what = f"token id {highest} (the tokenizer's highest)" if highest is not None else "a short input"
        raise ModelError(
            f"{graph}: fails on {what}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            + (" — a tokenizer of another model?" if highest is not None else "")
        ) from None


def _present(folder: Path) -> list[str]:
    return [name for name in _TOKENIZER_FILES if (folder / name).is_file()]
