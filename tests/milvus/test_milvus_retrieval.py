"""Retrieval on Milvus (RAG_RETRIEVAL_BACKEND=milvus) against a real engine on loopback (milvus-lite 2.5.1's
server, over gRPC): publishing a bundle, the candidates it gives against the bundle's own, filters, and
answers through the pipeline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rag_testkit.milvus import MilvusLite

from rag.config import RetrievalParams
from rag.deadline import until
from rag.errors import BundleCorrupt, MilvusError, QueryError, RetrievalUnavailable
from rag.index import Bundle
from rag.milvus import bundle_version, connect
from rag.milvus.candidates import EngineVectors, MilvusCandidates, filter_expression
from rag.milvus.publish import publish_bundle
from rag.milvus.schema import collection_name
from rag.pipeline import Pipeline, Timings
from rag.pipeline.candidates import BundleCandidates

QUESTIONS = ("When was the Eiffel Tower completed?", "What do roots absorb?", "Why do cats purr?")
FILTERS: list[dict[str, Any]] = [
    {"doc_id": "roots"},
    {"doc_id": {"not": "roots"}},
    {"tags": "biology"},
    {"tags": {"not": ["botany"]}},
    {"tags": "biology", "doc_id": {"not": "photo"}},
    {"tags": "nothing-has-this"},
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusLite]:
    server = MilvusLite(tmp_path_factory.mktemp("milvus")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def published(engine: MilvusLite, sample_bundle: Path, settings) -> Bundle:
    bundle = Bundle.load(sample_bundle)
    client = connect(settings, engine.uri)
    publish_bundle(client, bundle, bundle_version(bundle), "rag")
    return bundle


def source(engine: MilvusLite, bundle: Bundle, settings, prefix: str = "rag") -> MilvusCandidates:
    collection = collection_name(prefix, bundle_version(bundle))
    return MilvusCandidates(lambda: connect(settings, engine.uri), collection, bundle, 2.0, bm25=True)


def test_publishing_checks_the_collection_and_can_run_again(
    engine: MilvusLite, published: Bundle, settings
) -> None:
    client = connect(settings, engine.uri)
    again = publish_bundle(client, published, bundle_version(published), "rag")
    assert not again.created and again.rows == published.seg.n_units
    name = collection_name("rag", bundle_version(published))
    assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == published.seg.n_units
    row = client.query(
        name, filter="unit == 0", output_fields=["doc_id", "char_start", "char_end", "sentences"]
    )[0]
    doc = published.documents[int(published.seg.unit_doc[0])]
    assert row["doc_id"] == doc.id and row["sentences"]["items"][0][1:3] == [
        row["char_start"],
        row["char_end"],
    ]


def test_a_collection_of_another_version_is_not_taken_for_this_one(
    engine: MilvusLite, published: Bundle, other_bundle: Path, settings
) -> None:
    """The version names the collection; its description must say the same version and corpus."""
    client = connect(settings, engine.uri)
    with pytest.raises(MilvusError, match="not version"):
        publish_bundle(client, Bundle.load(other_bundle), bundle_version(published), "rag")


def test_dense_candidates_are_the_flat_bundles(
    engine: MilvusLite, published: Bundle, embedder, settings
) -> None:
    """FLAT inner product in the engine is the bundle's flat index: the same units, the same cosines."""
    milvus, local = source(engine, published, settings), BundleCandidates(published)
    p = RetrievalParams(alpha=1.0, dense_top_k=8)
    for question in QUESTIONS:
        q = embedder.encode([question], kind="query")[0]
        a, b = (
            milvus.candidates(question, q, p, None, Timings()),
            local.candidates(question, q, p, None, Timings()),
        )
        assert a.dense_units.tolist() == b.dense_units.tolist()
        np.testing.assert_allclose(a.dense_scores, b.dense_scores, atol=1e-5)
        assert len(a.bm25_units) == 0  # alpha 1: the lexical list has no weight and is not searched


@pytest.mark.parametrize("filters", FILTERS, ids=[str(f) for f in FILTERS])
def test_filters_keep_what_the_bundle_keeps(
    filters: dict[str, Any], engine: MilvusLite, published: Bundle, embedder, settings
) -> None:
    milvus, local = source(engine, published, settings), BundleCandidates(published)
    p = RetrievalParams(alpha=1.0, dense_top_k=50)
    q = embedder.encode(["water"], kind="query")[0]
    a = milvus.candidates("water", q, p, filters, Timings())
    b = local.candidates("water", q, p, filters, Timings())
    assert a.dense_units.tolist() == b.dense_units.tolist()


def test_filter_expressions(published: Bundle) -> None:
    assert filter_expression({"tags": ["biology", 2024]}, published) == (
        'json_contains_any(filters["tags"], ["biology", "2024"])'
    )
    roots = published.document_rows("doc_id", "roots").tolist()
    assert filter_expression({"doc_id": {"not": "roots"}}, published) == f"doc_row not in {roots}"
    assert filter_expression({"doc_id": {"not": "no-such-doc"}}, published) == ""
    with pytest.raises(QueryError, match="unknown filter field 'colour'"):
        filter_expression({"colour": "red"}, published)
    with pytest.raises(QueryError, match=r"only \{'not': \.\.\.\}"):
        filter_expression({"tags": {"in": "x"}}, published)


def test_bm25_candidates_find_the_keyword_document(
    engine: MilvusLite, published: Bundle, embedder, settings
) -> None:
    """Milvus' BM25 (its English analyzer, title in the text) is not the bundle's, but the document a
    question names comes first in both."""
    milvus, local = source(engine, published, settings), BundleCandidates(published)
    p = RetrievalParams(alpha=0.0)
    for question in ("Eiffel Tower completed", "roots absorb minerals", "water boils altitude"):
        q = embedder.encode([question], kind="query")[0]
        a, b = (
            milvus.candidates(question, q, p, None, Timings()),
            local.candidates(question, q, p, None, Timings()),
        )
        doc = published.seg.unit_doc
        assert doc[a.bm25_units[0]] == doc[b.bm25_units[0]], question
        assert np.all(np.diff(a.bm25_scores) <= 0) and np.all(a.bm25_scores > 0)
        assert a.bm25_of(a.bm25_units[:1])[0] == pytest.approx(float(a.bm25_scores[0]))


def test_answers_through_milvus_are_the_bundles(
    engine: MilvusLite, published: Bundle, embedder, reranker, settings
) -> None:
    local = Pipeline(published, embedder, reranker, settings.retrieval_params())
    remote = Pipeline(
        published, embedder, reranker, settings.retrieval_params(), source=source(engine, published, settings)
    )
    for question in QUESTIONS:
        a, b = remote.answer(question), local.answer(question)
        assert a.abstained == b.abstained, question
        assert [e.sentence_id for e in a.evidence] == [e.sentence_id for e in b.evidence], question


def test_a_bundle_without_its_indexes_answers_the_same_with_vectors_from_the_engine(
    engine: MilvusLite, published: Bundle, embedder, reranker, settings
) -> None:
    """What a pod with RAG_RETRIEVAL_BACKEND=milvus loads: no BM25 or dense index, unit vectors from the
    collection (for dense scores, evidence and MMR)."""
    thin = Bundle.load(published.path, indexes=False)
    assert not thin.has_indexes
    with pytest.raises(BundleCorrupt, match="dense index was not loaded"):
        thin.dense.search(np.zeros(384, dtype=np.float32), 5)
    candidates = source(engine, thin, settings)
    remote = Pipeline(
        thin.with_unit_vectors(candidates.rows()),
        embedder,
        reranker,
        settings.retrieval_params(),
        source=candidates,
    )
    local = Pipeline(published, embedder, reranker, settings.retrieval_params())
    for question in QUESTIONS:
        a, b = remote.answer(question), local.answer(question)
        assert [e.sentence_id for e in a.evidence] == [e.sentence_id for e in b.evidence], question
        assert a.confidence == pytest.approx(b.confidence, abs=1e-5), question
    # A hit's cosine: the engine's, or computed when only BM25 found the unit (the engine leaves it NaN).
    few = settings.retrieval_params().model_copy(update={"dense_top_k": 1})  # every other hit from BM25
    wide = "water, light, roots, cats and the tower"
    hits, expected = remote.search(wide, few, limit=20).hits, local.search(wide, few, limit=20).hits
    assert len(hits) > 3
    assert [(h.doc_id, h.char_start) for h in hits] == [(h.doc_id, h.char_start) for h in expected]
    assert [h.dense_score for h in hits] == pytest.approx([h.dense_score for h in expected], abs=1e-5)
    units = np.array([[3, 1], [0, 2]])
    fetched = EngineVectors(candidates, 384)[units]  # an empty cache: read by primary key
    assert np.allclose(fetched, published.unit_vectors[units], atol=1e-6)
    with pytest.raises(RetrievalUnavailable, match="not this bundle's version"):
        EngineVectors(candidates, 384)[np.array([published.seg.n_units + 5])]


def test_an_engine_that_is_down_is_a_retrieval_unavailable(
    tmp_path: Path, published: Bundle, embedder, settings
) -> None:
    down = MilvusLite(tmp_path / "down")  # never started: nothing listens on its port
    candidates = source(down, published, settings)
    q = embedder.encode(["water"], kind="query")[0]
    with pytest.raises(RetrievalUnavailable, match="Milvus"):
        candidates.candidates("water", q, RetrievalParams(), None, Timings())
    assert candidates.unavailable().startswith("Milvus unreachable")


def test_readiness_names_a_missing_collection(engine: MilvusLite, published: Bundle, settings) -> None:
    assert source(engine, published, settings).unavailable() is None
    missing = source(engine, published, settings, prefix="elsewhere")
    assert "no collection elsewhere_v_" in (missing.unavailable() or "")


def test_a_publish_that_stopped_half_way_is_not_served_and_is_written_again(
    engine: MilvusLite, published: Bundle, settings
) -> None:
    client = connect(settings, engine.uri)
    version = bundle_version(published)
    publish_bundle(client, published, version, "partial")
    name = collection_name("partial", version)
    client.delete(name, filter="unit >= 3")  # what a publish killed after its first rows leaves
    client.flush(name)
    reason = source(engine, published, settings, prefix="partial").unavailable() or ""
    assert f"holds 3 of {published.seg.n_units} units" in reason
    again = publish_bundle(client, published, version, "partial")
    assert again.created and source(engine, published, settings, prefix="partial").unavailable() is None


class RecordingClient:
    """The real client, noting the timeout each search was given."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.timeouts = inner, []

    def search(self, *args: Any, **kwargs: Any) -> Any:
        self.timeouts.append(kwargs["timeout"])
        return self.inner.search(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_searches_end_with_the_requests_deadline(
    engine: MilvusLite, published: Bundle, embedder, settings
) -> None:
    """Each try is bounded by what is left of the request's deadline (set by admission), not only by
    RAG_MILVUS_TIMEOUT_SECONDS; past the deadline nothing is sent."""
    recording = RecordingClient(connect(settings, engine.uri))
    collection = collection_name("rag", bundle_version(published))
    candidates = MilvusCandidates(lambda: recording, collection, published, 2.0, bm25=True)
    q = embedder.encode(["water"], kind="query")[0]
    with until(time.monotonic() + 0.5):
        found = candidates.candidates("water", q, RetrievalParams(), None, Timings())
    assert len(found.dense_units) and recording.timeouts and max(recording.timeouts) <= 0.5
    with until(time.monotonic() - 0.1), pytest.raises(RetrievalUnavailable, match="no time left"):
        candidates.candidates("water", q, RetrievalParams(), None, Timings())
    assert len(recording.timeouts) == 2  # the BM25 and dense searches of the first call only


def test_closing_one_client_leaves_the_others_searching(
    engine: MilvusLite, published: Bundle, settings
) -> None:
    """pymilvus shares a connection between clients of one URI, so a client closed after a failed call (or by
    the reloader once it has read an alias) closed every other's channel: searches in flight failed with
    "Cannot invoke RPC on closed channel" (found under load by the channels' promote test)."""
    searching, closed = connect(settings, engine.uri), connect(settings, engine.uri)
    closed.close()
    name = collection_name("rag", bundle_version(published))
    assert searching.has_collection(name, timeout=5, retry_times=0)
    hits = searching.search(name, data=[[0.1] * 384], anns_field="vector", limit=3, timeout=5, retry_times=0)
    assert len(hits[0]) == 3
