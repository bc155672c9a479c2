"""The score-combination rules `make eval-rerank-mix` compares (benchmarks/eval_rerank_mix.py)."""

import numpy as np
import pytest
from eval_rerank_mix import RULES, mixed

from rag.pipeline.fuse import normalise

RNG = np.random.default_rng(7)
LOGIT, FUSED = RNG.normal(0, 4, 20), RNG.uniform(0.2, 0.9, 20)


def order(x: np.ndarray) -> list[int]:
    return np.argsort(-x, kind="stable").tolist()


def test_the_probability_rule_is_the_mixing_the_pipeline_ships() -> None:
    shipped = 0.4 / (1 + np.exp(-LOGIT)) + 0.6 * normalise(FUSED)  # services/rag/pipeline/rerank.py
    assert order(mixed("probability", 0.4, LOGIT, FUSED)) == order(shipped)


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_at_full_weight_is_the_cross_encoders_order(rule: str) -> None:
    assert order(mixed(rule, 1.0, LOGIT, FUSED)) == order(LOGIT)


@pytest.mark.parametrize("rule", ["min-max logit", "z-score", "rrf 10"])
def test_rules_on_logits_ignore_their_scale(rule: str) -> None:
    assert order(mixed(rule, 0.5, LOGIT, FUSED)) == order(mixed(rule, 0.5, 3 * LOGIT + 1, FUSED))
    assert order(mixed(rule, 0.5, LOGIT, FUSED)) != order(LOGIT)  # the fused score counts


def test_make_eval_rerank_interpolates_as_the_probability_rule() -> None:
    from eval_rerank import interpolated

    probability = 1 / (1 + np.exp(-LOGIT))
    assert order(interpolated(0.4)(probability, FUSED)) == order(mixed("probability", 0.4, LOGIT, FUSED))
