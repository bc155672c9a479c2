"""The build's stop signals are raised in its main thread, but never inside a write of the job's record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.jobs.interrupts import Interrupts
from rag.jobs.runner import CANCELLED
from rag.jobs.store import JobOptions, JobStore


class Stop(BaseException):
    pass


@pytest.fixture
def interrupts() -> Iterator[Interrupts]:
    before = signal.getsignal(signal.SIGUSR1)
    interrupts = Interrupts()
    interrupts.on(signal.SIGUSR1, Stop)
    yield interrupts
    signal.signal(signal.SIGUSR1, before)


def signalled() -> None:
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.05)  # the handler runs at the main thread's next bytecode, well within this


def test_a_signal_outside_a_section_is_raised_at_once(interrupts: Interrupts) -> None:
    with pytest.raises(Stop):
        signalled()
        pytest.fail("not raised")


def test_a_signal_inside_a_section_is_raised_when_the_outermost_ends(interrupts: Interrupts) -> None:
    ran = []
    with pytest.raises(Stop), interrupts.shielded():
        with interrupts.shielded():
            signalled()
        ran.append("inner ended")
        ran.append("outer body")
    assert ran == ["inner ended", "outer body"]


def test_another_threads_section_neither_delays_it_nor_takes_it(interrupts: Interrupts) -> None:
    inside, leave = threading.Event(), threading.Event()
    raised_there: list[BaseException] = []

    def section() -> None:
        try:
            with interrupts.shielded():
                inside.set()
                leave.wait(5)
        except BaseException as exc:
            raised_there.append(exc)

    thread = threading.Thread(target=section)
    thread.start()
    inside.wait(5)
    try:
        with pytest.raises(Stop):
            signalled()
    finally:
        leave.set()
        thread.join(5)
    assert raised_there == []


def test_after_close_a_signal_changes_nothing(interrupts: Interrupts) -> None:
    with interrupts.shielded():
        signalled()
        interrupts.close()  # the pending one is dropped too
    signalled()


# The real build process, with the job store's flock wrapped so that the cancel's SIGUSR1 arrives just after
# the main thread's first write took the lock: the spot where the exception, raised there, left the flock held
# and the `record.fail` that followed waited for it for ever.
SIGNAL_AFTER_FLOCK = """
import fcntl, os, signal, sys, threading, types
import rag.jobs.store as store

def flock(handle, operation):
    fcntl.flock(handle, operation)
    if operation == fcntl.LOCK_EX and threading.current_thread() is threading.main_thread():
        if not getattr(flock, "sent", False):
            flock.sent = True
            os.kill(os.getpid(), signal.SIGUSR1)

store.fcntl = types.SimpleNamespace(flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_UN=fcntl.LOCK_UN)
from rag.jobs.builder import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_cancel_taken_while_the_record_is_written_ends_the_job_as_cancelled(tmp_path: Path) -> None:
    root = tmp_path / "jobs"
    store = JobStore(root)
    job = store.create(str(tmp_path / "corpus"), JobOptions())
    process = subprocess.Popen([sys.executable, "-c", SIGNAL_AFTER_FLOCK, str(root), job.id], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"the build did not end after its cancel:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]
    ended = store.read(job.id)
    assert (ended.state, ended.error) == ("failed", CANCELLED), output[-3000:]
