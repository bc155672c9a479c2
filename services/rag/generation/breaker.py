"""A circuit breaker for the inference server: after N failed calls in a row, stop calling it for a while.

    closed ──N failures in a row──► open ──cool-down passed──► half-open (one probe call allowed)
      ▲                               ▲                              │
      └────────── probe succeeds ─────┼────── probe fails ───────────┘

While open, answers fall back at once (`circuit_open`) instead of each waiting out a timeout against a server
that is down. One breaker per worker process: workers learn of an outage independently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

__all__ = ["CircuitBreaker"]

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self, failures: int, reset_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> State:
        with self._lock:
            if self._state == "open" and self._cooled_down():
                return "half_open"
            return self._state

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.reset_seconds

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one call (the probe) is let through at a time."""
        with self._lock:
            if self._state == "closed":
                return True
            if self._state == "open":
                if not self._cooled_down():
                    return False
                self._state = "half_open"
            if self._probing:
                return False
            self._probing = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._state, self._failures, self._probing = "closed", 0, False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.threshold:
                self._state, self._opened_at = "open", self._clock()
            self._probing = False

    def record_abandoned(self) -> None:
        """A call that ended without a verdict (the client went away mid-stream). A probe that never reports
        must not leave the breaker half-open with no probe ever allowed again: the next call probes."""
        with self._lock:
            if self._state == "half_open":
                self._state, self._opened_at = "open", self._clock() - self.reset_seconds
            self._probing = False
