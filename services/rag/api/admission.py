"""Admission control and deadlines: a full worker says 429 at once instead of queueing without bound.

Every answer and search runs on a small thread pool, whatever it computes: the event loop only admits, waits
and replies, so `/health`, `/ready` and `/metrics` answer under any load, and every request waiting for the
pool counts against the limit. (Answers without a reranker once ran inline on the loop to save the ~1 ms
thread hop; then requests queued invisibly in front of the loop, the in-flight count never passed 1, and 50
connections against a limit of 4 got no 429 while p50 grew from 22 to 522 ms.) A request holds its slot until
its computation really ends — even past its deadline — so a worker that is timing out requests also stops
admitting new ones.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import RagError
from .metrics import IN_FLIGHT

__all__ = ["Admission", "DeadlineExceeded", "Overloaded"]

T = TypeVar("T")


class Overloaded(RagError):
    error_type = "overloaded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceeded(RagError):
    error_type = "deadline_exceeded"


class Admission:
    def __init__(self, limit: int, threads: int, timeout_seconds: float) -> None:
        self.limit = limit
        self.timeout = timeout_seconds
        self._in_flight = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rag-infer")

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def saturated(self) -> bool:
        return self._in_flight >= self.limit

    def _release(self, _: Future[Any]) -> None:
        with self._lock:
            self._in_flight -= 1
        IN_FLIGHT.dec()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the pool within the deadline; Overloaded if no slot is free, DeadlineExceeded past the
        deadline."""
        with self._lock:
            if self._in_flight >= self.limit:
                raise Overloaded(
                    f"this worker is at its limit of {self.limit} requests in flight", retry_after=1
                )
            self._in_flight += 1
        IN_FLIGHT.inc()
        try:
            future = self._executor.submit(fn)
        except RuntimeError:  # the pool is shut down: the worker is stopping
            self._release(Future())
            raise Overloaded("this worker is shutting down", retry_after=1) from None
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError:
            raise DeadlineExceeded(
                f"the request took longer than its deadline of {self.timeout:g} s"
            ) from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
