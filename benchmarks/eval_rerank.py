"""`make eval-rerank`: what the cross-encoder should score, how deep, and how its score combines with the first
stage, on SciFact with real weights (bge-small-en + ms-marco-MiniLM-L-12-v2, int8 ONNX, from `make models`).

Every variant is chosen on a sample of the train queries and reported on the test queries, in one run:
- first stage: BM25, dense, and the shipped hybrid over document units (title + abstract);
- rerank depth 10 / 20 / 50 of the hybrid ranking;
- what is scored: the whole unit cut at 512, 256 or 128 tokens (the pair's length, question included);
- the combination: cross-encoder alone, or interpolated with the min-max-normalised fused score.

The cross-encoder runs once per (query, document, length) at the largest depth; shallower depths and the
interpolations reuse those scores. Forward time per answer is measured at each length and depth, so quality
can be read against cost.

    python benchmarks/eval_rerank.py [--train-sample 300] [--out build/eval-rerank/rerank.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_models import machine  # noqa: E402

from rag.config import RetrievalParams, Settings  # noqa: E402
from rag.eval.datasets import load_beir  # noqa: E402
from rag.eval.metrics import ndcg_at_k, recall_at_k  # noqa: E402
from rag.eval.runner import EvalRunner, Variant, replace_cfg  # noqa: E402
from rag.models.onnx_backend import OnnxCrossEncoder  # noqa: E402

SHARED_DATA = Path(os.environ.get("RAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
MODELS = Path(os.environ.get("RAG_MODELS_DIR", ROOT / "build" / "models"))
DEPTHS = (10, 20, 50)
LENGTHS = (512, 256, 128)
WEIGHTS = (1.0, 0.8, 0.6)  # the cross-encoder's share; 1.0 = cross-encoder alone


def echo(message: str) -> None:
    print(message, flush=True)


def normalise(x: np.ndarray) -> np.ndarray:
    span = float(x.max() - x.min()) if len(x) else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def first_stage(runner: EvalRunner, bundle: str, params: dict[str, Any], queries: dict[str, str]) -> dict:
    """Per query: documents in fused order with their fused scores (document units: one unit per document)."""
    pipeline = runner.pipeline(Variant("first stage", bundle, runner.settings.bm25_params(), params))
    out = {}
    for qid, question in queries.items():
        ranking = pipeline.rank(question)
        docs = [pipeline.bundle.documents[pipeline.bundle.seg.unit_doc[u]] for u in ranking.units.tolist()]
        out[qid] = (docs, np.asarray(ranking.score, dtype=np.float64))
    return out


def scores(ranked: dict, qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    return {
        "ndcg@10": float(np.mean([ndcg_at_k(r, qrels[q], 10) for q, r in ranked.items()])),
        "recall@10": float(np.mean([recall_at_k(r, qrels[q], 10) for q, r in ranked.items()])),
    }


def reranked(stage: dict, ce: dict, depth: int, weight: float) -> dict[str, list[str]]:
    out = {}
    for qid, (docs, fused) in stage.items():
        n = min(depth, len(docs))
        mixed = weight * ce[qid][:n] + (1.0 - weight) * normalise(fused[:n])
        order = np.argsort(-mixed, kind="stable")
        out[qid] = [docs[i].id for i in order] + [d.id for d in docs[n:]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-sample", type=int, default=300, help="train queries that choose (seeded)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "eval-rerank" / "rerank.json")
    args = parser.parse_args()
    embedder, reranker = MODELS / "bge-small-en", MODELS / "ms-marco-MiniLM-L-12-v2"
    if not (embedder / "rag_model.json").is_file() or not (reranker / "rag_model.json").is_file():
        raise SystemExit(f"no models in {MODELS}: run make models")
    info = machine()
    echo(
        f"cpu: {info['cpu']}; usable cpus: {info['cpus_usable']}; flags: "
        + " ".join(f"{k}={'yes' if v else 'no'}" for k, v in info["flags"].items())
    )
    settings = Settings(backend="onnx", embedding_model=str(embedder), reranker_model="", threads=2)
    work = args.out.parent
    work.mkdir(parents=True, exist_ok=True)
    runner = EvalRunner(settings, SHARED_DATA, work, progress=False)
    test, train = load_beir(SHARED_DATA / "scifact", "test"), load_beir(SHARED_DATA / "scifact", "train")
    sample = dict(random.Random(0).sample(sorted(train.queries.items()), args.train_sample))
    started = time.perf_counter()
    docs = runner.bundle(
        "scifact-document",
        test.documents,
        replace_cfg(settings.build_config(), unit="document", unit_title=True),
    )
    echo(f"bundle: {time.perf_counter() - started:.0f} s")
    shipped = RetrievalParams().model_dump(exclude={"rerank"}) | {"sentence_weight": 0.0}
    first = {
        "bm25": {"alpha": 0.0, "bm25_top_k": 1000},
        "dense": {"alpha": 1.0, "dense_top_k": 1000},
        "hybrid (shipped fusion)": shipped,
    }
    report: dict[str, Any] = {"embedder": str(embedder), "reranker": str(reranker), "rows": []}
    stages = {}
    for name, params in first.items():
        stages[name] = {
            "train": first_stage(runner, docs, params, sample),
            "test": first_stage(runner, docs, params, test.queries),
        }
        row = {
            "name": name,
            "train": scores({q: [d.id for d in s[0]] for q, s in stages[name]["train"].items()}, train.qrels),
            "test": scores({q: [d.id for d in s[0]] for q, s in stages[name]["test"].items()}, test.qrels),
        }
        report["rows"].append(row)
        echo(f"{name:<50} train {row['train']['ndcg@10']:.4f}  test {row['test']['ndcg@10']:.4f}")
    hybrid = stages["hybrid (shipped fusion)"]
    report["timing_ms"] = {}
    for length in LENGTHS:
        model = OnnxCrossEncoder(reranker, threads=2, max_seq_length=length)
        ce: dict[str, dict[str, np.ndarray]] = {"train": {}, "test": {}}
        per_answer: dict[int, list[float]] = {d: [] for d in DEPTHS}
        for split in ("train", "test"):
            for qid, (documents, _) in hybrid[split].items():
                question = (sample if split == "train" else test.queries)[qid]
                texts = [f"{d.title}. {d.text}" if d.title else d.text for d in documents[: max(DEPTHS)]]
                for depth in DEPTHS:  # timed separately: a shallower rerank is a shorter batch list
                    if split == "test" and len(per_answer[depth]) < 40:
                        t = time.perf_counter()
                        model.score(question, texts[:depth])
                        per_answer[depth].append((time.perf_counter() - t) * 1000)
                ce[split][qid] = model.score(question, texts)
        report["timing_ms"][length] = {d: round(statistics.median(v), 1) for d, v in per_answer.items()}
        echo(f"length {length}: forward p50 per answer {report['timing_ms'][length]} ms (depth: ms)")
        for depth in DEPTHS:
            for weight in WEIGHTS:
                name = f"rerank top {depth}, cut {length} tokens, " + (
                    "cross-encoder alone"
                    if weight == 1.0
                    else f"{weight:.1f} × ce + {1 - weight:.1f} × fused"
                )
                row = {
                    "name": name,
                    "depth": depth,
                    "length": length,
                    "weight": weight,
                    "train": scores(reranked(hybrid["train"], ce["train"], depth, weight), train.qrels),
                    "test": scores(reranked(hybrid["test"], ce["test"], depth, weight), test.qrels),
                    "forward_p50_ms": report["timing_ms"][length][depth],
                }
                report["rows"].append(row)
                echo(f"{name:<50} train {row['train']['ndcg@10']:.4f}  test {row['test']['ndcg@10']:.4f}")
    candidates = [r for r in report["rows"] if "depth" in r]
    report["chosen"] = max(candidates, key=lambda r: r["train"]["ndcg@10"])
    echo(
        f"chosen on train: {report['chosen']['name']}: test nDCG@10 {report['chosen']['test']['ndcg@10']:.4f}"
    )
    args.out.write_text(json.dumps(report, indent=2, default=str))
    echo(f"wrote {args.out}")


if __name__ == "__main__":
    main()
