"""ONNX Runtime backend: serving without torch. Needs only onnxruntime, tokenizers and numpy.

A model folder made by `rag models export` holds `model.onnx`, the tokenizer files, `rag_model.json` (what the
model is: kind, pooling, prefixes, max length, the source model's name and weights fingerprint, how it was
exported) and `manifest.json` (the SHA-256 of every file). Loading verifies every checksum and checks that the
tokenizer fits the model, so a changed, missing or mismatched file fails at startup, naming the file.

One `OnnxSession` runs the graph for both model kinds; `OnnxEmbedder` and `OnnxCrossEncoder` only differ in
what they tokenize and how they turn the graph's output into vectors or scores.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ModelError
from ..files import sha256_file, write_json_atomic
from .base import ModelIdentity, encode_in_chunks
from .ort_threads import configure_threads
from .vocabulary import unread_share

__all__ = [
    "MANIFEST_FILE",
    "MODEL_FILE",
    "SPEC_FILE",
    "OnnxCrossEncoder",
    "OnnxEmbedder",
    "OnnxModelSpec",
    "OnnxSession",
    "read_model_folder",
    "verify_model_files",
    "write_model_manifest",
]

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
SPEC_FILE = "rag_model.json"
MANIFEST_FILE = "manifest.json"
SPEC_FORMAT = 1
KINDS = ("embedder", "cross-encoder")
POOLINGS = ("mean", "cls")
# Graph inputs this backend knows how to fill; any other declared input is refused at load.
_FEEDABLE = ("input_ids", "attention_mask", "token_type_ids")
_CHUNK = 2048  # texts tokenized at once: bounds memory, drives the progress bar
_MAX_PADDING = 1.2  # a batch is padded to at most 1.2× the length of its shortest member
# Padded tokens per batch. ONNX Runtime's arena keeps the largest batch's activations for the life of the
# process, and attention grows with batch × width²: with a bge-base-sized reranker on 512-token pairs, 1,024
# tokens per batch held a worker at +155 MB over its weights and 2,048 at +313 MB, no faster (docs/BENCHMARKS.md).
DEFAULT_MAX_BATCH_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class OnnxModelSpec:
    """The contents of `rag_model.json`; validates itself."""

    kind: str
    source_model: str
    fingerprint: str  # weights fingerprint of the SOURCE model, so bundles built with it are accepted
    max_seq_length: int
    vocab_size: int
    pooling: str | None = None  # embedders: "mean" | "cls"
    normalize: bool = False
    query_prefix: str = ""
    passage_prefix: str = ""
    dim: int | None = None  # embedders: the vector size
    export: dict[str, Any] = field(default_factory=dict)
    # cross-encoders: {"abstain_threshold": probability, "with": what it was calibrated with and how}
    calibration: dict[str, Any] = field(default_factory=dict)
    format: int = SPEC_FORMAT

    def __post_init__(self) -> None:
        problems = []
        if self.format != SPEC_FORMAT:
            problems.append(f"format {self.format} (this version reads {SPEC_FORMAT})")
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} (expected one of {', '.join(KINDS)})")
        if self.kind == "embedder":
            if self.pooling not in POOLINGS:
                problems.append(f"pooling {self.pooling!r} (expected one of {', '.join(POOLINGS)})")
            if not self.dim or self.dim < 1:
                problems.append(f"dim {self.dim!r}")
        if not self.source_model or not self.fingerprint:
            problems.append("no source model name or fingerprint")
        if self.max_seq_length < 2:
            problems.append(f"max_seq_length {self.max_seq_length}")
        if self.vocab_size < 1:
            problems.append(f"vocab_size {self.vocab_size}")
        threshold = self.calibration.get("abstain_threshold")
        low, what = (0.0, "a probability") if self.kind == "cross-encoder" else (-1.0, "a cosine")
        if threshold is not None and not (isinstance(threshold, int | float) and low <= threshold <= 1.0):
            problems.append(f"calibration abstain_threshold {threshold!r} ({what})")
        if problems:
            raise ValueError("; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OnnxModelSpec:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        return cls(**data)


def read_model_folder(folder: str | Path, kind: str | None = None, *, verify: bool = True) -> OnnxModelSpec:
    """Read `rag_model.json`, after verifying every file against `manifest.json` (unless `verify` is False:
    the caller then runs `verify_model_files` itself). Any problem → ModelError."""
    folder = Path(folder)
    if verify:
        verify_model_files(folder)
    spec_path = folder / SPEC_FILE
    try:
        spec = OnnxModelSpec.from_json(json.loads(spec_path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ModelError(f"{spec_path}: cannot be read ({exc.strerror or exc})") from None
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{spec_path}: invalid ({exc})") from None
    if kind is not None and spec.kind != kind:
        raise ModelError(f"{spec_path}: this folder holds a model of kind {spec.kind!r}, not {kind!r}")
    return spec


def _model_file_sha256(folder: Path) -> str:
    """The graph's checksum as the folder's manifest records it (verified at load)."""
    files = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))["files"]
    return str(files[MODEL_FILE]["sha256"])


def write_model_manifest(folder: Path, names: Iterable[str] | None = None) -> None:
    """Record each file's SHA-256 and size in `manifest.json`, which `verify_model_files` checks at load.
    `names`: the files to list (default: every file under the folder)."""
    if names is None:
        names = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    listed = sorted(set(names) - {MANIFEST_FILE})
    files = {
        name: {"sha256": sha256_file(folder / name), "bytes": (folder / name).stat().st_size}
        for name in listed
    }
    write_json_atomic(folder / MANIFEST_FILE, {"files": files})


def verify_model_files(folder: Path) -> None:
    """Every file listed in `manifest.json` exists and has its SHA-256; the essential files are listed."""
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ModelError(f"{manifest_path}: missing (not an ONNX model folder made by `rag models export`?)")
    try:
        files = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
        expected = {str(name): str(entry["sha256"]) for name, entry in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{manifest_path}: unreadable ({type(exc).__name__}: {exc})") from None
    for name in (MODEL_FILE, TOKENIZER_FILE, SPEC_FILE):
        if name not in expected:
            raise ModelError(f"{manifest_path}: does not list {name}")
    for name, sha256 in sorted(expected.items()):
        path = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ModelError(f"{manifest_path}: file name {name!r} points outside the folder")
        if not path.is_file():
            raise ModelError(f"{path}: missing (listed in {MANIFEST_FILE})")
        if sha256_file(path) != sha256:
            raise ModelError(f"{path}: checksum does not match {MANIFEST_FILE} (file changed or corrupt)")


class OnnxSession:
    """One ONNX Runtime session: checked providers, full graph optimisation, explicit threads, int64 inputs."""

    def __init__(
        self,
        path: str | Path,
        *,
        threads: int,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        profile_dir: str | Path | None = None,
        profile_name: str = "session",
    ) -> None:
        import onnxruntime as ort

        path = Path(path)
        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise ModelError(
                f"onnxruntime provider(s) {', '.join(missing)} not available (have {', '.join(available)})"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        configure_threads(options, threads)
        options.log_severity_level = 3  # errors only: fusion notes are not the operator's business
        if profile_dir is not None:
            # ONNX Runtime's own per-operator trace: a sampling profiler sees one opaque native call here.
            Path(profile_dir).mkdir(parents=True, exist_ok=True)
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(profile_dir) / f"{profile_name}-{os.getpid()}")
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/… types
            raise ModelError(
                f"{path}: cannot be loaded by onnxruntime ({type(exc).__name__}: {exc})"
            ) from None
        self.path = path
        self._profiling = profile_dir is not None
        if self._profiling:
            atexit.register(self.end_profiling)  # the trace is only written when profiling ends
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.outputs = {o.name: list(o.shape) for o in self._session.get_outputs()}
        unknown = [name for name in self.input_names if name not in _FEEDABLE]
        if unknown or "input_ids" not in self.input_names:
            raise ModelError(
                f"{path}: unsupported graph inputs {self.input_names} (known: {', '.join(_FEEDABLE)})"
            )

    def end_profiling(self) -> Path | None:
        """Write the operator trace (chrome://tracing JSON) and stop profiling; None when it was not on."""
        if not self._profiling:
            return None
        self._profiling = False
        return Path(self._session.end_profiling())

    def run(self, output: str, features: dict[str, np.ndarray]) -> np.ndarray:
        """Feed only the inputs the graph declares, as int64; return one output."""
        feed = {name: np.asarray(features[name], dtype=np.int64) for name in self.input_names}
        result: list[Any] = self._session.run([output], feed)
        return np.asarray(result[0])


def _special_token(folder: Path, key: str) -> str | None:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get(key)
        except ValueError:
            raise ModelError(f"{path}: not valid JSON") from None
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            return value
    return None


def _load_tokenizer(folder: Path, max_length: int, vocab_size: int) -> tuple[Any, int]:
    """(tokenizer, pad id). Truncation at the model's max length; padding is done per batch (to its longest)."""
    from tokenizers import Tokenizer

    path = folder / TOKENIZER_FILE
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
        raise ModelError(f"{path}: cannot be read ({exc})") from None
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size > vocab_size:
        raise ModelError(
            f"{path}: has {size} tokens but the model's vocabulary has {vocab_size} (tokenizer of another model?)"
        )
    # The files' own settings (all-MiniLM-L6-v2's pads everything to 128) would cost every query 128 tokens.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    pad_id: int | None = None
    pad_token = _special_token(folder, "pad_token")
    if pad_token is not None:
        pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        pad_id = 0
    return tokenizer, int(pad_id)


class _OnnxTextModel:
    """Shared by both kinds: verified folder, tokenizer, session, and batching by length."""

    kind: ClassVar[str]
    output: ClassVar[str]

    def __init__(
        self,
        folder: str | Path,
        *,
        threads: int = 1,
        max_seq_length: int | None = None,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        profile_dir: str | Path | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.max_batch_tokens = max_batch_tokens
        # Hashing a base-size model (~300 MB), creating its session and reading its tokenizer take similar
        # times and mostly run outside the GIL, so they overlap; the checksums are checked before anything is
        # used, and a changed or missing file is reported as such rather than as whatever it broke.
        self.spec = read_model_folder(self.folder, self.kind, verify=False)
        self.name = self.spec.source_model
        # A configured max length may shorten the model's, never lengthen it (positions beyond it do not exist).
        self.max_seq_length = min(max_seq_length or self.spec.max_seq_length, self.spec.max_seq_length)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="rag-model") as pool:
            verified = pool.submit(verify_model_files, self.folder)
            session = pool.submit(
                OnnxSession,
                self.folder / MODEL_FILE,
                threads=threads,
                profile_dir=profile_dir,
                profile_name=self.kind,
            )
            try:
                self._tokenizer, self._pad_id = _load_tokenizer(
                    self.folder, self.max_seq_length, self.spec.vocab_size
                )
                self._session = session.result()
            except ModelError:
                verified.result()
                raise
            verified.result()
        if self.output not in self._session.outputs:
            raise ModelError(
                f"{self._session.path}: has no output {self.output!r} (outputs: {', '.join(self._session.outputs)})"
            )
        self._check_graph(self._session.outputs[self.output])

    def unread_share(self, texts: list[str]) -> float:
        """How much of `texts` the vocabulary can only spell (`vocabulary.unread_share`)."""
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        pieces = (piece for encoding in encodings for piece in encoding.tokens)
        return unread_share(pieces, _special_token(self.folder, "unk_token") or "[UNK]")

    @property
    def abstain_threshold(self) -> float | None:
        """The threshold recorded when the model was calibrated (`rag models import --abstain-threshold`): a
        cross-encoder's probability, or an embedder's cosine for answers served without a reranker."""
        value = self.spec.calibration.get("abstain_threshold")
        return None if value is None else float(value)

    def _check_graph(self, shape: list[Any]) -> None:
        """Hook: refuse a graph whose output does not fit the spec."""

    def _postprocess(self, output: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Hook: the graph's output for one batch → one row per input."""
        raise NotImplementedError

    def _run(self, inputs: list[Any], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions in `inputs`, rows) per batch; batches hold similar lengths, padded to their longest."""
        encodings = self._tokenizer.encode_batch(inputs, add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")  # longest first: the memory peak shows at once
        for positions in _length_buckets(order, lengths, max(1, batch_size), self.max_batch_tokens):
            width = int(lengths[positions[0]])
            ids = np.full((len(positions), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(positions), width), dtype=np.int64)
            types = np.zeros((len(positions), width), dtype=np.int64)
            for row, i in enumerate(positions):
                encoding = encodings[i]
                n = len(encoding.ids)
                ids[row, :n] = encoding.ids
                mask[row, :n] = encoding.attention_mask
                types[row, :n] = encoding.type_ids
            features = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            yield positions, self._postprocess(self._session.run(self.output, features), mask)


def _length_buckets(
    order: np.ndarray, lengths: np.ndarray, batch_size: int, max_tokens: int
) -> Iterator[np.ndarray]:
    """Batches of `order` (longest first) whose padded width stays within _MAX_PADDING of every member, of at
    most `batch_size` inputs and `max_tokens` padded tokens (one input always makes a batch).

    On CPU a padded token costs as much as a real one: 20 reranker pairs of 37–235 tokens padded to one
    batch took 3.7 s with a bge-base-sized model, and 2.0 s scored in length buckets (docs/BENCHMARKS.md).
    """
    start = 0
    for end in range(1, len(order) + 1):
        if (
            end == len(order)
            or end - start == batch_size
            or (end - start + 1) * lengths[order[start]] > max_tokens
            or lengths[order[end]] * _MAX_PADDING < lengths[order[start]]
        ):
            yield order[start:end]
            start = end


class OnnxEmbedder(_OnnxTextModel):
    """`EmbeddingModel` over an exported embedder: mean or CLS pooling, then L2 normalisation, in numpy."""

    kind = "embedder"
    output = "last_hidden_state"

    def __init__(
        self,
        folder: str | Path,
        *,
        threads: int = 1,
        max_seq_length: int | None = None,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        profile_dir: str | Path | None = None,
    ) -> None:
        super().__init__(
            folder,
            threads=threads,
            max_seq_length=max_seq_length,
            max_batch_tokens=max_batch_tokens,
            profile_dir=profile_dir,
        )
        spec = self.spec
        assert spec.dim is not None  # checked by the spec
        self.identity = ModelIdentity(
            name=spec.source_model,
            fingerprint=spec.fingerprint,
            dim=spec.dim,
            query_prefix=spec.query_prefix if query_prefix is None else query_prefix,
            passage_prefix=spec.passage_prefix if passage_prefix is None else passage_prefix,
            max_seq_length=self.max_seq_length,
        )
        # The embedding cache's key: an export carries its source model's fingerprint, so the graph's own
        # checksum (fp32 vs int8, optimised or not) is what tells two exports of one model apart.
        self.cache_variant = f"onnx:{_model_file_sha256(self.folder)}"

    def _check_graph(self, shape: list[Any]) -> None:
        if len(shape) != 3 or (isinstance(shape[2], int) and shape[2] != self.spec.dim):
            raise ModelError(f"{self._session.path}: output shape {shape} does not give dim {self.spec.dim}")

    def _postprocess(self, output: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        hidden = output.astype(np.float32, copy=False)
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = attention_mask.astype(np.float32)[:, :, None]
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)

    def encode(
        self, texts: list[str], *, kind: str, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        prefix = self.identity.query_prefix if kind == "query" else self.identity.passage_prefix
        return encode_in_chunks(
            texts, prefix, self.identity.dim, lambda chunk: self._run(chunk, batch_size), progress
        )


class OnnxCrossEncoder(_OnnxTextModel):
    """`CrossEncoderModel` over an exported sequence classifier: sigmoid of the first logit per (query, passage)."""

    kind = "cross-encoder"
    output = "logits"

    def _check_graph(self, shape: list[Any]) -> None:
        if len(shape) != 2:
            raise ModelError(f"{self._session.path}: logits shape {shape} is not [batch, labels]")

    def _postprocess(self, output: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return np.asarray(output, dtype=np.float64).reshape(len(output), -1)[:, 0]

    def score(self, query: str, passages: list[str], *, batch_size: int = 32) -> np.ndarray:
        logits = np.zeros(len(passages), dtype=np.float64)
        for start in range(0, len(passages), _CHUNK):
            pairs = [(query, p) for p in passages[start : start + _CHUNK]]
            for positions, rows in self._run(pairs, batch_size):
                logits[start + positions] = rows
        return _sigmoid(logits).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Without overflow warnings for large |x| (pytest runs with -W error)."""
    out = np.empty_like(x, dtype=np.float64)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    exp = np.exp(x[~positive])
    out[~positive] = exp / (1.0 + exp)
    return out
