"""The pod the chart renders with `retrieval.backend: milvus` (the setting under test), on the image's Milvus
variant: candidates come from a real Milvus core (milvus-lite 2.5.1's server) on loopback, and the container
gets only the environment the chart gives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helm_tool import Helm
from manifests import container, container_env, pod_template, workload
from rag_testkit.containers import TEST_AWS, podman, pulled_volume, serving_container
from rag_testkit.milvus import MilvusLite

from rag.artifacts import S3Location, S3Store, promote, push_bundle
from rag.config import Settings
from rag.index import Bundle
from rag.milvus import connect
from rag.milvus.publish import publish_bundle

pytestmark = pytest.mark.image


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[MilvusLite]:
    server = MilvusLite(tmp_path / "milvus").start()
    yield server
    server.stop()


def test_the_chart_with_a_milvus_backend_serves_from_the_engine(
    milvus_image: str, engine: MilvusLite, s3_server: str, bucket: str, sample_bundle: Path, helm: Helm
) -> None:
    s3 = S3Store(S3Location(bucket, "rag"), endpoint_url=s3_server)
    push_bundle(s3, sample_bundle, "v1")
    promote(s3, "v1", "stable")
    publish_bundle(connect(Settings(), engine.uri), Bundle.load(sample_bundle), "v1", "rag")
    objects = helm.template(
        sets=(
            f"artifacts.uri=s3://{bucket}/rag",
            f"artifacts.endpointUrl={s3_server}",
            "artifacts.channel=stable",
            "retrieval.backend=milvus",
            f"retrieval.milvus.uri={engine.uri}",
        )
    )
    spec = pod_template(workload(objects))["spec"]
    init_env = {**container_env(objects, spec, "pull-bundle"), **TEST_AWS}
    args = [a.replace("$(RAG_RELOAD_CHANNEL)", "stable") for a in container(spec, "pull-bundle")["args"]]
    server_env = container_env(objects, spec, "rag")
    assert server_env["RAG_RETRIEVAL_BACKEND"] == "milvus" and server_env["RAG_MILVUS_URI"] == engine.uri
    with (
        pulled_volume(milvus_image, args, init_env) as volume,
        serving_container(milvus_image, f"{volume}:/artifacts:ro", server_env) as (name, url),
    ):
        info = httpx.get(f"{url}/info", timeout=5).json()["service"]
        assert info["retrieval"] == {"backend": "milvus", "collection": "rag_v_v1"}
        answer = httpx.post(
            f"{url}/answer", json={"question": "When was the Eiffel Tower completed?"}, timeout=30
        )
        assert answer.status_code == 200 and "1889" in answer.json()["answer"]

        engine.kill()  # the engine gone: not ready with the reason, and a 503, never a 500
        failed = httpx.post(f"{url}/answer", json={"question": "What do roots absorb?"}, timeout=30)
        assert failed.status_code == 503 and failed.json()["error_type"] == "retrieval_unavailable"

        # The Milvus client is in; its local engine (milvus-lite, 170 MB) is not: pods talk to a server.
        check = "import pymilvus, importlib.util as u; print(u.find_spec('milvus_lite') is None)"
        assert podman("exec", name, "python", "-c", check).stdout.strip() == "True"
    size = int(podman("image", "inspect", milvus_image, "--format", "{{.Size}}").stdout.strip())
    assert size < 1_000_000_000
