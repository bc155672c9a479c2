"""Admission in one worker: a count limit, and a limit on how long the admitted work would keep a new
request waiting (RAG_MAX_QUEUE_SECONDS), learnt from how long computations take."""

from __future__ import annotations

import asyncio
import time

from rag.api.admission import Admission
from rag.deadline import remaining
from rag.errors import Overloaded


def test_a_request_that_would_wait_too_long_is_refused_with_the_wait_as_retry_after() -> None:
    async def scenario() -> tuple[list[object], Admission]:
        admission = Admission(limit=100, threads=1, timeout_seconds=30, max_wait=0.25)
        await admission.run(lambda: time.sleep(0.1))  # learns: one computation ≈ 0.1 s
        outcomes = await asyncio.gather(
            *(admission.run(lambda: time.sleep(0.1)) for _ in range(6)), return_exceptions=True
        )
        return outcomes, admission

    outcomes, admission = asyncio.run(scenario())
    refused = [o for o in outcomes if isinstance(o, Overloaded)]
    # admitted while the queue ahead is ≤ 0.25 s: with 0, 1 and 2 requests ahead (0, 0.1, 0.2 s)
    assert len(refused) == 3 and outcomes[:3] == [None, None, None]
    assert all(o.retry_after == 1 and "queue is 0.3 s long" in str(o) for o in refused)
    assert admission.in_flight == 0 and not admission.saturated
    admission.shutdown()


def test_the_count_limit_holds_before_anything_is_learnt() -> None:
    async def scenario() -> list[object]:
        admission = Admission(limit=2, threads=2, timeout_seconds=30, max_wait=10)
        return await asyncio.gather(
            *(admission.run(lambda: time.sleep(0.05)) for _ in range(4)), return_exceptions=True
        )

    outcomes = asyncio.run(scenario())
    assert outcomes[:2] == [None, None]
    assert [type(o) for o in outcomes[2:]] == [Overloaded, Overloaded]
    assert "at its limit of 2 requests in flight" in str(outcomes[2])


def test_before_the_first_answer_only_as_many_start_as_there_are_threads() -> None:
    async def scenario() -> list[object]:
        admission = Admission(limit=32, threads=2, timeout_seconds=30, max_wait=1.0)
        return await asyncio.gather(
            *(admission.run(lambda: time.sleep(0.05)) for _ in range(5)), return_exceptions=True
        )

    outcomes = asyncio.run(scenario())
    assert outcomes[:2] == [None, None] and all(isinstance(o, Overloaded) for o in outcomes[2:])


def test_the_computation_sees_its_requests_deadline() -> None:
    """What is left of RAG_REQUEST_TIMEOUT_SECONDS is visible to the calls an answer makes (a Milvus search),
    counted from admission; outside a request there is no deadline."""

    async def scenario() -> tuple[float, float]:
        admission = Admission(limit=4, threads=1, timeout_seconds=3, max_wait=10)
        await admission.run(lambda: time.sleep(0.2))
        left = await admission.run(lambda: remaining(100.0))
        admission.shutdown()
        return left, remaining(100.0)

    inside, outside = asyncio.run(scenario())
    assert 2.0 < inside <= 3.0 and outside == 100.0


def test_a_request_that_finds_a_thread_idle_is_admitted_however_slow_answers_are() -> None:
    """Slow computations (a reranked answer while a hot reload warms the next version) make a queue long,
    not an idle thread busy: with two threads and one running, the second starts at once."""

    async def scenario() -> tuple[list[object], list[object]]:
        admission = Admission(limit=32, threads=2, timeout_seconds=30, max_wait=1.0)
        admission.learn(3.0)  # one computation ≈ 3 s, three times the wait allowed
        # 2 s each, so a loaded CI machine cannot end them before the third request is asked for
        running = asyncio.ensure_future(admission.run(lambda: time.sleep(2.0)))
        await asyncio.sleep(0.05)
        second = await asyncio.gather(admission.run(lambda: None), return_exceptions=True)
        both_busy = asyncio.ensure_future(admission.run(lambda: time.sleep(2.0)))
        await asyncio.sleep(0.05)
        third = await asyncio.gather(admission.run(lambda: None), return_exceptions=True)
        await asyncio.gather(running, both_busy)
        admission.shutdown()
        return second, third

    second, third = asyncio.run(scenario())
    assert second == [None]
    # both threads busy: it would wait for one of them to end, half a computation (the instant second one
    # brought the average to 0.8 × 3 = 2.4 s), past the 1 s allowed
    assert isinstance(third[0], Overloaded) and "queue is 1.2 s long" in str(third[0])
