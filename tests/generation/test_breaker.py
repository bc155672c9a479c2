"""The circuit breaker's states, on a clock the test moves."""

from __future__ import annotations

from rag.generation.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_n_failures_in_a_row_and_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failures=3, reset_seconds=10, clock=Clock())
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # not in a row any more
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()


def test_half_open_lets_one_probe_through_then_closes_or_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record_failure()  # the probe failed: open for another cool-down
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(5))


def test_an_abandoned_probe_does_not_wedge_the_breaker() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    breaker.record_abandoned()  # the request was cancelled mid-probe
    assert breaker.allow()  # the next request probes at once
