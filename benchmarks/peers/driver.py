"""One system, one phase, in a process of its own: the worker side of `make bench-peers`.

Stdlib only, so the same code runs in the project's venv (this project) and in the peers' venv (Haystack,
txtai, the naive baseline): every system is timed by the same loop, and no system's numbers depend on another
one's process (loaded libraries, thread pools, allocator state, page cache of its own model files aside).

    python -m peers.<system> build --inputs INPUTS.json --index DIR --result OUT.json
    python -m peers.<system> run   --inputs INPUTS.json --index DIR --result OUT.json
    python -m peers.rag_system threads|profile …   (this project only: bench_peers.py's "why" section)

The task, identical for every system (bench_peers.py writes the inputs):
- Units: SciFact documents. Every system embeds and indexes the same `content` ("title. abstract", the way
  this project joins a title to a unit), so nDCG@10 and Recall@100 are over the same doc ids.
- Quality: each quality question, in each mode of `modes` (hybrid; bm25 and dense too when asked), returns
  its top DEPTH document ids; bench_peers.py scores them all with rag.eval's own scoring code.
- Answers (timed): hybrid retrieval from CANDIDATES documents per retriever, fused; with `rerank` the
  cross-encoder scores the top RERANK_TOP_N fused documents; ANSWER_K documents come back.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

MODES = ("bm25", "dense", "hybrid")
DEPTH = 100  # documents per quality ranking: Recall@100 needs 100
CANDIDATES = 100  # documents each retriever contributes to fusion (this project's bm25_top_k/dense_top_k)
RERANK_TOP_N = 20  # fused documents the cross-encoder scores (this project's rerank_top_n)
ANSWER_K = 10  # documents an answer returns
CONCURRENCY = (1, 4)
WARMUP = 3  # answers per configuration before timing: lazy initialisation is cold start, not latency


@dataclass(frozen=True)
class Inputs:
    """What every system is given: the corpus file, the model folders, the questions."""

    corpus: str  # jsonl: {"_id", "title", "text", "content"}; content = what every system indexes
    embedder_torch: str  # all-MiniLM-L6-v2, sentence-transformers folder (the peers)
    embedder_onnx: str  # the same model exported int8 (this project)
    reranker_torch: str  # one cross-encoder folder (the peers)
    reranker_onnx: str  # the same cross-encoder exported int8 (this project)
    quality: list[str]  # scored questions (every mode of `modes`, no reranker)
    hybrid: list[str]  # timed answers without the reranker
    rerank: list[str]  # timed answers with the reranker
    modes: list[str]  # quality modes, a subset of MODES: the single retrievers are a check of each set-up
    # The peers' document vectors (npz: ids, vectors, encode_s), written by the first peer that embeds the
    # corpus with sentence-transformers (Haystack) and taken by the naive baseline, whose encode call would be
    # the same one (same model, texts, batch size, truncation): it adds that encode's time to its build time.
    vectors: str

    @classmethod
    def read(cls, path: Path) -> Inputs:
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")


class System(Protocol):
    def retrieve(self, question: str, mode: str, k: int) -> list[str]:
        """The top `k` document ids for `question` in `mode` (one of MODES), without the reranker."""
        ...

    def answer(self, question: str, rerank: bool) -> list[str]:
        """The system's answer path (ANSWER_K documents, or the evidence they hold)."""
        ...


Phase = Callable[[Inputs, Path], dict[str, Any]]  # inputs, index folder → the phase's result
Build = Phase
Load = Callable[[Inputs, Path], System]


def read_corpus(path: str | Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def percentile(values: Sequence[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def drive(call: Callable[[str], object], questions: list[str], concurrency: int) -> dict[str, float]:
    """Every question once, `concurrency` at a time (threads in this process, as a library user would run
    it): latency percentiles and answers per second of wall time."""
    latencies: list[float] = []
    lock = threading.Lock()

    def one(question: str) -> None:
        started = time.perf_counter()
        call(question)
        elapsed = (time.perf_counter() - started) * 1000.0
        with lock:
            latencies.append(elapsed)

    started = time.perf_counter()
    if concurrency == 1:
        for question in questions:
            one(question)
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, questions))
    wall = time.perf_counter() - started
    return {
        "n": len(latencies),
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 95),
        "rps": len(latencies) / wall,
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def versions(packages: Sequence[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def threads() -> dict[str, int]:
    """Intra-op threads each system ran with (left at the library's default unless the system sets them)."""
    out = {"cpus": os.cpu_count() or 0}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = int(torch.get_num_threads())
    return out


def _answer(system: System, question: str, rerank: bool) -> list[str]:
    return system.answer(question, rerank=rerank)


def serve(load: Load, inputs: Inputs, index: Path) -> dict[str, Any]:
    started = time.perf_counter()
    system = load(inputs, index)
    loaded = time.perf_counter()
    system.answer(inputs.rerank[0], rerank=True)
    # Wall clock, compared by the parent with the time it started this process: cold start includes the
    # interpreter and the imports, as a user's process start would.
    out: dict[str, Any] = {
        "first_answer_at": time.time(),
        "load_s": loaded - started,
        "first_answer_s": time.perf_counter() - loaded,
    }
    for question in inputs.hybrid[:WARMUP]:
        system.answer(question, rerank=False)
    for question in inputs.rerank[:WARMUP]:
        system.answer(question, rerank=True)

    out["rankings"], out["retrieve_ms"] = {}, {}
    for mode in inputs.modes:
        ranked, times = [], []
        for question in inputs.quality:
            t0 = time.perf_counter()
            ranked.append(system.retrieve(question, mode, DEPTH))
            times.append((time.perf_counter() - t0) * 1000.0)
        out["rankings"][mode] = ranked
        out["retrieve_ms"][mode] = statistics.median(times)

    mark = getattr(system, "mark", None)  # a system that profiles itself is told which run is on
    for config, questions in (("hybrid", inputs.hybrid), ("rerank", inputs.rerank)):
        rerank = config == "rerank"
        out[config] = {}
        for c in CONCURRENCY:
            if callable(mark):
                mark(f"{config} c={c}")
            out[config][f"c{c}"] = drive(partial(_answer, system, rerank=rerank), questions, c)
    profile = getattr(system, "profile", None)
    if callable(profile):
        out["profile"] = profile()
    out["threads"] = threads()
    return out


def main(build: Build, load: Load, packages: Sequence[str], extra: dict[str, Phase] | None = None) -> None:
    extra = extra or {}
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=("build", "run", *extra))
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True, help="the system's index folder")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    inputs = Inputs.read(args.inputs)
    result: dict[str, Any] = {"versions": versions(packages)}
    if args.phase == "build":
        args.index.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        result.update(build(inputs, args.index))
        result["build_s"] = time.perf_counter() - started + float(result.get("borrowed_encode_s", 0.0))
    elif args.phase == "run":
        result.update(serve(load, inputs, args.index))
    else:
        result.update(extra[args.phase](inputs, args.index))
    result["peak_rss_mb"] = peak_rss_mb()
    args.result.write_text(json.dumps(result), encoding="utf-8")
