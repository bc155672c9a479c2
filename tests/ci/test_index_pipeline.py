"""index.yml's chain, end to end against the loopback S3 server: ci/build-index.sh → ci/publish-index.sh →
`rag artifacts pull --channel staging` → ci/promote-index.sh; then a degraded corpus refused by the gate.

The scripts run as CI runs them (subprocesses, configured by env only). Retrieval is BM25-only (RAG_ALPHA=0)
because the tiny test embedder has random weights: the scores then measure the corpus, not noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ci_checks import ROOT
from rag_testkit.samples import SAMPLE_DOCS, upload_folder, write_corpus, write_eval_set

from rag.artifacts import S3Location, S3Store, default_version, list_artifacts, read_channel
from rag.index import read_manifest, verify_bundle

QUERIES = {
    "eiffel": ("When was the Eiffel Tower completed?", "paris.md"),
    "boil": ("At what temperature does water boil?", "water.txt"),
    "roots": ("What do roots absorb from the soil?", "roots"),
    "photo": ("Where does photosynthesis happen in plants?", "photo"),
    "cats": ("How much of the day do cats sleep?", "cats.html"),
}
# The relevant documents of four of the five questions are gone (a broken export, a bad filter upstream).
DEGRADED = {
    "cats.html": SAMPLE_DOCS["cats.html"],
    "moon.txt": "The Moon orbits the Earth. It has no atmosphere and no liquid water on its surface.",
    "trains.txt": "Trains run on rails. The first public railway opened in 1825.",
}


def eval_set(folder: Path) -> Path:
    return write_eval_set(folder, QUERIES)


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


class Runner:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def __call__(self, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, env={**self.env, **env}, cwd=self.cwd, capture_output=True, text=True, timeout=600
        )

    def script(self, name: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self([str(ROOT / "ci" / name)], **env)


@pytest.fixture()
def ci(s3_server: str, bucket: str, tiny_models: dict[str, Path], tmp_path: Path) -> Runner:
    venv = Path(sys.executable).parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "GITHUB_"))},
        "PATH": f"{venv}{os.pathsep}{os.environ.get('PATH', '')}",
        "VENV": str(venv.parent),  # the scripts' `rag` is the one under test, never a stray .venv
        "RAG_EMBEDDING_MODEL": str(tiny_models["e5"]),
        "RAG_RERANKER_MODEL": "",
        "RAG_ALPHA": "0",
        "RAG_THREADS": "1",
        "RAG_S3_ENDPOINT_URL": s3_server,
        "RAG_ARTIFACTS_URI": f"s3://{bucket}/rag",
        "EVAL_SET": str(eval_set(tmp_path / "eval-set")),
        "EMBEDDING_CACHE": str(tmp_path / "embeddings.sqlite"),
        "HF_HUB_OFFLINE": "1",
    }
    return Runner(env, tmp_path)


def test_build_publish_pull_then_a_degraded_corpus_is_refused_and_staging_stays(
    ci: Runner, s3_server: str, bucket: str, tmp_path: Path
) -> None:
    store = S3Store(S3Location(bucket, "rag"), endpoint_url=s3_server)

    # 1. the corpus lives in S3; nothing is on staging yet, so the gate has nothing to compare with
    corpus_uri = upload_folder(s3_server, bucket, write_corpus(tmp_path / "good"), "corpus/v1")
    good = tmp_path / "out" / "good"
    outputs = tmp_path / "github-output"
    built = ci.script("build-index.sh", CORPUS=corpus_uri, BUNDLE_OUT=str(good), GITHUB_OUTPUT=str(outputs))
    assert built.returncode == 0, built.stdout + built.stderr
    assert outputs.read_text().splitlines() == [f"bundle={good}", "changed=true"]
    assert "quality gate: ndcg@10 1.0000; no version on channel staging yet" in built.stdout
    manifest = read_manifest(good)
    assert manifest.counts["documents"] == 5
    assert manifest.evaluation is not None and manifest.evaluation.queries == 5
    assert manifest.evaluation.metrics == {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0}
    verify_bundle(good, manifest)  # recording the metrics kept every checksum valid

    published = ci.script("publish-index.sh", BUNDLE=str(good))
    assert published.returncode == 0, published.stderr
    version = published.stdout.splitlines()[-1]
    assert version == default_version(manifest)
    assert read_channel(store, "staging").version == version

    # 2. what a pod's init container does: the channel gives exactly that version, byte for byte
    pulled = ci(
        ["rag", "artifacts", "pull", "--channel", "staging", "--dest", str(tmp_path / "pod" / "bundle")]
    )
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == f"pulled and verified: {version} → {tmp_path / 'pod' / 'bundle'}"
    files = tree(tmp_path / "pod" / "bundle")
    assert json.loads(files.pop("artifact.json"))["version"] == version
    assert files == tree(good)

    # 3. prod, behind the same gate (index.yml's promote-prod job)
    promoted = ci.script("promote-index.sh", VERSION=version, CHANNEL="prod")
    assert promoted.returncode == 0, promoted.stderr
    assert read_channel(store, "prod").version == version

    # 4. tonight's scheduled rebuild of the same corpus (from a local copy): passes, and is no new version
    outputs.unlink()
    again = ci.script(
        "build-index.sh",
        CORPUS=str(tmp_path / "good"),
        BUNDLE_OUT=str(tmp_path / "out" / "again"),
        GITHUB_OUTPUT=str(outputs),
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"quality gate: unchanged: the same files as channel staging at {version}" in again.stdout
    assert outputs.read_text().splitlines()[-1] == "changed=false"  # index.yml skips publish-index

    # 5. a degraded corpus, from a local folder: scored, recorded, refused; publish never runs
    degraded = tmp_path / "out" / "degraded"
    corpus = write_corpus(tmp_path / "degraded", DEGRADED)
    refused = ci.script("build-index.sh", CORPUS=str(corpus), BUNDLE_OUT=str(degraded))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    worse = read_manifest(degraded).evaluation
    assert worse is not None and worse.metrics["ndcg@10"] == pytest.approx(0.2)  # only the cats question
    assert worse.metrics["recall@100"] == pytest.approx(0.2)
    assert (
        f"refused: ndcg@10 0.2000 < 1.0000 − 0.02 = 0.9800 (channel staging at {version})" in refused.stdout
    )
    assert "4 judged document(s) not in the bundle" in refused.stderr
    channel = read_channel(store, "staging")
    assert (channel.version, channel.previous, channel.history) == (version, None, [])
    assert list_artifacts(store)["versions"] == [version]

    # a deliberate, larger margin lets the same bundle through (the dispatch input for a changed eval set)
    allowed = ci(
        ["rag", "artifacts", "gate", str(degraded), "--channel", "staging", "--margin", "0.9"],
    )
    assert allowed.returncode == 0 and "passed: ndcg@10 0.2000 ≥ 1.0000 − 0.9" in allowed.stdout


def test_the_index_job_publishes_a_changed_bundle_once_and_refuses_a_worse_one(
    ci: Runner, s3_server: str, bucket: str, tmp_path: Path
) -> None:
    """ci/index-job.sh, the RayJob's entrypoint (helm/rag-index-build), with its inputs in S3 as the chart
    gives them: build, gate, publish; the same corpus again publishes nothing; a worse one is refused."""
    store = S3Store(S3Location(bucket, "rag"), endpoint_url=s3_server)
    eval_uri = upload_folder(s3_server, bucket, eval_set(tmp_path / "eval-upload"), "eval-set")
    corpus_uri = upload_folder(s3_server, bucket, write_corpus(tmp_path / "good"), "corpus/v1")
    job = {"CORPUS": corpus_uri, "EVAL_SET": eval_uri, "BUNDLE_OUT": str(tmp_path / "bundle")}

    first = ci.script("index-job.sh", **job)
    assert first.returncode == 0, first.stdout + first.stderr
    version = first.stdout.splitlines()[-1]
    assert (
        read_channel(store, "staging").version
        == version
        == default_version(read_manifest(tmp_path / "bundle"))
    )

    again = ci.script("index-job.sh", **job)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to publish" in again.stderr and again.stdout.splitlines()[-1] != version  # no new version
    assert list_artifacts(store)["versions"] == [version]

    worse_uri = upload_folder(s3_server, bucket, write_corpus(tmp_path / "worse", DEGRADED), "corpus/v2")
    refused = ci.script("index-job.sh", **{**job, "CORPUS": worse_uri})
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert list_artifacts(store)["versions"] == [version]
    assert read_channel(store, "staging").version == version
