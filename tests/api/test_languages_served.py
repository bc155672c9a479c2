"""A bundle whose text the served models cannot read, served as `make run` serves it: the pod says so."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from rag_testkit.faq import faq_corpus
from rag_testkit.launch import Started

from rag.cli import main


def test_make_run_says_when_its_models_cannot_read_the_bundle(
    gunicorn: Started, sample_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_env: None
) -> None:
    """The Chinese FAQ served by the Makefile's English pair: every worker logs a warning naming each model,
    and /info reports the share each can only spell (0.68 measured). The English sample bundle: no warning.
    A bundle built elsewhere (with a multilingual embedder, say) and served with an English reranker would
    be caught the same way; a build only checks its embedder."""
    monkeypatch.setenv("RAG_THREADS", "1")
    bundle = tmp_path / "zh.bundle"
    assert main(["build", str(faq_corpus("zh-cn", tmp_path / "zh")), "--out", str(bundle), "--quiet"]) == 0
    chinese, english = gunicorn(bundle=bundle), gunicorn(bundle=sample_bundle)
    shares = httpx.get(f"{chinese.url}/info", timeout=10).json()["models"]["unread_share"]
    assert shares["embedder"] > 0.6 and shares["reranker"] > 0.6
    log = chinese.tail(200_000)
    for role, name in (
        ("embedder", "BAAI/bge-small-en"),
        ("reranker", "cross-encoder/ms-marco-MiniLM-L-12-v2"),
    ):
        assert f"the {role} {name} spells" in log, log[-2000:]
    english_shares = httpx.get(f"{english.url}/info", timeout=10).json()["models"]["unread_share"]
    assert max(english_shares.values()) < 0.2
    assert "letter by letter" not in english.tail(200_000)
