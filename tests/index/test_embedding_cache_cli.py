"""`rag build --cache`, `rag cache stats|purge`, and the per-stage progress bars of `rag build`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.cli import main


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, default_env: None) -> None:
    monkeypatch.setenv("RAG_RERANKER_MODEL", "")
    monkeypatch.setenv("RAG_THREADS", "1")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_with_cache_then_stats_and_purge(env, tmp_path: Path, corpus_dir: Path, capsys) -> None:
    cache = str(tmp_path / "emb.sqlite")
    code, out, err = run(capsys, "build", str(corpus_dir), "--out", str(tmp_path / "a"), "--cache", cache)
    assert code == 0 and "0 from cache" in out
    for stage in ("segment", "embed", "index"):  # one bar per stage, with its rate
        assert stage in err
    assert "doc/s" in err and "text/s" in err
    code, out, err = run(
        capsys, "build", str(corpus_dir), "--out", str(tmp_path / "b"), "--cache", cache, "--quiet"
    )
    assert code == 0 and err == "" and " 0 from cache" not in out

    code, out, _ = run(capsys, "embedding-cache", "stats", "--cache", cache, "--json")
    stats = json.loads(out)
    assert code == 0 and stats["entries"] > 0 and stats["hits"] == stats["misses"] == stats["entries"]
    assert stats["hit_rate"] == 0.5 and stats["oldest"] <= stats["newest"]
    (table,) = stats["tables"]
    # the table is the model's name, fingerprint and variant: the default int8 bge-small-en through onnx
    assert table["model"].startswith("BAAI/bge-small-en@-|onnx-sha256:") and "|onnx:" in table["model"]
    assert table["entries"] == stats["entries"]

    code, out, _ = run(capsys, "cache", "stats", "--cache", cache)  # the old name, an alias
    assert code == 0 and "hit rate 50.0%" in out and f"table {table['model']}" in out

    code, _, err = run(capsys, "embedding-cache", "purge", "--cache", cache, "--table", "nope")
    assert code == 2 and "no table 'nope'" in err
    code, out, _ = run(capsys, "embedding-cache", "purge", "--cache", cache, "--table", table["model"])
    assert code == 0 and f"purged {stats['entries']} entries" in out
    code, out, _ = run(capsys, "embedding-cache", "stats", "--cache", cache, "--json")
    assert json.loads(out)["entries"] == 0


def test_cache_commands_need_an_existing_file(env, tmp_path: Path, capsys, monkeypatch) -> None:
    code, _, err = run(capsys, "cache", "stats")
    assert code == 2 and "RAG_EMBEDDING_CACHE" in err
    monkeypatch.setenv("RAG_EMBEDDING_CACHE", str(tmp_path / "missing.sqlite"))
    code, _, err = run(capsys, "cache", "purge")
    assert code == 2 and "no such embedding cache" in err
