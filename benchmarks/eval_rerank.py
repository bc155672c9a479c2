"""`make eval-rerank`: what the cross-encoder should score, how deep, and how its score combines with the first
stage, on SciFact with real weights (bge-small-en + ms-marco-MiniLM-L-12-v2, int8 ONNX, from `make models`).

Every variant is chosen on a seeded sample of the train queries and reported on the 300 test queries, in one run.
The first stage is the shipped hybrid (BM25 + dense, convex fusion, best-sentence signal) over document units
(title + abstract), and the variants differ in what each of the top `depth` documents is scored by:

- `cut L`: the whole unit (title + abstract), the pair cut at L tokens (question included);
- `best k sentences`: the title and the document's k sentences most similar to the question (by the bundle's
  sentence vectors), in document order: the evidence the answer would quote;
- `sentence units`: a bundle whose units are sentences, the top `depth` sentences scored, a document ranked by
  its best sentence.

and how the cross-encoder's probability combines with the fused score (`w × ce + (1 − w) × fused`, the fused
score min-max normalised over the head; w = 1 is the cross-encoder alone). The cross-encoder runs once per
(query, scored text) at the largest depth; shallower depths and the mixtures reuse those scores. The forward
time of one answer's rerank is measured for each variant (median over 30 test questions, 2 threads, then 1
thread as a serving worker runs it), so quality can be read against cost.

    python benchmarks/eval_rerank.py [--train-sample 150] [--out build/eval-rerank/rerank.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from bench_models import machine  # noqa: E402
from real_models import SHARED_DATA, echo, real_models  # noqa: E402
from studies.suites import EvalRunner, Variant, replace_cfg  # noqa: E402

from rag.config import RetrievalParams, Settings  # noqa: E402
from rag.eval.datasets import load_beir  # noqa: E402
from rag.eval.metrics import ndcg_at_k, recall_at_k  # noqa: E402
from rag.models.onnx_backend import OnnxCrossEncoder  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402

WEIGHTS = (1.0, 0.8, 0.6, 0.4)  # the cross-encoder's share; 1.0 = cross-encoder alone
TIMED = 30  # test questions whose rerank is timed per variant

Head = tuple[list[str], list[str], np.ndarray]  # scored texts (largest depth), document ids, fused scores


def normalise(x: np.ndarray) -> np.ndarray:
    span = float(x.max() - x.min()) if len(x) else 0.0
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def documents_in_order(doc_ids: list[str]) -> list[str]:
    """A document ranks where its best unit does (BEIR: document-level)."""
    return list(dict.fromkeys(doc_ids))


def scores(ranked: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    return {
        "ndcg@10": float(np.mean([ndcg_at_k(r, qrels[q], 10) for q, r in ranked.items()])),
        "recall@10": float(np.mean([recall_at_k(r, qrels[q], 10) for q, r in ranked.items()])),
    }


def best_sentences(pipeline: Pipeline, unit: int, query_vector: np.ndarray, k: int) -> str:
    """Title + the unit's k sentences closest to the question, in document order (what the pipeline reads)."""
    return pipeline.units.best_sentences(unit, query_vector, k)


def first_stage(
    pipeline: Pipeline, queries: dict[str, str], depth: int, text: Callable[[Pipeline, int, np.ndarray], str]
) -> dict[str, Head]:
    out = {}
    documents, seg = pipeline.bundle.documents, pipeline.bundle.seg
    for qid, question in queries.items():
        ranking = pipeline.rank(question)
        units = ranking.units.tolist()[:2000]
        texts = [text(pipeline, u, ranking.query_vector) for u in units[:depth]]
        out[qid] = (
            texts,
            [documents[seg.unit_doc[u]].id for u in units],
            np.asarray(ranking.score[: len(units)]),
        )
    return out


Mix = Callable[
    [np.ndarray, np.ndarray], np.ndarray
]  # (cross-encoder scores, fused scores) of a head → order by


def interpolated(weight: float) -> Mix:
    """`weight` × the cross-encoder's probability + (1 − weight) × the fused score min-max normalised."""
    return lambda ce, fused: weight * ce + (1.0 - weight) * normalise(fused)


def reranked(stage: dict[str, Head], ce: dict[str, np.ndarray], depth: int, mix: Mix) -> dict[str, list[str]]:
    """Each query's documents with its top `depth` units reordered by `mix`."""
    out = {}
    for qid, (_, doc_ids, fused) in stage.items():
        n = min(depth, len(doc_ids))
        order = np.argsort(-mix(ce[qid][:n], fused[:n].astype(np.float64)), kind="stable")
        out[qid] = documents_in_order([doc_ids[i] for i in order] + doc_ids[n:])
    return out


def timed(model: OnnxCrossEncoder, questions: list[str], heads: list[list[str]], depth: int) -> float:
    runs = []
    for question, texts in zip(questions, heads, strict=True):
        started = time.perf_counter()
        model.score(question, texts[:depth])
        runs.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(runs), 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-sample", type=int, default=150, help="train queries that choose (seeded)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "eval-rerank" / "rerank.json")
    args = parser.parse_args()
    embedder, reranker = real_models()
    settings = Settings(backend="onnx", embedding_model=str(embedder), reranker_model="", threads=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runner = EvalRunner(settings, SHARED_DATA, args.out.parent, progress=False)
    test, train = load_beir(SHARED_DATA / "scifact", "test"), load_beir(SHARED_DATA / "scifact", "train")
    sample = dict(random.Random(0).sample(sorted(train.queries.items()), args.train_sample))
    splits = {"train": (sample, train.qrels), "test": (test.queries, test.qrels)}
    base = settings.build_config()
    bundles = {
        unit: runner.bundle(f"scifact-{unit}", test.documents, replace_cfg(base, unit=unit, unit_title=True))
        for unit in ("document", "sentence")
    }
    shipped = RetrievalParams().model_dump(exclude={"rerank"})
    bm25 = settings.bm25_params()
    pipelines = {
        "bm25": runner.pipeline(
            Variant("bm25", bundles["document"], bm25, {"alpha": 0.0, "bm25_top_k": 1000})
        ),
        "dense": runner.pipeline(
            Variant("dense", bundles["document"], bm25, {"alpha": 1.0, "dense_top_k": 1000})
        ),
        "hybrid": runner.pipeline(Variant("hybrid", bundles["document"], bm25, shipped)),
        # 100 sentences cover too few documents for nDCG@10: the sentence bundle's first stage goes deeper
        "hybrid over sentences": runner.pipeline(
            Variant(
                "sentences", bundles["sentence"], bm25, shipped | {"bm25_top_k": 1000, "dense_top_k": 1000}
            )
        ),
    }
    report: dict[str, Any] = {
        "embedder": str(embedder),
        "reranker": str(reranker),
        "machine": machine(),
        "rows": [],
    }

    def unit_text(p: Pipeline, u: int, _: np.ndarray) -> str:
        return p.units.text(u, with_title=True)

    for name, pipeline in pipelines.items():
        row = {"name": f"{name} (no rerank)", "role": "first stage"}
        for split, (queries, qrels) in splits.items():
            stage = first_stage(pipeline, queries, 0, unit_text)
            row[split] = scores({q: documents_in_order(s[1]) for q, s in stage.items()}, qrels)
        report["rows"].append(row)
        echo(f"{row['name']:<62} train {row['train']['ndcg@10']:.4f}  test {row['test']['ndcg@10']:.4f}")

    variants: list[tuple[str, str, tuple[int, ...], int | None, Callable[..., str]]] = [
        # (name, first stage, depths, cut, text of a scored unit)
        ("cut 64 tokens", "hybrid", (10, 20, 30), 64, unit_text),
        ("cut 128 tokens", "hybrid", (10, 20, 30), 128, unit_text),
        ("best 1 sentence", "hybrid", (10, 20, 30), None, lambda p, u, q: best_sentences(p, u, q, 1)),
        ("best 2 sentences", "hybrid", (10, 20, 30), None, lambda p, u, q: best_sentences(p, u, q, 2)),
        ("sentence units", "hybrid over sentences", (10, 20, 40), None, unit_text),
    ]
    timed_questions = list(test.queries.values())[:TIMED]
    for label, stage_name, depths, cut, text in variants:
        model = OnnxCrossEncoder(reranker, threads=2, max_seq_length=cut)
        stages = {s: first_stage(pipelines[stage_name], q, max(depths), text) for s, (q, _) in splits.items()}
        ce = {
            s: {qid: model.score(splits[s][0][qid], h[0]) for qid, h in stage.items()}
            for s, stage in stages.items()
        }
        heads = [stages["test"][qid][0] for qid in list(test.queries)[:TIMED]]
        one_thread = OnnxCrossEncoder(reranker, threads=1, max_seq_length=cut)
        for depth in depths:
            cost = {
                "2 threads": timed(model, timed_questions, heads, depth),
                "1 thread": timed(one_thread, timed_questions, heads, depth),
            }
            for weight in WEIGHTS:
                mix = "ce alone" if weight == 1.0 else f"{weight:.1f} ce + {1 - weight:.1f} fused"
                row = {
                    "name": f"{label}, top {depth}, {mix}",
                    "role": "rerank",
                    "scored": label,
                    "depth": depth,
                    "weight": weight,
                    "rerank_ms": cost,
                    **{
                        s: scores(reranked(stages[s], ce[s], depth, interpolated(weight)), splits[s][1])
                        for s in splits
                    },
                }
                report["rows"].append(row)
                echo(
                    f"{row['name']:<62} train {row['train']['ndcg@10']:.4f}  test {row['test']['ndcg@10']:.4f}"
                    f"  rerank {cost['2 threads']:.0f} / {cost['1 thread']:.0f} ms (2 / 1 threads)"
                )
    reranks = [r for r in report["rows"] if r["role"] == "rerank"]
    report["chosen"] = max(reranks, key=lambda r: r["train"]["ndcg@10"])
    echo(f"best on train: {report['chosen']['name']}: test nDCG@10 {report['chosen']['test']['ndcg@10']:.4f}")
    args.out.write_text(json.dumps(report, indent=2, default=str))
    echo(f"wrote {args.out}")


if __name__ == "__main__":
    main()
