"""The one pipeline: retrieve (BM25 ∥ dense) → fuse → rerank → select evidence (MMR) → compose or abstain.

Used by the CLI, the API, the evaluator and the benchmarks. It knows nothing about HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import ValidationError

from ..config import RerankText, RetrievalParams, Settings
from ..corpus.units import join_title
from ..errors import BundleModelMismatch, QueryError
from ..index import Bundle
from ..models import CrossEncoderModel, EmbeddingModel, load_embedder, load_reranker
from .compose import unsupported_numbers
from .fuse import convex_fusion, minmax, rrf_fusion, top_k
from .schemas import Answer, Evidence, Hit, SearchResult
from .select import mmr

__all__ = ["Pipeline", "Ranking", "Timings"]

_T = TypeVar("_T")

MAX_QUESTION_CHARS = 2000
_EVIDENCE_UNITS = 5  # passage/document units whose sentences compete for evidence
_EVIDENCE_SENTENCES = 20  # sentence units considered for evidence
_SENTENCE_SIGNAL_HEAD = 100  # passage/document units re-scored by their best sentence
_PARTIAL_RERANK_WEIGHT = 0.4  # the cross-encoder's share when it reads part of a unit (docs/EVALUATION.md)


@dataclass
class Ranking:
    """Ranked units with every score that went into the order (arrays aligned with `units`)."""

    units: np.ndarray
    score: np.ndarray
    dense: np.ndarray
    bm25: np.ndarray
    rerank: np.ndarray | None
    query_vector: np.ndarray


class _Timings:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round(self.ms.get(name, 0.0) + (time.perf_counter() - started) * 1000.0, 3)


# Public name for layers over the pipeline (rag.generation) that time their own stages into the same dict.
Timings = _Timings


class Pipeline:
    def __init__(
        self,
        bundle: Bundle,
        embedder: EmbeddingModel,
        reranker: CrossEncoderModel | None = None,
        params: RetrievalParams | None = None,
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
        self.reranker = reranker
        self.params = params or RetrievalParams()
        self.load_seconds: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Settings, bundle_path: str | Path) -> Pipeline:
        # The three parts are independent and their loaders spend most of their time outside the GIL (file
        # reads, SHA-256, ONNX Runtime session creation, faiss), so they load side by side: this is most of
        # a container's cold start (docs/BENCHMARKS.md, "Cold start"). Not with torch: transformers builds
        # models on a process-wide "meta" device, and two loading at once fail ("Cannot copy out of meta
        # tensor").
        def bundle() -> Bundle:
            return Bundle.load(
                bundle_path,
                bm25=settings.bm25_params(),
                ef_search=settings.hnsw_ef_search,
                threads=settings.effective_threads(),
            )

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
        pipeline = cls(loaded_bundle, embedder, reranker, _calibrated(settings, embedder, reranker))
        pipeline.load_seconds = loaded
        return pipeline

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
        timings: _Timings | None = None,
    ) -> Ranking:
        question = _checked(question)
        p = params or self.params
        t = timings or _Timings()
        bundle = self.bundle
        with t.stage("filter"):
            allowed = bundle.unit_mask(filters)
        with t.stage("embed"):
            q = self.embedder.encode([question], kind="query")[0]
        with t.stage("bm25"):
            bm25_all = bundle.bm25.scores(question)
            bm25_list = (
                top_k(bm25_all, p.bm25_top_k, allowed) if p.alpha < 1.0 or p.fusion == "rrf" else _EMPTY
            )
        with t.stage("dense"):
            if p.alpha > 0.0 or p.fusion == "rrf":
                dense_list, dense_list_scores = bundle.dense.search(q, p.dense_top_k, allowed)
            else:
                dense_list, dense_list_scores = _EMPTY, np.zeros(0, dtype=np.float32)
        with t.stage("fuse"):
            if p.fusion == "rrf":
                units, fused = rrf_fusion([bm25_list, dense_list], p.rrf_k)
            else:
                units, fused = convex_fusion(
                    bm25_list, bm25_all[bm25_list], dense_list, dense_list_scores, p.alpha
                )
            if p.sentence_weight > 0 and bundle.manifest.build.unit != "sentence" and len(units):
                # Only the head is re-scored: it bounds the per-query cost and covers what is returned.
                head = min(_SENTENCE_SIGNAL_HEAD, len(units))
                best = _normalise(self._best_sentence_similarity(units[:head], q))
                mixed = (1.0 - p.sentence_weight) * fused[:head] + p.sentence_weight * best
                order = np.lexsort((units[:head], -mixed))
                units = np.concatenate([units[:head][order], units[head:]])
                fused = np.concatenate([mixed[order], (1.0 - p.sentence_weight) * fused[head:]])
            dense = bundle.unit_vectors[units] @ q if len(units) else np.zeros(0, dtype=np.float32)
            ranking = Ranking(units, fused, dense, bm25_all[units], None, q)
        if p.rerank and self.reranker is not None and len(units):
            with t.stage("rerank"):
                ranking = self._rerank(question, ranking, p.rerank_top_n, p.rerank_weight, p.rerank_text)
        return ranking

    def _best_sentence_similarity(self, units: np.ndarray, q: np.ndarray) -> np.ndarray:
        """For each unit, the highest cosine between the question and one of its sentences (MaxP)."""
        seg = self.bundle.seg
        first, last = seg.unit_first[units], seg.unit_last[units]
        lengths = last - first
        rows = np.repeat(first - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(
            lengths.sum()
        )
        sims = np.asarray(self.bundle.sentence_vectors[rows]) @ q
        return np.maximum.reduceat(sims, np.concatenate(([0], np.cumsum(lengths)[:-1])))

    def rerank(self, question: str, ranking: Ranking, p: RetrievalParams) -> Ranking:
        """Cross-encoder rerank of a ranking's head (e.g. one fused from several phrasings of `question`)."""
        if self.reranker is None:
            return ranking
        return self._rerank(question, ranking, p.rerank_top_n, p.rerank_weight, p.rerank_text)

    def _rerank(
        self, question: str, ranking: Ranking, top_n: int, weight: float | None, text: RerankText
    ) -> Ranking:
        """The head in the order of `weight` × cross-encoder + (1 − weight) × normalised fused score; the
        cross-encoder's own probabilities are kept in `rerank` (what confidence reads)."""
        assert self.reranker is not None
        head = ranking.units[:top_n]
        sentences = self.bundle.manifest.build.unit == "sentence"
        if weight is None:  # the cross-encoder reads all of a sentence unit, only part of a longer one
            weight = 1.0 if sentences else _PARTIAL_RERANK_WEIGHT
        if text == "best-sentence" and not sentences:
            texts = [self._best_sentence_text(u, ranking.query_vector) for u in head.tolist()]
        else:
            texts = [self._unit_text(u, with_title=True) for u in head]
        scores = self.reranker.score(question, texts)
        n = len(head)
        mixed = scores if weight >= 1.0 else weight * scores + (1.0 - weight) * _normalise(ranking.score[:n])
        order = np.argsort(-mixed, kind="stable")
        rerank = np.full(len(ranking.units), np.nan, dtype=np.float32)
        rerank[:n] = scores[order]

        def reorder(values: np.ndarray) -> np.ndarray:
            return np.concatenate([values[:n][order], values[n:]])

        # Reranked units come first in that order; their score becomes the mixed one (0..1), so the head
        # stays above the units that were not reranked.
        fused = reorder(ranking.score)
        fused[:n] = mixed[order]
        return Ranking(
            reorder(ranking.units),
            fused,
            reorder(ranking.dense),
            reorder(ranking.bm25),
            rerank,
            ranking.query_vector,
        )

    def _best_sentence_text(self, unit: int, q: np.ndarray, k: int = 1) -> str:
        """The unit's title and its `k` sentences closest to the question, in document order: on SciFact, a
        cross-encoder reading the best one ranked documents better than reading their first 128 tokens, in less
        time (docs/EVALUATION.md; `make eval-rerank` tries other k)."""
        seg = self.bundle.seg
        rows = np.arange(int(seg.unit_first[unit]), int(seg.unit_last[unit]))
        sims = np.asarray(self.bundle.sentence_vectors[rows]) @ q
        picked = np.sort(rows[np.argsort(-sims, kind="stable")[:k]])
        doc = self.bundle.documents[seg.unit_doc[unit]]
        return join_title(doc.title, " ".join(doc.text[seg.sent_start[r] : seg.sent_end[r]] for r in picked))

    def _unit_text(self, unit: int, with_title: bool = False) -> str:
        seg = self.bundle.seg
        doc = self.bundle.documents[seg.unit_doc[unit]]
        body = doc.text[seg.sent_start[seg.unit_first[unit]] : seg.sent_end[seg.unit_last[unit] - 1]]
        return join_title(doc.title, body) if with_title else body

    def search(
        self,
        question: str,
        params: RetrievalParams | None = None,
        filters: dict[str, Any] | None = None,
        limit: int = 10,
    ) -> SearchResult:
        timings = _Timings()
        ranking = self.rank(question, params, filters, timings)
        seg = self.bundle.seg
        hits = []
        for i, unit in enumerate(ranking.units[:limit].tolist()):
            doc = self.bundle.documents[seg.unit_doc[unit]]
            start, end = int(seg.sent_start[seg.unit_first[unit]]), int(seg.sent_end[seg.unit_last[unit] - 1])
            hits.append(
                Hit(
                    doc_id=doc.id,
                    title=doc.title,
                    text=doc.text[start:end],
                    char_start=start,
                    char_end=end,
                    score=float(ranking.score[i]),
                    dense_score=float(ranking.dense[i]),
                    bm25_score=float(ranking.bm25[i]),
                    rerank_score=None
                    if ranking.rerank is None or np.isnan(ranking.rerank[i])
                    else float(ranking.rerank[i]),
                )
            )
        return SearchResult(question=question, hits=hits, timings_ms=timings.ms)

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

    def evidence_candidates(self, ranking: Ranking, p: RetrievalParams) -> tuple[np.ndarray, np.ndarray]:
        """(sentence rows, relevance 0..1), best first: the sentences competing to be evidence."""
        seg = self.bundle.seg
        if not len(ranking.units):
            return _EMPTY, np.zeros(0)
        if self.bundle.manifest.build.unit == "sentence":
            n = min(_EVIDENCE_SENTENCES, len(ranking.units))
            rows = seg.unit_first[ranking.units[:n]]
            return rows, _normalise(ranking.score[:n])
        n = min(_EVIDENCE_UNITS, len(ranking.units))
        unit_rel = _normalise(ranking.score[:n])
        rows_list: list[int] = []
        parent: list[int] = []
        for i, unit in enumerate(ranking.units[:n].tolist()):
            span = range(int(seg.unit_first[unit]), int(seg.unit_last[unit]))
            rows_list.extend(span)
            parent.extend([i] * len(span))
        rows = np.asarray(rows_list, dtype=np.int64)
        sims = np.asarray(self.bundle.sentence_vectors[rows]) @ ranking.query_vector
        relevance = p.unit_weight * unit_rel[np.asarray(parent)] + (1.0 - p.unit_weight) * _normalise(sims)
        order = np.argsort(-relevance, kind="stable")
        return rows[order], relevance[order]

    def answer(
        self,
        question: str,
        params: RetrievalParams | dict[str, Any] | None = None,
        filters: dict[str, Any] | None = None,
    ) -> Answer:
        p = self.resolve(params) if isinstance(params, dict) or params is None else params
        timings = _Timings()
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
        timings: _Timings | None = None,
    ) -> Answer:
        """Evidence (MMR) and the extractive answer — or an abstention — from a ranking."""
        t = timings or _Timings()
        with t.stage("mmr"):
            rows, relevance = self.evidence_candidates(ranking, p)
            vectors = np.asarray(self.bundle.sentence_vectors[rows]) if len(rows) else np.zeros((0, 1))
            picked = mmr(relevance, vectors, p.evidence_k, p.mmr_lambda, p.evidence_min_ratio)
        with t.stage("compose"):
            evidence = [self._evidence(int(rows[i]), float(relevance[i])) for i in picked]
            reranked = ranking.rerank is not None
            if not evidence:
                confidence = 0.0
            elif reranked:
                assert ranking.rerank is not None
                confidence = float(np.nanmax(ranking.rerank))
            else:
                confidence = float(vectors[picked[0]] @ ranking.query_vector)
            threshold = p.abstain_rerank_threshold if reranked else p.abstain_threshold
            reason = None
            if not evidence:
                reason = "no evidence found" + (" within the filters" if filters else "")
            elif confidence < threshold:
                kind = "reranker score" if reranked else "similarity"
                reason = f"weak evidence: best {kind} {confidence:.3f} is below the threshold {threshold:.3f}"
            text = " ".join(e.text for e in evidence) if evidence else None
            if text and (missing := unsupported_numbers(text, [e.text for e in evidence])):
                reason = f"numbers not found in the cited evidence: {', '.join(sorted(missing))}"
        return Answer(
            question=question.strip(),
            answer=None if reason else text,
            abstained=reason is not None,
            reason=reason,
            confidence=round(confidence, 6),
            evidence=evidence,
            timings_ms=dict(t.ms),
            corpus_id=self.corpus_id,
        )

    def _evidence(self, row: int, score: float) -> Evidence:
        seg = self.bundle.seg
        doc = self.bundle.documents[seg.sent_doc[row]]
        start, end = int(seg.sent_start[row]), int(seg.sent_end[row])
        return Evidence(
            doc_id=doc.id,
            title=doc.title,
            sentence_id=f"{doc.id}#{int(seg.sent_idx[row])}",
            text=doc.text[start:end],
            char_start=start,
            char_end=end,
            score=round(score, 6),
        )


_EMPTY = np.zeros(0, dtype=np.int64)


def _normalise(values: np.ndarray) -> np.ndarray:
    """Min-max over the values themselves (fusion's scaling, with their own range)."""
    values = np.asarray(values, dtype=np.float64)
    return values if not len(values) else minmax(values, float(values.min()), float(values.max()))


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
