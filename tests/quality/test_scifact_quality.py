"""SciFact with the real all-MiniLM-L6-v2: the encoder path reproduces the published number, BM25 sits in
the published band, and the shipped defaults beat the plain hybrid baseline. Minutes of CPU: `slow`.

The weights run as `rag models export` makes them (fp32 ONNX, served without torch): the same vectors as
sentence-transformers (the export checks it) in ~half the time (sentences 2.2×, abstracts 1.5× faster than
torch on 2 cores, measured on a sample of 300 abstracts), which keeps `make test` inside its hour."""

from pathlib import Path

import pytest
from rag_testkit.samples import SHARED_DATA

from rag.config import RetrievalParams, Settings
from rag.eval import load_beir, ndcg_at_k
from rag.index import Bm25Params, Builder, Bundle
from rag.index.lexical import Bm25Index
from rag.index.manifest import BM25_DIR
from rag.models import OFFLINE_MINILM, load_embedder
from rag.models.export import export_model
from rag.pipeline import Pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scifact(tmp_path_factory: pytest.TempPathFactory):
    exported = export_model(OFFLINE_MINILM, tmp_path_factory.mktemp("minilm") / "fp32").path
    settings = Settings(embedding_model=str(exported), backend="onnx", reranker_model=None)
    embedder = load_embedder(settings)
    data = load_beir(SHARED_DATA / "scifact", "test")
    path = tmp_path_factory.mktemp("scifact") / "bundle"
    config = settings.build_config().model_copy(update={"unit": "document", "unit_title": True})
    Builder(embedder, config).build(data.documents, path)
    return settings, embedder, data, Bundle.load(path)


# Reference rows set every signal explicitly (sentence_weight=0: no best-sentence signal), so they stay the
# published setups whatever the shipped defaults become.
def ndcg(pipeline: Pipeline, data, params: RetrievalParams) -> float:
    scores = []
    for qid, question in data.queries.items():
        ranked = [doc for doc, _ in pipeline.ranked_documents(question, params)]
        scores.append(ndcg_at_k(ranked, data.qrels[qid], 10))
    return sum(scores) / len(scores)


def with_bm25(bundle: Bundle, params: Bm25Params) -> Bundle:
    bundle.bm25 = Bm25Index(Path(bundle.path) / BM25_DIR, bundle.seg.unit_doc, params)
    return bundle


def test_dense_only_matches_the_published_minilm_number(scifact) -> None:
    _, embedder, data, bundle = scifact
    score = ndcg(
        Pipeline(bundle, embedder),
        data,
        RetrievalParams(alpha=1.0, dense_top_k=1000, rerank=False, sentence_weight=0.0),
    )
    assert score == pytest.approx(0.645, abs=0.01)  # MTEB: 64.51


def test_bm25_is_inside_the_published_band(scifact) -> None:
    _, embedder, data, bundle = scifact
    pipeline = Pipeline(with_bm25(bundle, Bm25Params(k1=1.5, b=0.75, title_weight=1.0)), embedder)
    score = ndcg(
        pipeline, data, RetrievalParams(alpha=0.0, bm25_top_k=1000, rerank=False, sentence_weight=0.0)
    )
    assert 0.665 <= score <= 0.69  # BEIR 0.665, Pyserini 0.679, bm25s 0.687


def test_shipped_defaults_beat_the_plain_hybrid_baseline(scifact) -> None:
    settings, embedder, data, bundle = scifact
    plain = Pipeline(with_bm25(bundle, Bm25Params(k1=1.5, b=0.75, title_weight=1.0)), embedder)
    baseline = ndcg(plain, data, RetrievalParams(alpha=0.4, rerank=False, sentence_weight=0.0))
    defaults = settings.bm25_params()
    tuned = Pipeline(with_bm25(bundle, defaults), embedder, None, settings.retrieval_params())
    score = ndcg(tuned, data, settings.retrieval_params().model_copy(update={"rerank": False}))
    assert 0.70 <= baseline <= 0.735  # measured 0.7228 (docs/EVALUATION.md)
    assert score >= 0.72 and score > baseline
