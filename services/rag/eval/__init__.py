"""Evaluation: datasets, metrics and the `rag eval` runner (reads data it is pointed at; the product needs none)."""

from .datasets import BeirData, EvalSet, SquadData, load_beir, load_eval_set, load_squad
from .metrics import ndcg_at_k, recall_at_k, spans_overlap

__all__ = [
    "BeirData",
    "EvalSet",
    "SquadData",
    "load_beir",
    "load_eval_set",
    "load_squad",
    "ndcg_at_k",
    "recall_at_k",
    "spans_overlap",
]
