"""Admission control and deadlines: a full worker says 429 at once instead of queueing without bound.

Every answer and search runs on a small thread pool, whatever it computes: the event loop only admits, waits
and replies, so `/health`, `/ready` and `/metrics` answer under any load, and every request waiting for the
pool counts against the limit. (Answers without a reranker once ran inline on the loop to save the ~1 ms
thread hop; then requests queued invisibly in front of the loop, the in-flight count never passed 1, and 50
connections against a limit of 4 got no 429 while p50 grew from 22 to 522 ms.) A request holds its slot until
its computation really ends — even past its deadline — so a worker that is timing out requests also stops
admitting new ones.

A count alone does not bound the wait: 32 reranked answers queued on one core are ~8 s of work. So a request
is also refused when the work already admitted would keep it waiting longer than `max_wait` (the requests
ahead of it per inference thread × the recent time of one computation, an exponential moving average). A
request that finds an inference thread idle waits nothing, however slow computations are, and one that finds
them all busy waits for the first to end, not for all. Counting the running computations as queued once
refused answers that would have waited half as long as estimated, or not at all (in CI: 3 clients on 2 workers
during a hot reload, which slows every answer while the next version warms up beside them).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..deadline import until
from ..errors import DeadlineExceeded, Overloaded
from .metrics import IN_FLIGHT

__all__ = ["Admission", "DeadlineExceeded", "Overloaded"]

T = TypeVar("T")


class Admission:
    def __init__(self, limit: int, threads: int, timeout_seconds: float, max_wait: float = math.inf) -> None:
        self.limit = limit
        self.threads = threads
        self.timeout = timeout_seconds
        self.max_wait = max_wait
        self._in_flight = 0
        self._compute_seconds = 0.0  # moving average of one computation, 0 until the first one ends
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rag-infer")

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def expected_wait(self) -> float:
        """Seconds a request admitted now would wait before its computation starts. Until a first computation
        has ended nothing is known: as many as there are threads start at once, the rest wait for the lesson
        (an unbounded first burst once kept 32 reranked answers waiting ~7 s)."""
        if self._in_flight < self.threads:
            return 0.0
        if self._compute_seconds == 0.0:
            return math.inf
        # It starts when one of the running computations ends and every one queued before it has started.
        return (self._in_flight - self.threads + 1) / self.threads * self._compute_seconds

    @property
    def saturated(self) -> bool:
        return self._in_flight >= self.limit or self.expected_wait > self.max_wait

    def learn(self, seconds: float) -> None:
        """One computation took `seconds` (the pool's own, or the warm-up's at start)."""
        with self._lock:
            average = self._compute_seconds
            self._compute_seconds = seconds if average == 0.0 else 0.8 * average + 0.2 * seconds

    def _timed(self, fn: Callable[[], T]) -> Callable[[], T]:
        at = time.monotonic() + self.timeout  # the deadline counts from admission, as wait_for below does

        def run() -> T:
            started = time.perf_counter()
            try:
                with until(at):
                    return fn()
            finally:
                self.learn(time.perf_counter() - started)

        return run

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
            if (wait := self.expected_wait) > self.max_wait:
                raise Overloaded(
                    f"this worker's queue is {wait:.1f} s long (limit {self.max_wait:g} s)",
                    retry_after=max(1, math.ceil(min(wait, self.timeout))),
                )
            self._in_flight += 1
        IN_FLIGHT.inc()
        try:
            future = self._executor.submit(self._timed(fn))
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
