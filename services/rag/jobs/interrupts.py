"""Signals that stop a build process, raised as exceptions in its main thread, never in a shielded section.

A Python signal handler runs between two bytecodes of the main thread, wherever it is. An exception raised
there can land after a lock was taken and before the `try` that releases it. In the job store's lock that
leaves the flock held on a descriptor nobody closes: the `record.fail` that follows opens a new descriptor,
waits on it for ever, and the job stays `running` until the server kills it. Sections that take such locks are
shielded: a signal that arrives inside one is raised when the outermost one ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Interrupts"]


class Interrupts:
    """Installs a handler per signal (`on(signum, exception)`); `shielded()` defers them, `close()` ends
    them."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending: type[BaseException] | None = None
        self._closed = False

    def on(self, signum: int, exception: type[BaseException]) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if self._closed:
                return
            if self._depth:
                self._pending = self._pending or exception  # the first reason stands
            else:
                raise exception

        signal.signal(signum, handler)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Signals wait until the section ends. Only the main thread, where handlers run, is shielded: another
        thread's section must not delay them, nor raise them in that thread."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending is not None:  # raised in place of any error in flight
                exception, self._pending = self._pending, None
                raise exception

    def close(self) -> None:
        """The job's outcome is being written: a signal from now on changes nothing."""
        self._closed = True
        self._pending = None
