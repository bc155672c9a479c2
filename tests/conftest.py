from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RAG_SHARED_DATA", ROOT.parent / "shared" / "data"))

SAMPLE_DOCS = {
    "paris.md": "# Paris\n\nParis is the capital of France. The Eiffel Tower was completed in 1889.\n\n"
    "It is 330 metres tall. Millions of tourists visit it every year.\n",
    "water.txt": "Water boils at 100 degrees Celsius at sea level. At higher altitudes it boils at a lower "
    "temperature, e.g. about 90 degrees on high mountains. Ice melts at 0 degrees.",
    "cats.html": "<html><head><title>Cats</title><style>p {color: red}</style></head><body><h1>Cats</h1>"
    "<p>Cats sleep most of the day.</p><p>Dogs bark at the postman every morning. Cats do not.</p>"
    "<script>var x = 1;</script></body></html>",
    "plants.jsonl": '{"id": "photo", "title": "Photosynthesis", "text": "Photosynthesis converts light energy '
    'into chemical energy. It happens in the chloroplasts of plants.", "metadata": {"tags": ["biology"]}}\n'
    '{"id": "roots", "title": "Roots", "text": "Roots absorb water and minerals from the soil.", '
    '"metadata": {"tags": ["biology", "botany"]}}\n',
}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tiny_models import make_tiny_bge_reranker, make_tiny_e5

    root = tmp_path_factory.mktemp("models")
    return {
        "e5": make_tiny_e5(root / "tiny-e5-bert"),
        "e5_other": make_tiny_e5(root / "tiny-e5-other", seed=1),
        "reranker": make_tiny_bge_reranker(root / "tiny-bge-reranker"),
    }


@pytest.fixture(scope="session")
def settings(tiny_models: dict[str, Path]):
    from rag.config import Settings

    return Settings(
        embedding_model=str(tiny_models["e5"]), reranker_model=str(tiny_models["reranker"]), threads=1
    )


@pytest.fixture(scope="session")
def embedder(settings):
    from rag.models import load_embedder

    return load_embedder(settings)


@pytest.fixture(scope="session")
def reranker(settings):
    from rag.models import load_reranker

    return load_reranker(settings)


def write_corpus(folder: Path, files: dict[str, str | bytes] = SAMPLE_DOCS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


@pytest.fixture()
def corpus_dir(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture(scope="session")
def sample_bundle(tmp_path_factory: pytest.TempPathFactory, settings, embedder) -> Path:
    from rag.corpus import load_corpus
    from rag.index import build_bundle

    root = tmp_path_factory.mktemp("bundle")
    documents, report = load_corpus(write_corpus(root / "corpus"))
    build_bundle(documents, embedder, root / "bundle", settings.build_config(), report=report)
    return root / "bundle"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test means a missing tool or input, which is a failure, never a pass."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("CI") and skipped and exitstatus == 0:
        print(f"\nCI: {len(skipped)} test(s) skipped; a skip in CI is a failure")
        session.exitstatus = 1
