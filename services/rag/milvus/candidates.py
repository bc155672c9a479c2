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
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import RetrievalParams
from ..deadline import remaining
from ..errors import RetrievalUnavailable
from ..index import Bundle
from ..pipeline.candidates import EMPTY, NO_SCORES, Candidates, lists_wanted
from ..pipeline.timings import Timings
from .publish import row_count
from .schema import version_of

__all__ = ["MilvusCandidates", "filter_expression"]

_CHECK_EVERY = 2.0  # seconds a readiness answer is reused: probes and balancers ask often
_RETRIES = 1  # a failed search is tried once more, if the request's deadline leaves time


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
        scores = dict(zip(bm25_units.tolist(), bm25_scores.tolist(), strict=True))

        def bm25_of(units: np.ndarray) -> np.ndarray:
            return np.array([scores.get(u, 0.0) for u in units.tolist()], dtype=np.float32)

        return Candidates(bm25_units, bm25_scores, dense_units, dense_scores, bm25_of)

    def _search(self, query: Any, field: str, k: int, expression: str) -> tuple[np.ndarray, np.ndarray]:
        """One search; after a failure, one more while the request's deadline leaves time. Each try is bounded
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
                hits = client.search(
                    self.collection,
                    data=[query],
                    anns_field=field,
                    limit=k,
                    filter=expression,
                    output_fields=[],
                    timeout=budget,
                    retry_times=0,
                )[0]
            except Exception as exc:  # grpc and pymilvus errors alike: the engine could not answer
                if client is not None:
                    self._forget(client)
                failure = f"{type(exc).__name__}: {_first_line(exc)}"
                continue
            units = np.array([int(hit["id"]) for hit in hits], dtype=np.int64)
            scores = np.array([float(hit["distance"]) for hit in hits], dtype=np.float32)
            order = np.lexsort((units, -scores))  # ties in unit order, as the bundle breaks them
            return units[order], scores[order]
        raise RetrievalUnavailable(f"Milvus {self.collection}: {failure}")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]
