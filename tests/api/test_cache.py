from __future__ import annotations

from rag.api.cache import AnswerCache, cache_key, normalise_question
from rag.pipeline import Answer


def answer(text: str) -> Answer:
    return Answer(
        question=text, answer=text, abstained=False, confidence=1.0, evidence=[], timings_ms={}, corpus_id="c"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_key_ignores_case_spacing_and_unicode_form_but_not_parameters_or_bundle() -> None:
    assert normalise_question("  What\u00a0IS   ﬁre? ") == "what is fire?"
    base = cache_key("c1", "What is fire?", {"alpha": 0.4}, None)
    assert cache_key("c1", "what  is FIRE?", {"alpha": 0.4}, None) == base
    assert cache_key("c1", "What is fire?", {"alpha": 0.5}, None) != base
    assert cache_key("c1", "What is fire?", {"alpha": 0.4}, {"tags": "x"}) != base
    assert cache_key("c2", "What is fire?", {"alpha": 0.4}, None) != base


def test_lru_eviction_and_ttl() -> None:
    clock = Clock()
    cache = AnswerCache(capacity=2, ttl_seconds=10, clock=clock)
    cache.put("a", answer("a"))
    cache.put("b", answer("b"))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", answer("c"))  # evicts b, the least recently used
    assert cache.get("b") is None and cache.evictions == 1
    clock.now = 5.0
    hit = cache.get("a")
    assert hit is not None and hit[1] == 5.0
    clock.now = 10.5
    assert cache.get("c") is None  # stored at 0, older than the TTL
    assert (cache.hits, cache.misses) == (2, 2)


def test_binding_another_bundle_drops_everything_and_zero_capacity_stores_nothing() -> None:
    cache = AnswerCache(capacity=4, ttl_seconds=60)
    cache.bind("bundle-1")
    cache.put("a", answer("a"))
    cache.bind("bundle-1")
    assert len(cache) == 1
    cache.bind("bundle-2")
    assert len(cache) == 0 and cache.corpus_id == "bundle-2"
    off = AnswerCache(capacity=0, ttl_seconds=60)
    off.put("a", answer("a"))
    assert not off.enabled and len(off) == 0
