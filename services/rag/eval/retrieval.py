"""Document-level retrieval quality of one Pipeline on judged queries: the one scoring path shared by the
SciFact sweeps (`rag eval`) and the evaluation of a built bundle (`rag eval --bundle`, CI's quality gate)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from ..index import Evaluation
from ..pipeline import Pipeline
from .datasets import EvalSet
from .metrics import ndcg_at_k, recall_at_k

__all__ = ["evaluate_bundle", "retrieval_scores"]


def retrieval_scores(
    pipeline: Pipeline,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    depth: int = 100,
) -> dict[str, float]:
    """Mean nDCG@10, Recall@10 and Recall@100 over `queries` (BEIR conventions, documents ranked by their
    best unit)."""
    ndcg, recall10, recall100 = [], [], []
    for qid, question in queries.items():
        ranked = [doc for doc, _ in pipeline.ranked_documents(question)][:depth]
        ndcg.append(ndcg_at_k(ranked, qrels[qid], 10))
        recall10.append(recall_at_k(ranked, qrels[qid], 10))
        recall100.append(recall_at_k(ranked, qrels[qid], 100))
    return {
        "ndcg@10": float(np.mean(ndcg)),
        "recall@10": float(np.mean(recall10)),
        "recall@100": float(np.mean(recall100)),
    }


def evaluate_bundle(pipeline: Pipeline, eval_set: EvalSet) -> Evaluation:
    """The pipeline's bundle scored on `eval_set`, ready to be recorded in its manifest."""
    return Evaluation(
        eval_set=eval_set.id,
        queries=len(eval_set.queries),
        metrics=retrieval_scores(pipeline, eval_set.queries, eval_set.qrels),
        measured_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
