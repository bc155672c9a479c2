"""Evaluation: datasets, metrics and scoring a bundle (`rag eval`; reads data it is pointed at, the product needs
none). The studies that chose the defaults live in benchmarks/studies/."""

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
