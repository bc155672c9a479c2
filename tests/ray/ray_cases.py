"""`rag build --ray ADDRESS` on a real 2-node Ray cluster (a head with 2 CPUs and a worker node with 1, both
on loopback), against the same build on this machine: the same bytes, work on both nodes, the embedding
cache, and a worker node killed mid-build.

Run by test_ray_build.py inside a network namespace of its own."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rag_testkit.launch import user_environment
from rag_testkit.ray import LoopbackCluster, RayNode
from rag_testkit.samples import sentences_corpus

from rag.index import read_manifest


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[RayNode]]]:
    started = LoopbackCluster(tmp_path_factory.mktemp("ray")).start()
    yield started.address, started.nodes
    started.stop()


@pytest.fixture(scope="module")
def model_env(real_models: Path) -> dict[str, str]:
    """A user's environment naming the model, as the README's build does (bge-small-en through onnx)."""
    return {
        **user_environment(),
        "RAG_EMBEDDING_MODEL": str(real_models / "bge-small-en"),
        "RAG_BACKEND": "onnx",
        "HF_HUB_OFFLINE": "1",
    }


def build(env: dict[str, str], corpus_dir: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    rag = str(Path(sys.executable).parent / "rag")
    command = [rag, "build", str(corpus_dir), "--out", str(out), "--quiet", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def digests(bundle: Path) -> dict[str, str]:
    """sha256 of every file the manifest lists, read from the files themselves."""
    return {
        name: hashlib.sha256((bundle / name).read_bytes()).hexdigest() for name in read_manifest(bundle).files
    }


def test_a_ray_build_writes_the_bytes_of_a_local_build(
    cluster: tuple[str, list[RayNode]], model_env: dict[str, str], tmp_path: Path
) -> None:
    address, _ = cluster
    texts = sentences_corpus(tmp_path / "corpus")
    local = build(model_env, texts, tmp_path / "local")
    assert local.returncode == 0, local.stderr[-3000:]
    remote = build(model_env, texts, tmp_path / "ray", "--ray", address)
    assert remote.returncode == 0, remote.stderr[-3000:]
    assert "embedded on Ray at" in remote.stdout and "2 node(s)" in remote.stdout, remote.stdout
    assert digests(tmp_path / "ray") == digests(tmp_path / "local")
    assert json.loads((tmp_path / "ray" / "manifest.json").read_text())["counts"]["units"] > 1024


def test_the_cache_is_read_before_dispatch_and_written_after(
    cluster: tuple[str, list[RayNode]], model_env: dict[str, str], tmp_path: Path
) -> None:
    address, _ = cluster
    texts = sentences_corpus(tmp_path / "corpus")
    cache = str(tmp_path / "cache.sqlite")
    first = build(model_env, texts, tmp_path / "first", "--ray", address, "--cache", cache)
    assert first.returncode == 0, first.stderr[-3000:]
    assert ", 0 from cache)" in first.stdout, first.stdout
    (texts / "doc000.txt").write_text("A new first document. It has two sentences.")
    second = build(model_env, texts, tmp_path / "second", "--ray", address, "--cache", cache)
    assert second.returncode == 0, second.stderr[-3000:]
    local = build(model_env, texts, tmp_path / "local", "--cache", str(tmp_path / "local-cache.sqlite"))
    assert local.returncode == 0, local.stderr[-3000:]
    assert digests(tmp_path / "second") == digests(tmp_path / "local")
    cached = int(second.stdout.split(" from cache)")[0].rsplit(", ", 1)[1])
    units = read_manifest(tmp_path / "second").counts["units"]
    assert cached == units - 2, second.stdout  # only the two new sentences were embedded


def test_a_worker_node_killed_mid_build_leaves_a_whole_bundle_or_none(
    cluster: tuple[str, list[RayNode]], model_env: dict[str, str], tmp_path: Path
) -> None:
    """Last in this module: it takes the worker node away. Ray starts the lost actors again on the head and
    retries their chunks; if the build cannot finish it exits non-zero with the reason and leaves nothing."""
    address, nodes = cluster
    # ~2,160 sentences in five chunks: the kill lands mid-embedding
    texts = sentences_corpus(tmp_path / "corpus", docs=120)
    local = build(model_env, texts, tmp_path / "local")
    assert local.returncode == 0, local.stderr[-3000:]
    rag = str(Path(sys.executable).parent / "rag")
    out = tmp_path / "ray"
    command = [
        rag,
        "build",
        str(texts),
        "--out",
        str(out),
        "--ray",
        address,
    ]  # with progress, as a user runs it
    process = subprocess.Popen(
        command, env=model_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None and process.stdout is not None
    progress: list[str] = []
    reader = threading.Thread(target=lambda: progress.extend(iter(lambda: process.stderr.read(64), "")))
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while _embedded("".join(progress)) < 512:
            assert process.poll() is None, "".join(progress)[-3000:]
            assert time.monotonic() < deadline, "".join(progress)[-3000:]
            time.sleep(0.1)
        nodes[1].stop()  # a chunk embedded: the worker node goes, with its actor
        process.wait(600)
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(30)
    stdout, stderr = process.stdout.read(), "".join(progress)
    process.stdout.close()
    process.stderr.close()
    print(f"build after the worker node was killed: exit {process.returncode}")
    assert "embed" in stderr  # the progress a local build shows
    if process.returncode == 0:
        assert digests(out) == digests(tmp_path / "local")
        assert "embedded on Ray at" in stdout
    else:
        assert "embedding on Ray" in stderr, stderr[-3000:]
        assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))


def _embedded(progress: str) -> int:
    """The texts the embed stage's progress bar (tqdm, on stderr) counts as done so far."""
    return max((int(m) for m in re.findall(r"embed[^\r\n]*?\|\s*(\d+)/\d+", progress)), default=0)
