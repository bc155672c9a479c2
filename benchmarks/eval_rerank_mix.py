"""`make eval-rerank-mix`: how the cross-encoder's score should combine with the first stage, chosen on
every SciFact train query (809) and reported on the 300 test queries; then the shipped Pipeline itself,
rerank on and off, over both unit kinds. Real weights (bge-small-en + ms-marco-MiniLM-L-12-v2, int8 ONNX,
`make models`).

`make eval-rerank` mixes the cross-encoder's probability with the fused score min-max normalised, and lets 150
train queries choose. Here the rules compared over the same heads are:

- `probability`: w × sigmoid(logit) + (1 − w) × fused, min-max normalised (what the pipeline ships);
- `min-max logit`: both min-max normalised over the head, so neither saturates;
- `z-score`: both standardised over the head;
- `rrf k`: w / (k + rank by the cross-encoder) + (1 − w) / (k + rank by the fused score).

for the two texts the pipeline reranks: the title and best sentence of each of the top documents (document
units), and the top sentences (sentence units). The last rows run `Pipeline.ranked_documents`, the code that
serves `/answer`, with the shipped settings: the number the issue's "the default never below no rerank" is
about, since the sweeps above re-create its ranking outside it.

    python benchmarks/eval_rerank_mix.py [--out build/eval-rerank/mix.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from eval_rerank import (  # noqa: E402
    Head,
    best_sentences,
    documents_in_order,
    first_stage,
    normalise,
    reranked,
    scores,
)
from real_models import SHARED_DATA, echo, real_models  # noqa: E402
from studies.suites import EvalRunner, Variant, replace_cfg  # noqa: E402

from rag.config import RetrievalParams, Settings  # noqa: E402
from rag.eval.datasets import BeirData, load_beir  # noqa: E402
from rag.eval.retrieval import retrieval_scores  # noqa: E402
from rag.models.onnx_backend import OnnxCrossEncoder  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402

DEPTHS = (10, 20)
WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
RULES = ("probability", "min-max logit", "z-score", "rrf 2", "rrf 10", "rrf 60")

Split = tuple[dict[str, str], dict[str, dict[str, int]]]  # queries, qrels


def standardised(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def ranks(x: np.ndarray) -> np.ndarray:
    out = np.empty(len(x))
    out[np.argsort(-x, kind="stable")] = np.arange(1, len(x) + 1)
    return out


def mixed(rule: str, weight: float, logit: np.ndarray, fused: np.ndarray) -> np.ndarray:
    if rule == "probability":
        return weight / (1.0 + np.exp(-logit)) + (1.0 - weight) * normalise(fused)
    if rule == "min-max logit":
        return weight * normalise(logit) + (1.0 - weight) * normalise(fused)
    if rule == "z-score":
        return weight * standardised(logit) + (1.0 - weight) * standardised(fused)
    k = float(rule.split()[1])
    return weight / (k + ranks(logit)) + (1.0 - weight) / (k + ranks(fused))


def logits(model: OnnxCrossEncoder, queries: dict[str, str], stage: dict[str, Head]) -> dict[str, np.ndarray]:
    """The cross-encoder's logits for each query's head (its probabilities, inverted)."""
    out = {}
    for qid, (texts, _, _) in stage.items():
        p = np.clip(model.score(queries[qid], texts).astype(np.float64), 1e-7, 1 - 1e-7)
        out[qid] = np.log(p / (1 - p))
    return out


def sweep(
    label: str,
    pipeline: Pipeline,
    text: Callable[..., str],
    model: OnnxCrossEncoder,
    splits: dict[str, Split],
) -> list[dict[str, Any]]:
    """Every rule × depth × weight over one first stage; a row per setting, train and test nDCG@10."""
    stages = {s: first_stage(pipeline, q, max(DEPTHS), text) for s, (q, _) in splits.items()}
    ce = {s: logits(model, splits[s][0], stage) for s, stage in stages.items()}
    unranked = {s: {q: documents_in_order(h[1]) for q, h in stage.items()} for s, stage in stages.items()}
    rows: list[dict[str, Any]] = [
        {"scored": label, "rule": "no rerank"}
        | {s: scores(unranked[s], splits[s][1])["ndcg@10"] for s in splits}
    ]
    for depth in DEPTHS:
        for rule in RULES:
            for w in WEIGHTS:
                row = {"scored": label, "rule": rule, "depth": depth, "weight": w}
                mix = partial(mixed, rule, w)
                ranked = {s: reranked(stages[s], ce[s], depth, mix) for s in splits}
                rows.append(row | {s: scores(ranked[s], splits[s][1])["ndcg@10"] for s in splits})
    return rows


def summary(rows: list[dict[str, Any]]) -> None:
    """Per rule and depth: the weight train chooses (its test score) and the best test score of any weight."""
    none = rows[0]
    echo(f"{none['scored']}: no rerank: train {none['train']:.4f} test {none['test']:.4f}")
    for depth in DEPTHS:
        for rule in RULES:
            group = [r for r in rows[1:] if r["depth"] == depth and r["rule"] == rule]
            chosen, top = max(group, key=lambda r: r["train"]), max(group, key=lambda r: r["test"])
            echo(
                f"  top {depth}, {rule:<13} train chooses w {chosen['weight']:.1f}: "
                f"train {chosen['train']:.4f} test {chosen['test']:.4f}; "
                f"best test w {top['weight']:.1f}: {top['test']:.4f}"
            )
    best = max(rows[1:], key=lambda r: r["train"])
    echo(
        f"  train chooses: top {best['depth']}, {best['rule']}, w {best['weight']:.1f}: "
        f"test {best['test']:.4f}"
    )


def shipped(runner: EvalRunner, bundle: str, settings: Settings, data: BeirData) -> dict[str, Any]:
    """The serving Pipeline with the shipped settings on `data`, rerank on and off."""
    params = settings.retrieval_params().model_dump()
    row: dict[str, Any] = {"bundle": bundle}
    for rerank in (False, True):
        pipeline = runner.pipeline(
            Variant("shipped", bundle, settings.bm25_params(), params | {"rerank": rerank})
        )
        row["rerank" if rerank else "no rerank"] = retrieval_scores(pipeline, data.queries, data.qrels)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "eval-rerank" / "mix.json")
    args = parser.parse_args()
    embedder, reranker = real_models()
    settings = Settings(
        backend="onnx", embedding_model=str(embedder), reranker_model=str(reranker), threads=2
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runner = EvalRunner(settings, SHARED_DATA, args.out.parent, progress=False)
    test, train = load_beir(SHARED_DATA / "scifact", "test"), load_beir(SHARED_DATA / "scifact", "train")
    splits = {"train": (train.queries, train.qrels), "test": (test.queries, test.qrels)}
    base, bm25 = settings.build_config(), settings.bm25_params()
    bundles = {
        unit: runner.bundle(f"scifact-{unit}", test.documents, replace_cfg(base, unit=unit, unit_title=True))
        for unit in ("document", "sentence")
    }
    first = RetrievalParams().model_dump(exclude={"rerank"})
    model = OnnxCrossEncoder(reranker, threads=2)
    report: dict[str, Any] = {
        "embedder": str(embedder),
        "reranker": str(reranker),
        "sweeps": {},
        "shipped": [],
    }
    for label, unit, params, text in (
        ("best 1 sentence", "document", first, lambda p, u, q: best_sentences(p, u, q, 1)),
        # the sentence bundle's first stage goes deeper: 100 sentences cover too few documents for nDCG@10
        ("sentence units", "sentence", first | {"bm25_top_k": 1000, "dense_top_k": 1000},
         lambda p, u, _: p.units.text(u, with_title=True)),
    ):  # fmt: skip
        pipeline = runner.pipeline(Variant(label, bundles[unit], bm25, params))
        report["sweeps"][label] = rows = sweep(label, pipeline, text, model, splits)
        summary(rows)
    for bundle in bundles.values():
        row = shipped(runner, bundle, settings, test)
        report["shipped"].append(row)
        echo(
            f"shipped Pipeline, {bundle}, test: no rerank {row['no rerank']['ndcg@10']:.4f}, "
            f"rerank {row['rerank']['ndcg@10']:.4f}"
        )
    args.out.write_text(json.dumps(report, indent=2, default=str))
    echo(f"wrote {args.out}")


if __name__ == "__main__":
    main()
