"""Channels as Milvus aliases, and a server without BM25 (RAG_MILVUS_BM25=false, the setting under test), on a
real Milvus 2.3.5 standalone server: milvus-lite implements no aliases, and 2.3 has no BM25.

Run by test_milvus_channels.py inside a network namespace of their own: Milvus 2.3's components listen on
every interface and advertise the host's first address, so outside one their traffic would not stay on
loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rag_testkit.launch import Service, make_run, user_environment
from rag_testkit.milvus import MilvusServer235

from rag.config import RetrievalParams, Settings
from rag.errors import MilvusError
from rag.index import Bundle
from rag.milvus import bundle_version, connect
from rag.milvus.candidates import MilvusCandidates
from rag.milvus.publish import point_alias, resolve_alias
from rag.milvus.schema import collection_name
from rag.pipeline import Timings
from rag.pipeline.candidates import BundleCandidates


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer235]:
    started = MilvusServer235(tmp_path_factory.mktemp("milvus235")).start()
    yield started
    started.stop()


def publish(bundle: Path, uri: str, *args: str) -> dict[str, Any]:
    """`rag artifacts publish-milvus` from a user's environment, with RAG_MILVUS_BM25=false (2.3 has no BM25)."""
    rag = str(Path(sys.executable).parent / "rag")
    command = [rag, "artifacts", "publish-milvus", str(bundle), "--milvus-uri", uri, "--json", *args]
    env = {**user_environment(), "RAG_MILVUS_BM25": "false"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_channels_move_by_alias_and_back(
    server: MilvusServer235, sample_bundle: Path, other_bundle: Path, settings
) -> None:
    first = publish(sample_bundle, server.uri, "--channel", "prod")
    assert first["created"] and first["previous"] is None
    second = publish(other_bundle, server.uri, "--channel", "prod")
    assert second["previous"] == first["version"] != second["version"]
    client = connect(settings, server.uri)
    assert resolve_alias(client, "rag_c_prod") == (second["collection"], second["version"])
    # Rollback is the same switch back; the collection of the rolled-back version was never dropped.
    assert point_alias(client, "rag", "prod", first["version"]) == second["version"]
    assert resolve_alias(client, "rag_c_prod") == (first["collection"], first["version"])
    assert resolve_alias(client, "rag_c_staging") is None
    with pytest.raises(MilvusError, match="not published to Milvus"):
        point_alias(client, "rag", "prod", "20990101000000-unknown")
    assert publish(sample_bundle, server.uri)["created"] is False  # checked, not written again


def test_without_bm25_the_candidates_are_dense_only(
    server: MilvusServer235, sample_bundle: Path, embedder, settings
) -> None:
    bundle = Bundle.load(sample_bundle)
    publish(sample_bundle, server.uri)
    collection = collection_name("rag", bundle_version(bundle))
    milvus = MilvusCandidates(lambda: connect(settings, server.uri), collection, bundle, 5.0, bm25=False)
    p = RetrievalParams(dense_top_k=8)  # hybrid: the lexical list has weight, but the engine has no BM25
    q = embedder.encode(["When was the Eiffel Tower completed?"], kind="query")[0]
    found = milvus.candidates("When was the Eiffel Tower completed?", q, p, None, Timings())
    local = BundleCandidates(bundle).candidates("When was the Eiffel Tower completed?", q, p, None, Timings())
    assert len(found.bm25_units) == 0
    assert found.dense_units.tolist() == local.dense_units.tolist()


def rag_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    rag = str(Path(sys.executable).parent / "rag")
    return subprocess.run([rag, *args], env=env, capture_output=True, text=True, timeout=300)


def test_promote_and_rollback_move_the_alias_with_the_s3_channel(
    server: MilvusServer235, sample_bundle: Path, other_bundle: Path, s3_server: str, bucket: str, settings
) -> None:
    """With RAG_MILVUS_URI set, `rag artifacts promote|rollback` point the channel's alias too; the S3
    channel record keeps the history, so a rollback goes where the record says."""
    env = {
        **user_environment(),
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},  # moto's, from aws_credentials
        "RAG_ARTIFACTS_URI": f"s3://{bucket}/rag",
        "RAG_S3_ENDPOINT_URL": s3_server,
        "RAG_MILVUS_URI": server.uri,
        "RAG_MILVUS_PREFIX": "ch",
        "RAG_MILVUS_BM25": "false",
    }
    versions = []
    for bundle in (sample_bundle, other_bundle):
        pushed = rag_cli(env, "artifacts", "push", str(bundle), "--json")
        assert pushed.returncode == 0, pushed.stderr
        versions.append(json.loads(pushed.stdout)["version"])
        assert rag_cli(env, "artifacts", "publish-milvus", str(bundle)).returncode == 0
    client = connect(settings, server.uri)
    for version in versions:
        moved = rag_cli(env, "artifacts", "promote", version, "--channel", "prod")
        assert moved.returncode == 0 and "Milvus alias ch_c_prod" in moved.stdout, moved.stderr
        assert resolve_alias(client, "ch_c_prod") == (collection_name("ch", version), version)
    back = rag_cli(env, "artifacts", "rollback", "--channel", "prod")
    assert back.returncode == 0 and "(rolled back)" in back.stdout, back.stderr
    assert resolve_alias(client, "ch_c_prod")[1] == versions[0]
    listed = json.loads(rag_cli(env, "artifacts", "list", "--json").stdout)
    assert listed["channels"]["prod"]["version"] == versions[0]

    # In S3 but never published to Milvus: refused, and neither pointer moves.
    pushed = rag_cli(env, "artifacts", "push", str(sample_bundle), "--version", "20990101000000-nomilvus")
    assert pushed.returncode == 0, pushed.stderr
    refused = rag_cli(env, "artifacts", "promote", "20990101000000-nomilvus", "--channel", "prod")
    assert refused.returncode == 2 and "not published to Milvus" in refused.stderr
    assert resolve_alias(client, "ch_c_prod")[1] == versions[0]
    assert (
        json.loads(rag_cli(env, "artifacts", "list", "--json").stdout)["channels"]["prod"]["version"]
        == versions[0]
    )


def test_the_index_workflow_publishes_to_milvus_and_moves_the_alias(
    server: MilvusServer235, sample_bundle: Path, s3_server: str, bucket: str, settings
) -> None:
    """index.yml's publish step (ci/publish-index.sh) with RAG_MILVUS_URI, as the workflow sets it from
    vars.RAG_MILVUS_URI: the version is published to Milvus and staging's alias moves with the S3 channel.
    (ci/promote-index.sh moves prod through the same `rag artifacts promote`, tested above.)"""
    venv = Path(sys.executable).parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "GITHUB_"))},
        "PATH": f"{venv}{os.pathsep}{os.environ.get('PATH', '')}",
        "VENV": str(venv.parent),
        "RAG_ARTIFACTS_URI": f"s3://{bucket}/rag",
        "RAG_S3_ENDPOINT_URL": s3_server,
        "RAG_MILVUS_URI": server.uri,
        "RAG_MILVUS_PREFIX": "ci",
        "RAG_MILVUS_BM25": "false",
    }
    root = Path(__file__).resolve().parents[2]

    def script(name: str, **extra: str) -> subprocess.CompletedProcess[str]:
        command = [str(root / "ci" / name)]
        return subprocess.run(command, env={**env, **extra}, capture_output=True, text=True, timeout=600)

    published = script("publish-index.sh", BUNDLE=str(sample_bundle))
    assert published.returncode == 0, published.stderr[-3000:]
    version = published.stdout.splitlines()[-1]
    client = connect(settings, server.uri)
    assert resolve_alias(client, "ci_c_staging") == (collection_name("ci", version), version)


def test_pods_follow_the_alias_under_load_and_answer_from_one_version_each(
    server: MilvusServer235,
    sample_bundle: Path,
    other_bundle: Path,
    s3_server: str,
    bucket: str,
    tmp_path: Path,
) -> None:
    """Hot reload with RAG_RETRIEVAL_BACKEND=milvus (the settings under test): `make run`'s workers follow the
    channel's alias. Promote and rollback under load fail no request, and each answer's evidence comes from
    the one version it reports (a pod whose bundle and collection disagreed would cite the other corpus, or
    fail on unit ids its bundle does not have)."""
    env = {
        **user_environment(),
        **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},  # moto's, from aws_credentials
        "RAG_ARTIFACTS_URI": f"s3://{bucket}/rag",
        "RAG_S3_ENDPOINT_URL": s3_server,
        "RAG_MILVUS_URI": server.uri,
        "RAG_MILVUS_PREFIX": "load",
        "RAG_MILVUS_BM25": "false",
    }
    corpus, documents, versions = {}, {}, []
    for bundle in (sample_bundle, other_bundle):
        pushed = rag_cli(env, "artifacts", "push", str(bundle), "--json")
        assert pushed.returncode == 0, pushed.stderr
        version = json.loads(pushed.stdout)["version"]
        assert rag_cli(env, "artifacts", "publish-milvus", str(bundle)).returncode == 0
        loaded = Bundle.load(bundle)
        corpus[loaded.manifest.corpus_id] = version
        documents[version] = {doc.id for doc in loaded.documents[:]}
        versions.append(version)
    first, second = versions
    assert rag_cli(env, "artifacts", "promote", first, "--channel", "prod").returncode == 0
    served = tmp_path / "data" / "bundle"
    # the init container, as the chart runs it with retrieval.backend=milvus
    pulled = rag_cli(
        env, "artifacts", "pull", "--channel", "prod", "--dest", str(served), "--without-indexes"
    )
    assert pulled.returncode == 0, pulled.stderr
    following = {
        **{k: v for k, v in env.items() if k.startswith(("AWS_", "RAG_"))},
        "RAG_RETRIEVAL_BACKEND": "milvus",
        "RAG_RELOAD_CHANNEL": "prod",
        "RAG_RELOAD_INTERVAL_SECONDS": "0.3",
        "RAG_CACHE_SIZE": "0",
        "RAG_ADMIN_KEY": "adm",
    }
    service = make_run(tmp_path / "run", bundle=served, env=following)
    try:
        answers = _answers_while(service, lambda: _switch(env, service, [second, first]))
        # The channel's alias gone: the pods keep serving what they have and say why they cannot follow.
        connect(Settings(), server.uri).drop_alias("load_c_prod")
        refused = httpx.post(f"{service.url}/admin/reload", headers={"x-admin-key": "adm"}, timeout=30)
        assert refused.status_code == 502 and "Milvus has no alias load_c_prod" in refused.json()["error"]
        assert httpx.get(f"{service.url}/ready", timeout=10).status_code == 200
        assert _serving(service) == {(first, collection_name("load", first))}
    finally:
        service.stop()
    failed = [a for a in answers if a[0] != 200]
    assert not failed and len(answers) > 30, (len(answers), failed[:5])
    seen = set()
    for _, corpus_id, cited in answers:
        version = corpus[corpus_id]
        assert cited <= documents[version], (version, cited)
        seen.add(version)
    assert seen == {first, second}


def _switch(env: dict[str, str], service: Service, order: list[str]) -> None:
    """Promote the first version of `order`, roll back to the next, each once every worker serves it."""
    for i, version in enumerate(order):
        moved = (
            rag_cli(env, "artifacts", "promote", version, "--channel", "prod")
            if i == 0
            else rag_cli(env, "artifacts", "rollback", "--channel", "prod")
        )
        assert moved.returncode == 0, moved.stderr
        deadline = time.monotonic() + 90
        while _serving(service) != {(version, collection_name("load", version))}:
            assert time.monotonic() < deadline, f"the workers never moved to {version}: {_serving(service)}"
            time.sleep(0.3)
        time.sleep(1.5)  # answers from this version alone, under load


def _serving(service: Service) -> set[tuple[str, str]]:
    """(version, collection) of the workers that answer a dozen requests."""
    described = [httpx.get(f"{service.url}/info", timeout=10).json()["service"] for _ in range(12)]
    return {(d["version"], d["retrieval"].get("collection", "")) for d in described}


def _answers_while(service: Service, switch: Callable[[], None]) -> list[tuple[int, str, set[str]]]:
    """(status, corpus, cited documents) of the answers three clients got while `switch` ran."""
    stop = threading.Event()
    answers: list[tuple[int, str, set[str]]] = []

    def load() -> None:
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 240  # bounded even if the test fails midway
            while not stop.is_set() and time.monotonic() < deadline:
                response = http.post(f"{service.url}/answer", json={"question": "What orbits the Earth?"})
                body = response.json()
                cited = {e["doc_id"] for e in body.get("evidence", [])}
                answers.append((response.status_code, body.get("corpus_id", body.get("error", "")), cited))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        switch()
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    return answers
