"""Query expansion: paraphrases parsed and deduplicated; their rankings fused by RRF over the one Pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.config import RetrievalParams
from rag.generation.expansion import expanded_ranking, expansion_messages, parse_paraphrases
from rag.index import Bundle
from rag.pipeline import Pipeline, Timings, rrf_fusion


@pytest.fixture(scope="module")
def pipeline(sample_bundle: Path, embedder, reranker) -> Pipeline:
    return Pipeline(Bundle.load(sample_bundle), embedder, reranker, RetrievalParams(abstain_threshold=-1.0))


def test_paraphrases_are_cleaned_deduplicated_and_capped() -> None:
    reply = (
        "Here are rewrites:\n"
        "1. When did construction of the Eiffel Tower finish?\n"
        "2) when did construction of the eiffel tower finish\n"
        "- When was the Eiffel Tower completed?\n"
        '* "Eiffel Tower completion year"\n'
        "\n"
        "Year the Eiffel Tower opened\n"
        "One more\n"
    )
    got = parse_paraphrases(reply, "When was the Eiffel Tower completed?", 3)
    assert got == [
        "When did construction of the Eiffel Tower finish?",
        "Eiffel Tower completion year",
        "Year the Eiffel Tower opened",
    ]
    assert parse_paraphrases("x" * 2001 + "\nok", "q", 2) == ["ok"]
    assert parse_paraphrases("", "q", 2) == []


def test_prompt_asks_for_n_rewrites_of_the_question() -> None:
    (message,) = expansion_messages("What do  roots\nabsorb?", 4)
    assert (
        "4 different ways" in message["content"] and "Question: What do roots absorb?" in message["content"]
    )


def test_rankings_of_each_phrasing_are_rrf_fused_then_reranked_once(pipeline: Pipeline) -> None:
    queries = ["What do roots absorb?", "boiling point of water", "Eiffel Tower height"]
    params = pipeline.params.model_copy(update={"rerank": False})
    singles = [pipeline.rank(q, params) for q in queries]
    expected_units, expected_scores = rrf_fusion([r.units for r in singles], params.rrf_k)
    timings = Timings()
    fused = expanded_ranking(pipeline, queries, params, None, timings)
    assert fused.units.tolist() == expected_units.tolist()
    assert np.allclose(fused.score, expected_scores)
    assert len(set(fused.units.tolist())) == len(fused.units)  # a unit found by several phrasings: once
    # every phrasing's best unit made it into the fused list
    assert {int(r.units[0]) for r in singles} <= set(fused.units.tolist())
    # scores that describe the units are the original question's
    assert np.allclose(fused.dense, pipeline.bundle.unit_vectors[fused.units] @ singles[0].query_vector)
    assert np.allclose(fused.query_vector, singles[0].query_vector)
    assert "rerank" not in timings.ms
    reranked = expanded_ranking(
        pipeline, queries, pipeline.params.model_copy(update={"rerank": True}), None, Timings()
    )
    assert reranked.rerank is not None and set(reranked.units.tolist()) == set(fused.units.tolist())


def test_filters_apply_to_every_phrasing(pipeline: Pipeline) -> None:
    params = pipeline.params.model_copy(update={"rerank": False})
    ranking = expanded_ranking(
        pipeline, ["roots", "Eiffel Tower", "water"], params, {"tags": "botany"}, Timings()
    )
    docs = {pipeline.bundle.documents[pipeline.bundle.seg.unit_doc[u]].id for u in ranking.units.tolist()}
    assert docs == {"roots"}


def test_one_query_is_the_plain_ranking(pipeline: Pipeline) -> None:
    plain = pipeline.rank("What do roots absorb?")
    same = expanded_ranking(pipeline, ["What do roots absorb?"], pipeline.params, None, Timings())
    assert same.units.tolist() == plain.units.tolist()
