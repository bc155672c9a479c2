from pathlib import Path

import numpy as np
import pytest

from rag.config import RetrievalParams
from rag.errors import QueryError
from rag.index import Bundle
from rag.pipeline import Pipeline


@pytest.fixture(scope="module")
def pipeline(sample_bundle: Path, embedder, reranker) -> Pipeline:
    return Pipeline(
        Bundle.load(sample_bundle),
        embedder,
        reranker,
        RetrievalParams(abstain_threshold=-1.0, abstain_rerank_threshold=0.0),
    )


def test_answer_is_verbatim_evidence_with_exact_citations(pipeline: Pipeline) -> None:
    answer = pipeline.answer("When was the Eiffel Tower completed?")
    assert not answer.abstained and answer.answer
    assert 1 <= len(answer.evidence) <= 3
    docs = {d.id: d for d in pipeline.bundle.documents}
    for e in answer.evidence:
        assert docs[e.doc_id].text[e.char_start : e.char_end] == e.text
        assert e.sentence_id.startswith(e.doc_id + "#") and e.title == docs[e.doc_id].title
    assert answer.answer == " ".join(e.text for e in answer.evidence)
    assert {"embed", "bm25", "dense", "fuse", "rerank", "mmr", "compose", "total"} <= set(answer.timings_ms)
    assert answer.corpus_id == pipeline.bundle.manifest.corpus_id


def test_lexical_match_wins_without_dense_or_rerank(pipeline: Pipeline) -> None:
    params = RetrievalParams(alpha=0.0, rerank=False, abstain_threshold=-1.0)
    answer = pipeline.answer("Eiffel Tower completed", params)
    assert answer.evidence[0].text == "The Eiffel Tower was completed in 1889."
    assert "rerank" not in answer.timings_ms


def test_filters_apply_inside_retrieval_not_after_truncation(pipeline: Pipeline) -> None:
    # With bm25_top_k=1 and dense_top_k=1 an unfiltered search keeps only the best unit; the filter must make
    # the search itself pick from the allowed document.
    params = RetrievalParams(bm25_top_k=1, dense_top_k=1, rerank=False, abstain_threshold=-1.0)
    hits = pipeline.search("Eiffel Tower", params, filters={"doc_id": "roots"}).hits
    assert hits and {h.doc_id for h in hits} == {"roots"}
    excluded = pipeline.search("Eiffel Tower", params, filters={"doc_id": {"not": "paris.md"}}).hits
    assert "paris.md" not in {h.doc_id for h in excluded}


def test_rrf_fusion_and_passage_units(pipeline: Pipeline) -> None:
    answer = pipeline.answer(
        "water boiling temperature", RetrievalParams(fusion="rrf", rerank=False, abstain_threshold=-1.0)
    )
    assert answer.evidence and answer.evidence[0].doc_id == "water.txt"


def test_abstains_when_evidence_is_weak(pipeline: Pipeline) -> None:
    strict = RetrievalParams(rerank=False, abstain_threshold=1.01)
    answer = pipeline.answer("When was the Eiffel Tower completed?", strict)
    assert answer.abstained and answer.answer is None
    assert answer.reason and "below the threshold 1.010" in answer.reason
    assert answer.evidence  # what was found is still shown
    reranked = pipeline.answer("When was the Eiffel Tower completed?", {"abstain_rerank_threshold": 1.0})
    assert reranked.abstained and "reranker score" in (reranked.reason or "")


def test_no_evidence_inside_the_filter(pipeline: Pipeline) -> None:
    answer = pipeline.answer(
        "zebra quantum", RetrievalParams(alpha=0.0, rerank=False), filters={"doc_id": "roots"}
    )
    assert (
        answer.abstained and answer.reason == "no evidence found within the filters" and answer.evidence == []
    )


@pytest.mark.parametrize(
    ("question", "filters", "message"),
    [
        ("   ", None, "empty"),
        ("x" * 2001, None, "longer than 2000"),
        ("water", {"colour": "red"}, "unknown filter field 'colour'"),
        ("water", {"tags": {"gt": 1}}, "only {'not': ...}"),
    ],
)
def test_bad_queries_raise_query_error(pipeline: Pipeline, question: str, filters, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        pipeline.answer(question, filters=filters)


def test_document_units_pick_sentences_inside_the_best_documents(
    tmp_path: Path, corpus_dir: Path, embedder
) -> None:
    from rag.config import BuildConfig
    from rag.corpus import load_corpus
    from rag.index import Builder

    documents, _ = load_corpus(corpus_dir)
    Builder(embedder, BuildConfig(unit="document")).build(documents, tmp_path / "docs")
    pipeline = Pipeline(
        Bundle.load(tmp_path / "docs"), embedder, None, RetrievalParams(alpha=0.0, abstain_threshold=-1.0)
    )
    assert pipeline.bundle.seg.n_units == 5 and pipeline.bundle.sentence_vectors.shape[0] > 5
    answer = pipeline.answer("Eiffel Tower completed 1889")
    assert answer.evidence[0].doc_id == "paris.md"
    text = {d.id: d.text for d in documents}["paris.md"]
    assert all(text[e.char_start : e.char_end] == e.text for e in answer.evidence)
    ranked = pipeline.ranked_documents("Eiffel Tower")
    assert ranked[0][0] == "paris.md" and len({d for d, _ in ranked}) == len(ranked)


def test_best_sentence_signal_reorders_document_units(tmp_path: Path, embedder) -> None:
    from rag.config import BuildConfig
    from rag.corpus import Document
    from rag.index import Builder

    filler = " ".join(f"Filler sentence number {i} talks about nothing much." for i in range(12))
    documents = [
        Document("long", "Long", filler + " Water boils at 100 degrees Celsius at sea level."),
        Document("short", "Short", "Cats sleep most of the day."),
    ]
    Builder(embedder, BuildConfig(unit="document")).build(documents, tmp_path / "b")
    bundle = Bundle.load(tmp_path / "b")
    pipeline = Pipeline(bundle, embedder, None, RetrievalParams(rerank=False))
    q = embedder.encode(["Water boils at 100 degrees Celsius at sea level."], kind="query")[0]
    best = pipeline.units.best_sentence_similarity(np.array([0, 1]), q)
    sims = np.asarray(bundle.sentence_vectors) @ q
    assert best[0] == pytest.approx(sims[:13].max()) and best[1] == pytest.approx(sims[13])
    only_sentences = RetrievalParams(rerank=False, alpha=1.0, sentence_weight=1.0)
    ranking = pipeline.rank("Water boils at 100 degrees Celsius at sea level.", only_sentences)
    assert ranking.units[0] == int(np.argmax(best))


@pytest.mark.parametrize(("overrides", "message"), [({"alpha": 5}, "alpha"), ({"colour": 1}, "colour")])
def test_bad_parameter_overrides_raise_query_error(pipeline: Pipeline, overrides, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        pipeline.answer("water", overrides)


def test_rerank_weight_mixes_the_cross_encoder_with_the_fused_order(pipeline: Pipeline) -> None:
    """RAG_RERANK_WEIGHT: 1 orders the head by the cross-encoder alone, 0 keeps the fused order; the
    cross-encoder's probabilities stay in `rerank` whatever the weight (confidence reads them)."""
    question = "When was the Eiffel Tower completed?"
    fused = pipeline.rank(question, RetrievalParams(rerank=False))
    head = 6
    alone = pipeline.rank(question, RetrievalParams(rerank_top_n=head, rerank_weight=1.0))
    kept = pipeline.rank(question, RetrievalParams(rerank_top_n=head, rerank_weight=0.0))
    half = pipeline.rank(question, RetrievalParams(rerank_top_n=head, rerank_weight=0.5))
    assert alone.rerank is not None and kept.rerank is not None and half.rerank is not None
    assert np.all(np.diff(alone.rerank[:head]) <= 0)  # descending cross-encoder probabilities
    assert kept.units[:head].tolist() == fused.units[:head].tolist()
    ce = dict(zip(alone.units[:head].tolist(), alone.rerank[:head].tolist(), strict=True))
    assert dict(zip(kept.units[:head].tolist(), kept.rerank[:head].tolist(), strict=True)) == pytest.approx(
        ce
    )
    assert set(half.units[:head].tolist()) == set(ce) and np.all(np.diff(half.score[:head]) <= 0)
    assert alone.units[:head].tolist() != kept.units[:head].tolist()  # the tiny reranker does reorder


class RecordingReranker:
    """A cross-encoder that scores by length and remembers what it was given."""

    name = "recording"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def score(self, query: str, passages: list[str], *, batch_size: int = 32) -> np.ndarray:
        self.texts += passages
        return np.asarray([len(p) / 1000 for p in passages], dtype=np.float32)


def test_rerank_text_best_sentence_gives_the_cross_encoder_the_title_and_closest_sentence(
    tmp_path: Path, embedder
) -> None:
    """RAG_RERANK_TEXT: for document units, "best-sentence" (the default) scores title + the sentence closest to
    the question; "unit" scores the whole unit."""
    from rag.config import BuildConfig
    from rag.corpus import Document
    from rag.index import Builder

    filler = " ".join(f"Filler sentence number {i} talks about nothing much." for i in range(12))
    water = "Water boils at 100 degrees Celsius at sea level."
    documents = [Document("long", "Long", f"{filler} {water}"), Document("short", "Short", "Cats sleep.")]
    Builder(embedder, BuildConfig(unit="document")).build(documents, tmp_path / "b")
    recorder = RecordingReranker()
    pipeline = Pipeline(Bundle.load(tmp_path / "b"), embedder, recorder, RetrievalParams())  # type: ignore[arg-type]
    pipeline.rank(water)
    q = embedder.encode([water], kind="query")[0]
    sims = np.asarray(pipeline.bundle.sentence_vectors) @ q
    closest = pipeline.units.evidence(int(np.argmax(sims[:13])), 0.0).text
    assert sorted(recorder.texts) == sorted([f"Long. {closest}", "Short. Cats sleep."])
    recorder.texts.clear()
    pipeline.rank(water, RetrievalParams(rerank_text="unit"))
    assert sorted(recorder.texts) == sorted([f"Long. {filler} {water}", "Short. Cats sleep."])


def test_rerank_title_false_reads_units_without_their_titles(tmp_path: Path, embedder) -> None:
    """RAG_RERANK_TITLE: by default the cross-encoder reads a unit's title before its text (a sentence unit's,
    and the best sentence of a document unit); false leaves the title out of both."""
    from rag.config import BuildConfig
    from rag.corpus import Document
    from rag.index import Builder

    title, sentence = "A long title about the boiling point of water", "Water boils at 100 degrees."
    documents = [Document("w", title, f"{sentence} Ice melts.")]
    question = "At what temperature does water boil?"
    for unit in ("sentence", "document"):
        Builder(embedder, BuildConfig(unit=unit)).build(documents, tmp_path / unit)
        recorder = RecordingReranker()
        pipeline = Pipeline(Bundle.load(tmp_path / unit), embedder, recorder, RetrievalParams())  # type: ignore[arg-type]
        pipeline.rank(question)
        assert f"{title}. {sentence}" in recorder.texts, unit
        recorder.texts.clear()
        pipeline.rank(question, RetrievalParams(rerank_title=False))
        assert sentence in recorder.texts and not any(title in t for t in recorder.texts), unit


def test_a_reranker_set_after_construction_reranks(sample_bundle: Path, embedder) -> None:
    """The studies swap the reranker into a built pipeline; the rerank stage must follow it."""
    pipeline = Pipeline(Bundle.load(sample_bundle), embedder, None, RetrievalParams())
    question = "What do roots absorb?"
    assert pipeline.rank(question).rerank is None
    recorder = RecordingReranker()
    pipeline.reranker = recorder  # type: ignore[assignment]
    ranking = pipeline.rank(question)
    assert recorder.texts and ranking.rerank is not None
    pipeline.reranker = None
    assert pipeline.rank(question).rerank is None
