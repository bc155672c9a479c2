import pytest
from pydantic import ValidationError

from rag.config import Bm25Params, BuildConfig, RetrievalParams, Settings


def test_environment_overrides_and_views(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_ALPHA", "0.7")
    monkeypatch.setenv("RAG_UNIT", "passage")
    monkeypatch.setenv("RAG_BM25_K1", "0.9")
    monkeypatch.setenv("RAG_RERANKER_MODEL", "")
    settings = Settings()
    assert settings.retrieval_params().alpha == 0.7
    assert settings.build_config().unit == "passage"
    assert settings.bm25_params() == Bm25Params(k1=0.9)
    assert settings.reranker_model is None


def test_defaults_are_written_once() -> None:
    settings = Settings()
    assert settings.retrieval_params() == RetrievalParams()
    assert settings.build_config() == BuildConfig()
    assert settings.bm25_params() == Bm25Params()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RAG_ALPHA", "1.5"),
        ("RAG_EVIDENCE_K", "0"),
        ("RAG_BM25_B", "2"),
        ("RAG_UNIT", "chapter"),
        ("RAG_PASSAGE_TOKENS", "1"),
    ],
)
def test_out_of_range_settings_fail_at_startup(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_available_cpus_honours_a_cgroup_quota(tmp_path) -> None:
    import os

    from rag.config import available_cpus

    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    assert available_cpus(tmp_path) == 1
    cpu_max.write_text("250000 100000\n")  # 2.5 CPUs: 2 whole ones, so workers never oversubscribe
    assert available_cpus(tmp_path) == min(2, affinity)
    cpu_max.write_text("50000 100000\n")  # half a CPU still runs one worker
    assert available_cpus(tmp_path) == 1
    cpu_max.write_text("max 100000\n")
    assert available_cpus(tmp_path) == affinity
    assert available_cpus(tmp_path / "absent") == affinity
