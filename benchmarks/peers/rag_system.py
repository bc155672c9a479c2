"""This project in-process: one `Pipeline.from_settings`, as the CLI and the API build it.

Settings are the shipped defaults (onnx backend, int8 models, BM25 k1=1.2 b=0.9 title×2, convex fusion α=0.4,
best-sentence signal ×0.35, rerank top 20) with document units and a flat dense index, the setting
docs/EVALUATION.md reports for SciFact. The bundle is built without the embedding cache, so the build time is
a cold build. An answer is the full `/answer` path: retrieval, fusion, (rerank,) MMR evidence and the
extractive answer or an abstention; the peers only return documents.

Two more phases explain this project's reranked numbers (bench_peers.py's "where the time goes"):
- `threads`: reranked answers with 2 intra-op threads, then 1 (what each gunicorn worker has), one process;
- `profile`: reranked answers with ONNX Runtime's operator trace on (RAG_ONNX_PROFILE_DIR's setting), run
  by bench_peers.py under py-spy, which samples the Python side.
"""

from __future__ import annotations

import statistics
import threading
from pathlib import Path
from typing import Any

from peers.driver import Inputs, main, read_corpus
from rag.config import RetrievalParams, Settings
from rag.corpus import Document
from rag.index import Builder
from rag.pipeline import Pipeline

PACKAGES = ("rag", "onnxruntime", "tokenizers", "faiss-cpu", "numpy")
# Reference modes are the plain retrievers (no best-sentence signal), as docs/EVALUATION.md's reference rows.
MODE_PARAMS: dict[str, dict[str, Any]] = {
    "bm25": {"alpha": 0.0, "sentence_weight": 0.0},
    "dense": {"alpha": 1.0, "sentence_weight": 0.0},
    "hybrid": {},
}


PROFILE_DIR = "ort-trace"  # under the index folder: the profile phase's operator traces
EXPLAIN_WARMUP, EXPLAIN_ANSWERS = 1, 5  # reranked answers per thread count, and profiled: warm-up, timed


def settings(inputs: Inputs, index: Path, **overrides: Any) -> Settings:
    # Explicit values win over RAG_* variables; bench_peers.py also strips those from the worker's env.
    return Settings(
        backend="onnx",
        embedding_model=inputs.embedder_onnx,
        reranker_model=inputs.reranker_onnx,
        unit="document",
        dense_index="flat",
        bundle_dir=str(index),
        **overrides,
    )


def build(inputs: Inputs, index: Path) -> dict[str, Any]:
    s = settings(inputs, index)
    documents = [Document(id=r["_id"], title=r["title"], text=r["text"]) for r in read_corpus(inputs.corpus)]
    result = Builder.from_settings(s).build(documents, index / "bundle", overwrite=True)
    return {"embed_s": result.embed_seconds, "counts": result.manifest.counts}


class RagSystem:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.params = {mode: pipeline.resolve({"rerank": False, **p}) for mode, p in MODE_PARAMS.items()}
        self.answer_params: dict[bool, RetrievalParams] = {
            False: pipeline.resolve({"rerank": False}),
            True: pipeline.resolve({"rerank": True}),
        }
        self.run = "warm-up"
        self.timings: dict[str, list[dict[str, float]]] = {}
        self.lock = threading.Lock()

    def mark(self, run: str) -> None:
        self.run = run

    def retrieve(self, question: str, mode: str, k: int) -> list[str]:
        return [doc for doc, _ in self.pipeline.ranked_documents(question, self.params[mode])[:k]]

    def answer(self, question: str, rerank: bool) -> list[str]:
        answer = self.pipeline.answer(question, self.answer_params[rerank])
        with self.lock:
            self.timings.setdefault(self.run, []).append(answer.timings_ms)
        return [e.doc_id for e in answer.evidence]

    def profile(self) -> dict[str, Any]:
        """Median milliseconds per pipeline stage (its timings_ms) in each timed run, and the load breakdown."""
        out: dict[str, Any] = {"load_s": self.pipeline.load_seconds}
        for run, rows in self.timings.items():
            stages = dict.fromkeys(name for row in rows for name in row)
            out[run] = {
                stage: round(statistics.median(row.get(stage, 0.0) for row in rows), 3) for stage in stages
            }
        return out


def load(inputs: Inputs, index: Path, **overrides: Any) -> RagSystem:
    s = settings(inputs, index, **overrides)
    return RagSystem(Pipeline.from_settings(s, index / "bundle"))


def _reranked(system: RagSystem, questions: list[str]) -> dict[str, float]:
    """Median ms per reranked answer and per rerank stage, after a warm-up answer."""
    for question in questions[:EXPLAIN_WARMUP]:
        system.answer(question, rerank=True)
    system.mark("timed")
    for question in questions[:EXPLAIN_ANSWERS]:
        system.answer(question, rerank=True)
    rows = system.timings["timed"]
    return {
        "answers": len(rows),
        "reranked": len(questions[:EXPLAIN_WARMUP]) + len(rows),  # every reranked answer of the process
        "total_ms": statistics.median(r["total"] for r in rows),
        "rerank_ms": statistics.median(r["rerank"] for r in rows),
    }


def threads(inputs: Inputs, index: Path) -> dict[str, Any]:
    """The same reranked answers with 2 intra-op threads (in-process) and 1 (a gunicorn worker's)."""
    return {str(n): _reranked(load(inputs, index, threads=n), inputs.rerank) for n in (2, 1)}


def profile(inputs: Inputs, index: Path) -> dict[str, Any]:
    """Reranked answers with every ONNX session tracing its operators (written at exit)."""
    system = load(inputs, index, onnx_profile_dir=str(index / PROFILE_DIR))
    return _reranked(system, inputs.rerank)


if __name__ == "__main__":
    main(build, load, PACKAGES, {"threads": threads, "profile": profile})
