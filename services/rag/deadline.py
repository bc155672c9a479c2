"""The deadline of the request being computed, visible to the calls it makes (a Milvus search), so that their
timeouts and retries end with it instead of running on after the client was told 504.

Admission sets it on the pool thread that computes an answer; outside a request there is none.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["remaining", "until"]

_AT: ContextVar[float | None] = ContextVar("rag_request_deadline", default=None)


@contextmanager
def until(at: float) -> Iterator[None]:
    """Calls inside run under the deadline `at` (time.monotonic())."""
    token = _AT.set(at)
    try:
        yield
    finally:
        _AT.reset(token)


def remaining(cap: float) -> float:
    """Seconds left before the current request's deadline, at most `cap` (all of `cap` outside a request);
    zero or less once it has passed."""
    at = _AT.get()
    return cap if at is None else min(cap, at - time.monotonic())
