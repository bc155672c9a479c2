"""`make bench-ray`: `rag build` on a Ray cluster against the same build in one process, on this machine.

SciFact's corpus (5,183 abstracts, 44.6k sentences) with the real int8 bge-small-en, no embedding cache.
The Ray cluster is two real nodes on loopback (a head with 2 CPUs, a worker node with 1), inside the network
namespace `make bench-ray` makes; the build embeds with one actor per CPU less one (2 actors, one ONNX thread
each). The same machine's 2 cores serve both runs, so the ratio is Ray's overhead on one machine, not a
speed-up; the per-actor throughput is what a cluster multiplies (docs/BENCHMARKS.md works the projection).

With `--cache` both builds use a fresh embedding cache, as ci/build-index.sh and the RayJob build: each text is
then embedded alone.

    unshare --net sh -c 'ip link set lo up && python benchmarks/bench_ray.py [--docs N] [--cache]'
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from bench_http import SHARED_DATA, WORK
from bench_models import machine
from rag_testkit.ray import LoopbackCluster
from real_models import real_models

from rag.config import Settings
from rag.eval.datasets import load_beir
from rag.index import Builder, read_manifest
from rag.index.ray_embedding import RayEmbedding


def echo(message: str) -> None:
    print(message, flush=True)


def digests(bundle: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((bundle / name).read_bytes()).hexdigest() for name in read_manifest(bundle).files
    }


def timed_build(builder: Builder, documents: list[Any], out: Path) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = builder.build(documents, out)
    return {
        "seconds": time.perf_counter() - started,
        "embed_seconds": result.embed_seconds,
        "embedded": result.embedded,
        "units": result.manifest.counts["units"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=0, help="only the first N documents (0: all)")
    parser.add_argument(
        "--cache",
        action="store_true",
        help="both builds with a fresh embedding cache, as ci/build-index.sh and the RayJob build (each text "
        "embedded alone)",
    )
    parser.add_argument("--out", type=Path, default=WORK / "ray.json")
    args = parser.parse_args()
    info = machine()
    echo(f"CPU: {info['cpu']} · avx2 {info['flags']['avx2']} · avx512_vnni {info['flags']['avx512_vnni']}")
    embedder, _ = real_models()
    settings = Settings(backend="onnx", embedding_model=str(embedder), reranker_model=None, threads=2)
    documents = load_beir(SHARED_DATA / "scifact").documents
    documents = documents[: args.docs] if args.docs else documents
    work = WORK / "ray-build"
    work.mkdir(parents=True, exist_ok=True)

    def builder(name: str) -> Builder:
        cache = work / f"{name}-cache.sqlite"
        cache.unlink(missing_ok=True)
        return Builder.from_settings(settings, cache_path=cache if args.cache else None)

    local = timed_build(builder("local"), documents, work / "local")
    echo(f"local: {json.dumps(local)}")
    cluster = LoopbackCluster(work / "cluster").start()
    try:
        actors = 2  # the cluster's 3 CPUs less one, what RAG_RAY_ACTORS=0 would choose
        ray = RayEmbedding(cluster.address, settings, actors)
        on_ray = builder("ray")
        on_ray.ray = ray
        remote = timed_build(on_ray, documents, work / "ray")
        remote.update(actors=actors, nodes=len(ray.nodes), actor_busy_seconds=ray.busy_seconds)
        echo(f"ray: {json.dumps(remote)}")
    finally:
        cluster.stop()
    identical = digests(work / "ray") == digests(work / "local")
    # One actor's throughput: texts over the time actors spent inside the embedder (startup and transfer
    # excluded); a cluster multiplies this, one actor per CPU.
    per_actor = remote["embedded"] / remote["actor_busy_seconds"]
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "embedding_cache": args.cache,
        "machine": info,
        "local": local,
        "ray": remote,
        "identical": identical,
        "ray_over_local": remote["seconds"] / local["seconds"],
        "units_per_second_per_actor": per_actor,
        "units_per_second_local_2_threads": local["embedded"] / local["embed_seconds"],
        "units_per_second_ray_wall": remote["embedded"] / remote["embed_seconds"],
        "ray_overhead_seconds": remote["embed_seconds"] - remote["actor_busy_seconds"] / actors,
    }
    args.out.write_text(json.dumps(report, indent=1))
    echo(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
