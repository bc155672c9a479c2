"""Candidates from a Milvus collection: dense search and BM25 in the engine, filters as Milvus expressions.

Both lists come back as they would from the bundle, and the pipeline fuses them with its own fusion (convex or
RRF), so the two backends differ only in what the engine scores: Milvus' BM25 (its analyzer, one text field
with the title in it) against the bundle's (its stemmer, title and body weighted apart), and FLAT inner
product, which is the bundle's flat search.

Every call carries a timeout; an engine that is down, slow or has lost its collection is a
`RetrievalUnavailable` (503), never a 500.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import RetrievalParams
from ..deadline import remaining
from ..errors import RetrievalUnavailable
from ..index import Bundle
from ..pipeline.candidates import EMPTY, NO_SCORES, Candidates, lists_wanted, score_lookup
from ..pipeline.timings import Timings
from .publish import row_count
from .schema import version_of

__all__ = ["EngineVectors", "MilvusCandidates", "filter_expression"]

_CHECK_EVERY = 2.0  # seconds a readiness answer is reused: probes and balancers ask often
_RETRIES = 1  # a failed search is tried once more, if the request's deadline leaves time
_CACHED = 10_000  # unit vectors kept per process (15 MB at 384 dimensions)


def filter_expression(filters: dict[str, Any] | None, bundle: Bundle) -> str:
    """The bundle's filter semantics (README "Filters") as a Milvus boolean expression.

    A wanted value is tested in the engine, on the `filters` JSON field where every value is a list of
    strings. An excluded one is sent as the documents it excludes (`doc_row not in [...]`), found in the
    bundle's field index: milvus-lite has no `not` over an expression, and `not in` is what every Milvus
    runs."""
    if not filters:
        return ""
    parts = []
    for field, values, excluded in bundle.filter_terms(filters):
        if excluded:
            rows = bundle.document_rows(field, values)
            if len(rows):
                parts.append(f"doc_row not in {rows.tolist()}")
            continue
        strings = json.dumps([str(v) for v in values], ensure_ascii=False)
        parts.append(f"json_contains_any(filters[{json.dumps(field)}], {strings})")
    return " and ".join(parts)


class MilvusCandidates:
    name = "milvus"

    def __init__(
        self, connect: Callable[[], Any], collection: str, bundle: Bundle, timeout: float, bm25: bool
    ) -> None:
        self._connect = connect
        self._client: Any = None
        self._client_lock = threading.Lock()
        self.collection = collection
        self.bundle = bundle
        self.timeout = timeout
        self.bm25 = bm25
        self._checked: tuple[float, str | None] = (-_CHECK_EVERY, None)
        self._check_lock = threading.Lock()

    def unavailable(self) -> str | None:
        """Why this collection cannot serve now (unreachable, missing, another corpus, another size), or None.
        `/ready` answers 503 with this reason; it is asked at most every two seconds."""
        with self._check_lock:
            at, reason = self._checked
            if time.monotonic() - at < _CHECK_EVERY:
                return reason
            reason = self._check()
            self._checked = (time.monotonic(), reason)
            return reason

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "collection": self.collection}

    def client(self) -> Any:
        """The connection, made on first use: a pod starts (and says why it is not ready) while Milvus is
        still down, and connects once it is up."""
        with self._client_lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _forget(self, client: Any) -> None:
        """After a failed call: the next one connects again (a restarted server, a moved address)."""
        with self._client_lock:
            if self._client is client:
                self._client = None
        with contextlib.suppress(Exception):  # closing a broken connection may fail too; it is dropped anyway
            client.close()

    def _check(self) -> str | None:
        client = None
        call = {"timeout": self.timeout, "retry_times": 0}  # a probe answers now; the next one asks again
        try:
            client = self.client()
            if not client.has_collection(self.collection, **call):
                return (
                    f"Milvus has no collection {self.collection} (publish it: rag artifacts publish-milvus)"
                )
            described = client.describe_collection(self.collection, **call)
            found = version_of(described.get("description", ""))
            if found.get("corpus") != self.bundle.manifest.corpus_id:
                return f"Milvus collection {self.collection} holds corpus {found.get('corpus')!r}, not this bundle's"
            rows = row_count(client, self.collection, **call)
        except Exception as exc:  # grpc and pymilvus errors alike
            if client is not None:
                self._forget(client)
            return f"Milvus unreachable: {type(exc).__name__}: {_first_line(exc)}"
        if rows != self.bundle.seg.n_units:
            return (
                f"Milvus collection {self.collection} holds {rows} of {self.bundle.seg.n_units} units "
                "(a publish in progress, or one that stopped: publish again)"
            )
        return None

    def candidates(
        self,
        question: str,
        vector: np.ndarray,
        p: RetrievalParams,
        filters: dict[str, Any] | None,
        t: Timings,
    ) -> Candidates:
        lexical, dense = lists_wanted(p)
        with t.stage("filter"):
            expression = filter_expression(filters, self.bundle)
        with t.stage("bm25"):
            bm25_units, bm25_scores = (
                self._search(question, "sparse", p.bm25_top_k, expression)
                if lexical and self.bm25
                else (EMPTY, NO_SCORES)
            )
        with t.stage("dense"):
            dense_units, dense_scores = (
                self._search(vector.tolist(), "vector", p.dense_top_k, expression)
                if dense
                else (EMPTY, NO_SCORES)
            )
        return Candidates(
            bm25_units,
            bm25_scores,
            dense_units,
            dense_scores,
            score_lookup(bm25_units, bm25_scores, 0.0),
            # The engine's cosines; NaN for a unit its dense list did not return, which the pipeline computes
            # only if it reports that unit (a search hit): an answer never needs it.
            score_lookup(dense_units, dense_scores, float("nan")),
        )

    def rows(self) -> EngineVectors:
        """The collection's unit vectors as bundle rows (for a bundle loaded without its indexes)."""
        return EngineVectors(self, self.bundle.manifest.embedding_model.dim)

    def fetch_vectors(self, units: list[int]) -> dict[int, np.ndarray]:
        """These units' vectors, by primary key; bounded like a search (its timeout, the request's deadline,
        one retry). A unit the collection lacks is a RetrievalUnavailable: it is not this bundle's version."""
        rows = self._call(
            lambda client, budget: client.get(
                self.collection, ids=units, output_fields=["vector"], timeout=budget, retry_times=0
            )
        )
        vectors = {int(row["unit"]): np.asarray(row["vector"], dtype=np.float32) for row in rows}
        if len(vectors) != len(units):
            lacking = sorted(set(units) - vectors.keys())[:5]
            raise RetrievalUnavailable(
                f"Milvus {self.collection} has no units {lacking}: not this bundle's version"
            )
        return vectors

    def _search(self, query: Any, field: str, k: int, expression: str) -> tuple[np.ndarray, np.ndarray]:
        hits = self._call(
            lambda client, budget: client.search(
                self.collection,
                data=[query],
                anns_field=field,
                limit=k,
                filter=expression,
                output_fields=[],
                timeout=budget,
                retry_times=0,
            )[0]
        )
        units = np.array([int(hit["id"]) for hit in hits], dtype=np.int64)
        scores = np.array([float(hit["distance"]) for hit in hits], dtype=np.float32)
        order = np.lexsort((units, -scores))  # ties in unit order, as the bundle breaks them
        return units[order], scores[order]

    def _call(self, request: Callable[[Any, float], Any]) -> Any:
        """One call; after a failure, one more while the request's deadline leaves time. Each try is bounded
        by RAG_MILVUS_TIMEOUT_SECONDS and by what is left of the deadline (pymilvus' own retries are off:
        with a float timeout they ran 75 times, past the deadline)."""
        failure = "no time left before the request's deadline"
        for _ in range(1 + _RETRIES):
            budget = remaining(self.timeout)
            if budget <= 0:
                break
            client = None
            try:
                client = self.client()
                return request(client, budget)
            except Exception as exc:  # grpc and pymilvus errors alike: the engine could not answer
                if client is not None:
                    self._forget(client)
                failure = f"{type(exc).__name__}: {_first_line(exc)}"
        raise RetrievalUnavailable(f"Milvus {self.collection}: {failure}")


class EngineVectors:
    """The unit vectors of a bundle loaded without its indexes, read from its collection: `rows[ids]` as the
    bundle's own rows answer it. An answer reads a few: its evidence candidates' (MMR, confidence), and a
    reported hit's when the engine's dense list left its cosine out. The last `_CACHED` the engine returned
    stay in memory, as pages of a mapped index would."""

    def __init__(self, source: MilvusCandidates, dim: int) -> None:
        self.source = source
        self.dim = dim
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, vectors: dict[int, Any]) -> None:
        """Vectors the engine returned (with search hits, or fetched), for the reads that follow."""
        with self._lock:
            for unit, vector in vectors.items():
                self._cache[unit] = np.asarray(vector, dtype=np.float32)
                self._cache.move_to_end(unit)
            while len(self._cache) > _CACHED:
                self._cache.popitem(last=False)

    def __getitem__(self, ids: Any) -> np.ndarray:
        keys = np.asarray(ids, dtype=np.int64)
        flat = keys.reshape(-1).tolist()
        with self._lock:
            found = {u: self._cache[u] for u in flat if u in self._cache}
        missing = sorted(set(flat) - found.keys())
        if missing:
            fetched = self.source.fetch_vectors(missing)
            self.keep(fetched)
            found.update(fetched)
        if not flat:
            return np.zeros((*keys.shape, self.dim), dtype=np.float32)
        return np.stack([found[u] for u in flat]).reshape((*keys.shape, self.dim))


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]
