"""The one pipeline: retrieve (BM25 ∥ dense) → fuse → rerank → select evidence (MMR) → compose or abstain.

A thin orchestrator over one class per stage (retrieve.py, rerank.py, evidence.py, compose.py), used by the
CLI, the API, the evaluator and the benchmarks. It knows nothing about HTTP.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import ValidationError

from ..config import RetrievalParams, Settings
from ..corpus.units import UNIT_SAMPLE, sample_unit_texts
from ..errors import BundleModelMismatch, QueryError
from ..index import Bundle
from ..models import CrossEncoderModel, EmbeddingModel, load_embedder, load_reranker
from ..models.vocabulary import model_unread_share, unread_warning
from .candidates import CandidateSource
from .citation import cited_span
from .compose import decide
from .evidence import EvidenceSelector
from .rerank import CrossEncoderRerank
from .retrieve import Ranking, Retriever
from .schemas import Answer, CitedSpan, Hit, SearchResult
from .timings import Timings
from .units import UnitReader

__all__ = ["MAX_QUESTION_CHARS", "Pipeline", "retrieval"]

_T = TypeVar("_T")

MAX_QUESTION_CHARS = 2000


class Pipeline:
    def __init__(
        self,
        bundle: Bundle,
        embedder: EmbeddingModel,
        reranker: CrossEncoderModel | None = None,
        params: RetrievalParams | None = None,
        source: CandidateSource | None = None,
    ) -> None:
        built_with = bundle.manifest.embedding_model
        if embedder.identity.fingerprint != built_with.fingerprint:
            raise BundleModelMismatch(
                f"{bundle.path} was built with embedding model {built_with.name!r} "
                f"(fingerprint {built_with.fingerprint}); the configured model is {embedder.identity.name!r} "
                f"(fingerprint {embedder.identity.fingerprint})"
            )
        self.bundle = bundle
        self.embedder = embedder
        self.params = params or RetrievalParams()
        self.load_seconds: dict[str, float] = {}
        self.units = UnitReader(bundle)
        self.retriever = Retriever(bundle, embedder, self.units, source)
        self.evidence = EvidenceSelector(bundle, self.units)
        self.reranker = reranker

    @property
    def reranker(self) -> CrossEncoderModel | None:
        return self._reranker

    @reranker.setter
    def reranker(self, model: CrossEncoderModel | None) -> None:
        # A setter, not a plain attribute: the rerank stage must follow a reranker swapped in after
        # construction (the studies do), or reranking would silently stop.
        self._reranker = model
        self.cross_encoder = CrossEncoderRerank(self.bundle, model, self.units) if model is not None else None
        self.__dict__.pop("unread_share", None)  # measured for the models it was measured with

    @functools.cached_property
    def unread_share(self) -> dict[str, float]:
        """How much of the bundle's text each model can only spell (`models/vocabulary.py`), over up to 1,000
        of its units: a model that reads most of it letter by letter was not trained on its language."""
        texts = sample_unit_texts(self.bundle.documents, self.bundle.seg)
        models = {"embedder": self.embedder, "reranker": self.reranker}
        shares = {role: model_unread_share(model, texts) for role, model in models.items()}
        return {role: share for role, share in shares.items() if share is not None}

    def unread_warnings(self) -> list[str]:
        """What to tell the operator about models that cannot read this bundle's text (none: they can)."""
        units = min(self.bundle.seg.n_units, UNIT_SAMPLE)
        names = {"embedder": self.embedder.identity.name, "reranker": getattr(self.reranker, "name", "")}
        found = (unread_warning(role, names[role], share, units) for role, share in self.unread_share.items())
        return [warning for warning in found if warning is not None]

    @classmethod
    def from_settings(cls, settings: Settings, bundle_path: str | Path) -> Pipeline:
        # The three parts are independent and their loaders spend most of their time outside the GIL (file
        # reads, SHA-256, ONNX Runtime session creation, faiss), so they load side by side: this is most of
        # a container's cold start (docs/BENCHMARKS.md, "Cold start"). Not with torch: transformers builds
        # models on a process-wide "meta" device, and two loading at once fail ("Cannot copy out of meta
        # tensor").
        def bundle() -> Bundle:
            return Bundle.from_settings(bundle_path, settings)

        loaded: dict[str, float] = {}

        def timed(part: str, load: Callable[[], _T]) -> _T:
            started = time.perf_counter()
            result = load()
            loaded[part] = time.perf_counter() - started
            return result

        started = time.perf_counter()
        side_by_side = 3 if settings.backend == "onnx" else 1
        with ThreadPoolExecutor(max_workers=side_by_side, thread_name_prefix="rag-load") as pool:
            bundle_part = pool.submit(timed, "bundle", bundle)
            embedder_part = pool.submit(timed, "embedder", lambda: load_embedder(settings))
            reranker_part = pool.submit(timed, "reranker", lambda: load_reranker(settings))
            # The first failure in this order wins; the `with` still waits for the others to finish.
            loaded_bundle, embedder, reranker = (
                bundle_part.result(),
                embedder_part.result(),
                reranker_part.result(),
            )
        if reranker is None:
            loaded.pop("reranker", None)
        loaded["total"] = time.perf_counter() - started
        searched, source = retrieval(settings, loaded_bundle)
        pipeline = cls(searched, embedder, reranker, _calibrated(settings, embedder, reranker), source)
        pipeline.load_seconds = loaded
        return pipeline

    def with_candidates(self, source: CandidateSource | None) -> Pipeline:
        """This pipeline with candidates from `source` (None: the bundle's own indexes); models shared."""
        other = copy.copy(self)
        other.retriever = Retriever(self.bundle, self.embedder, self.units, source)
        return other

    def unavailable(self) -> str | None:
        """Why retrieval cannot answer now (its engine is down or lacks this version), or None."""
        return self.retriever.source.unavailable()

    def describe_retrieval(self) -> dict[str, str]:
        return self.retriever.source.describe()

    @property
    def corpus_id(self) -> str:
        return self.bundle.manifest.corpus_id

    def resolve(self, overrides: dict[str, Any] | None) -> RetrievalParams:
        """The pipeline's parameters with per-request overrides, validated (bad values raise QueryError)."""
        if not overrides:
            return self.params
        try:
            return RetrievalParams.model_validate({**self.params.model_dump(), **overrides})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise QueryError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    # ---- retrieval ---------------------------------------------------------------------------------------

    def rank(
        self,
        question: str,
        params: RetrievalParams | None = None,
        filters: dict[str, Any] | None = None,
        timings: Timings | None = None,
    ) -> Ranking:
        question = _checked(question)
        p = params or self.params
        t = timings or Timings()
        ranking = self.retriever.retrieve(question, p, filters, t)
        if p.rerank and self.cross_encoder is not None and len(ranking.units):
            with t.stage("rerank"):
                ranking = self.cross_encoder.rerank(question, ranking, p)
        return ranking

    def rerank(self, question: str, ranking: Ranking, p: RetrievalParams) -> Ranking:
        """Cross-encoder rerank of a ranking's head (e.g. one fused from several phrasings of `question`)."""
        if self.cross_encoder is None:
            return ranking
        return self.cross_encoder.rerank(question, ranking, p)

    def cited_span(self, doc_id: str, start: int, end: int, context: int = 300) -> CitedSpan:
        """A citation's span in its document, with `context` characters around it (for highlighting)."""
        return cited_span(self.bundle, doc_id, start, end, context)

    def search(
        self,
        question: str,
        params: RetrievalParams | None = None,
        filters: dict[str, Any] | None = None,
        limit: int = 10,
    ) -> SearchResult:
        timings = Timings()
        ranking = self.rank(question, params, filters, timings)
        hits = [self._hit(ranking, i) for i in range(min(limit, len(ranking.units)))]
        return SearchResult(question=question, hits=hits, timings_ms=timings.ms)

    def _hit(self, ranking: Ranking, i: int) -> Hit:
        unit = int(ranking.units[i])
        doc = self.bundle.documents[self.bundle.seg.unit_doc[unit]]
        start, end = self.units.span(unit)
        rerank = ranking.rerank
        return Hit(
            doc_id=doc.id,
            title=doc.title,
            text=doc.text[start:end],
            char_start=start,
            char_end=end,
            score=float(ranking.score[i]),
            dense_score=self._dense_score(ranking, i),
            bm25_score=float(ranking.bm25[i]),
            rerank_score=None if rerank is None or np.isnan(rerank[i]) else float(rerank[i]),
        )

    def _dense_score(self, ranking: Ranking, i: int) -> float:
        """The unit's cosine to the question, computed here when its source left it out (NaN)."""
        score = float(ranking.dense[i])
        if np.isnan(score):
            score = float(self.bundle.unit_vectors[ranking.units[i : i + 1]][0] @ ranking.query_vector)
        return score

    def ranked_documents(
        self, question: str, params: RetrievalParams | None = None, filters: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        """Documents in rank order (a document scores as its best unit), for document-level evaluation."""
        ranking = self.rank(question, params, filters)
        seen: dict[str, float] = {}
        for unit, score in zip(ranking.units.tolist(), ranking.score.tolist(), strict=True):
            doc_id = self.bundle.documents[self.bundle.seg.unit_doc[unit]].id
            seen.setdefault(doc_id, score)
        return list(seen.items())

    # ---- evidence and answer -----------------------------------------------------------------------------

    def answer(
        self,
        question: str,
        params: RetrievalParams | dict[str, Any] | None = None,
        filters: dict[str, Any] | None = None,
    ) -> Answer:
        p = self.resolve(params) if isinstance(params, dict) or params is None else params
        timings = Timings()
        with timings.stage("total"):
            ranking = self.rank(question, p, filters, timings)
            answer = self.compose(question, ranking, p, filters, timings)
        answer.timings_ms.update(timings.ms)
        return answer

    def compose(
        self,
        question: str,
        ranking: Ranking,
        p: RetrievalParams,
        filters: dict[str, Any] | None = None,
        timings: Timings | None = None,
    ) -> Answer:
        """Evidence (MMR) and the extractive answer — or an abstention — from a ranking."""
        t = timings or Timings()
        with t.stage("mmr"):
            selection = self.evidence.select(ranking, p)
        with t.stage("compose"):
            evidence = [
                self.units.evidence(int(selection.rows[i]), float(selection.relevance[i]))
                for i in selection.picked
            ]
            decision = decide(evidence, selection, ranking, p, filters)
        return Answer(
            question=question.strip(),
            answer=decision.answer,
            abstained=decision.reason is not None,
            reason=decision.reason,
            confidence=round(decision.confidence, 6),
            evidence=decision.evidence,
            timings_ms=dict(t.ms),
            corpus_id=self.corpus_id,
        )


def retrieval(settings: Settings, bundle: Bundle) -> tuple[Bundle, CandidateSource | None]:
    """The bundle as the pipeline reads it, and where its candidates come from: (bundle, None), its own
    indexes (the default); else the configured engine, which also holds the unit vectors of a bundle loaded
    without its indexes."""
    if settings.retrieval_backend != "milvus":
        return bundle, None
    from ..milvus import milvus_candidates

    source = milvus_candidates(settings, bundle)
    return (bundle if bundle.has_indexes else bundle.with_unit_vectors(source.rows())), source


def _checked(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise QueryError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise QueryError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    return question.strip()


def _calibrated(
    settings: Settings, embedder: EmbeddingModel, reranker: CrossEncoderModel | None
) -> RetrievalParams:
    """The settings' retrieval parameters, with the abstention thresholds recorded in the models' folders (the
    reranker's probability, the embedder's cosine) in place of the generic defaults, unless
    RAG_ABSTAIN_RERANK_THRESHOLD / RAG_ABSTAIN_THRESHOLD is set."""
    params = settings.retrieval_params()
    update = {}
    for field, model in (("abstain_rerank_threshold", reranker), ("abstain_threshold", embedder)):
        recorded = getattr(model, "abstain_threshold", None)
        if recorded is not None and field not in settings.model_fields_set:
            update[field] = recorded
    return params.model_copy(update=update)
