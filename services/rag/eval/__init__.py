"""Evaluation: datasets, metrics and the `rag eval` runner (reads data it is pointed at; the product needs none)."""

from .datasets import BeirData, SquadData, load_beir, load_squad
from .metrics import ndcg_at_k, recall_at_k, spans_overlap

__all__ = ["BeirData", "SquadData", "load_beir", "load_squad", "ndcg_at_k", "recall_at_k", "spans_overlap"]
