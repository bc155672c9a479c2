"""`make bench-build-memory`: what a build's head holds in memory, per stage, as the corpus grows.

On a Ray build (`rag build --ray`, the RayJob) the head runs every stage but embedding: loading,
segmentation, BM25, the store, the dense index and the manifest, with the vectors arriving from the workers.
This measures that head. The corpus is SciFact's corpus.jsonl repeated (ids made unique), and the embedder is
a stand-in of bge-small-en's width (384) that returns random unit vectors at once: the model runs on the
workers, so what is left is the head's own work. Each size is built in its own process (`--child`), which
samples its anonymous and file-backed resident memory (/proc/self/status) every 20 ms.

Anonymous memory is what a pod's memory limit cannot reclaim; the file-backed pages (the vectors' scratch
file, the bundle's files being written) are page cache the kernel can write back and drop. The slope between
two sizes, measured in one run, is the head's memory per unit; the chart's head limit divided by it says how
many units a head holds.

With `--ray` each size is also built as `rag build --ray` builds, on a 2-node Ray cluster on loopback (a
head with 2 CPUs, a worker node with 1; run inside a network namespace, as `make bench-build-memory` does).
The actors run a model of bge-small's width with random weights (the tiny e5 projected to 384, in torch),
fast enough to keep up with the head. The head pod's memory is then sampled from outside: the build process
and every process of the head node, as proportional anonymous and shared-memory pages (Ray's object store
is shared memory, /dev/shm).

    python benchmarks/bench_build_memory.py [--copies 4,20] [--index ivf-pq] [--quick] [--ray]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench_http import SHARED_DATA, WORK
from bench_models import machine
from rag_testkit.ray import LoopbackCluster
from rag_testkit.stand_ins import RandomEmbedder
from rag_testkit.tiny_models import make_tiny_e5

from rag.config import BuildConfig, Settings
from rag.index import Builder
from rag.index.ray_embedding import RayEmbedding
from rag.models import load_embedder

DIM = 384  # bge-small-en's width, the shipped embedder
HEAD_LIMIT_MIB = 4096  # helm/rag-index-build's ray.head.resources


def echo(message: str) -> None:
    print(message, flush=True)


class _Memory:
    """Peak anonymous and file-backed RSS (MiB) since the last `take()`, sampled every 20 ms."""

    def __init__(self) -> None:
        self.anon = self.file = 0
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def now() -> dict[str, int]:
        fields = {}
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(("RssAnon:", "RssFile:")):
                    name, value = line.split(":")
                    fields[name] = int(value.split()[0]) // 1024
        return fields

    def _sample(self) -> None:
        while True:
            fields = self.now()
            self.anon = max(self.anon, fields["RssAnon"])
            self.file = max(self.file, fields["RssFile"])
            time.sleep(0.02)

    def take(self) -> dict[str, int]:
        fields = self.now()
        peak = {"anon_mib": max(self.anon, fields["RssAnon"]), "file_mib": max(self.file, fields["RssFile"])}
        self.anon = self.file = 0
        return peak


# The progress call that ends each stage: the first `embed` call ends segmentation, and so on.
_ENDS = {
    ("embed", None): "segment",
    ("index", 0): "embed",
    ("index", 1): "store",
    ("index", 2): "bm25",
    ("index", 3): "dense index",
    ("index", 4): "manifest",
}


def child(corpus: Path, out: Path, index: str, ray_address: str, model: str) -> dict[str, Any]:
    """One build in this process (on Ray when `ray_address`): each stage's seconds and memory peaks."""
    memory = _Memory()
    if ray_address:
        settings = Settings(embedding_model=model, backend="torch", threads=1, reranker_model=None)
        ray = RayEmbedding(ray_address, settings, actors=2)
        builder = Builder(load_embedder(settings), BuildConfig(dense_index=index), ray=ray)
    else:
        builder = Builder(RandomEmbedder(DIM), BuildConfig(dense_index=index))
    started = last = time.perf_counter()
    stages: list[dict[str, Any]] = []
    ends = dict(_ENDS)

    def ended(stage: str) -> None:
        nonlocal last
        stages.append({"stage": stage, "seconds": time.perf_counter() - last, **memory.take()})
        last = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        name = ends.pop((stage, done if stage == "index" else None), None)
        if name:
            ended(name)

    documents, report = builder.load(corpus)
    ended("load")
    result = builder.build(documents, out, report=report, progress=progress, overwrite=True)
    return {
        "documents": result.manifest.counts["documents"],
        "units": result.manifest.counts["units"],
        "seconds": time.perf_counter() - started,
        "stages": stages,
    }


def write_corpus(folder: Path, copies: int) -> Path:
    """SciFact's corpus.jsonl `copies` times, each copy's ids suffixed: distinct documents, real text."""
    path = folder / "corpus.jsonl"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        lines = (SHARED_DATA / "scifact" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
        with open(path.with_suffix(".tmp"), "w", encoding="utf-8") as file:
            for copy in range(copies):
                for line in lines:
                    record = json.loads(line)
                    record["_id"] = f"{record['_id']}-{copy}"
                    file.write(json.dumps(record) + "\n")
        path.with_suffix(".tmp").rename(path)
    return folder


def _proportional_kib(pid: int) -> int:
    """A process' share of anonymous and shared-memory pages: summed over processes, each page once."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                    total += int(line.split()[1])
    except OSError:  # it ended meanwhile
        pass
    return total


def _session(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                pids.append(int(entry.name))
    return pids


def _head_pod_peak(build: subprocess.Popen[str], head: int, peak: list[int]) -> None:
    """The build process and the head node's processes, sampled together until the build ends."""
    while build.poll() is None:
        pids = [build.pid, *_session(head)]
        peak[0] = max(peak[0], sum(_proportional_kib(pid) for pid in pids) // 1024)
        time.sleep(0.1)


def measure(copies: int, index: str, work: Path, cluster: Any = None, model: str = "") -> dict[str, Any]:
    corpus = write_corpus(work / f"scifact-x{copies}", copies)
    command = [sys.executable, __file__, "--child", str(corpus), str(work / "bundle"), "--index", index]
    if cluster is not None:
        command += ["--ray-address", cluster.address, "--model", model]
    build = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pod_peak = [0]
    if cluster is not None:
        threading.Thread(target=_head_pod_peak, args=(build, cluster.nodes[0].process.pid, pod_peak)).start()
    stdout, stderr = build.communicate(timeout=3600)
    if build.returncode:
        raise SystemExit(f"the build failed:\n{stderr[-3000:]}")
    row: dict[str, Any] = json.loads(stdout.splitlines()[-1])
    row["copies"] = copies
    row["on_ray"] = cluster is not None
    if cluster is not None:
        row["head_pod_peak_mib"] = pod_peak[0]
    row["anon_peak_mib"] = max(stage["anon_mib"] for stage in row["stages"])
    row["vectors_mib"] = row["units"] * DIM * 4 / 2**20
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--copies", default="4,20", help="corpus sizes, as copies of SciFact's 5,183 abstracts"
    )
    parser.add_argument(
        "--index", default="ivf-pq", help="RAG_DENSE_INDEX (ivf-pq: what a large corpus uses)"
    )
    parser.add_argument("--quick", action="store_true", help="copies 1,2: a dry run")
    parser.add_argument("--ray", action="store_true", help="also build on a 2-node loopback Ray cluster")
    parser.add_argument("--from-json", type=Path, help="print a saved run's rows and projections again")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ray-address", default="", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=WORK / "build-memory.json")
    args = parser.parse_args()
    if args.child:
        corpus, out = args.child
        print(json.dumps(child(corpus, out, args.index, args.ray_address, args.model)))
        return
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        for name, key in (("local", "anon_peak_mib"), ("ray", "head_pod_peak_mib")):
            if name in saved:
                _series(saved[name]["rows"], key)
        return
    info = machine()
    echo(f"CPU: {info['cpu']} · avx2 {info['flags']['avx2']} · avx512_vnni {info['flags']['avx512_vnni']}")
    sizes = [1, 2] if args.quick else [int(c) for c in args.copies.split(",")]
    work = WORK / "build-memory"
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": info,
        "index": args.index,
        "local": _series([measure(copies, args.index, work) for copies in sizes], "anon_peak_mib"),
    }
    if args.ray:
        model = str(_projected_model(work / "model-384"))
        cluster = LoopbackCluster(work / "cluster").start()
        try:
            rows = [measure(copies, args.index, work, cluster, model) for copies in sizes]
        finally:
            cluster.stop()
        report["ray"] = _series(rows, "head_pod_peak_mib")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    echo(f"\nwrote {args.out}")


def _series(rows: list[dict[str, Any]], peak_key: str) -> dict[str, Any]:
    """Prints each row, and what the smallest and the largest corpus project (`_projection`)."""
    for row in rows:
        where = "on Ray, the head pod" if row["on_ray"] else "in one process"
        peak, vectors = row[peak_key], row["vectors_mib"]
        echo(
            f"\n{row['units']:,} units ({row['documents']:,} documents), {where}: {row['seconds']:.1f} s, "
            f"peak {peak:,} MiB = {peak / vectors:.2f} × the vectors' {vectors:,.0f} MiB"
        )
        for stage in row["stages"]:
            echo(
                f"  {stage['stage']:<12} {stage['seconds']:7.1f} s   build process: anonymous "
                f"{stage['anon_mib']:6,} MiB, file-backed {stage['file_mib']:6,} MiB"
            )
    series: dict[str, Any] = {"rows": rows}
    if rows[-1]["units"] > rows[0]["units"]:
        series.update(_projection(rows[0], rows[-1], peak_key))
        steepest = max(series["bytes_per_unit"].items(), key=lambda item: item[1])
        ray = f", and {series['ray_bytes_per_unit']:,.0f} for Ray's processes" if rows[0]["on_ray"] else ""
        fits = series["units_in_head_limit"] / 1e6
        echo(
            f"\nper unit, the steepest stage: {steepest[0]} ({steepest[1]:,.0f} bytes per unit{ray}); "
            f"projected peak at 10M units {series['peak_at_10m_mib'] / 1024:,.1f} GiB; "
            f"a head limited to {HEAD_LIMIT_MIB:,} MiB holds ~{fits:.1f}M units"
        )
    return series


def _projection(small: dict[str, Any], large: dict[str, Any], peak_key: str) -> dict[str, Any]:
    """Each stage's memory as a line through the two sizes, so the projection follows the stage that grows
    fastest, not the one that peaks at these sizes (ivf-pq's training sample is a fixed cost that peaks the
    small corpus). On Ray, the head node's processes (pod peak less the build process' peak) are a line
    too."""
    units = large["units"] - small["units"]

    def line(at_small: float, at_large: float) -> tuple[float, float]:
        slope = (at_large - at_small) / units
        return slope, at_small - slope * small["units"]

    stages = {
        a["stage"]: line(a["anon_mib"], b["anon_mib"])
        for a, b in zip(small["stages"], large["stages"], strict=True)
    }
    ray = (0.0, 0.0)
    if small["on_ray"]:
        ray = line(small[peak_key] - small["anon_peak_mib"], large[peak_key] - large["anon_peak_mib"])

    def peak_at(n: float) -> float:
        return max(fixed + slope * n for slope, fixed in stages.values()) + ray[1] + ray[0] * n

    low, high = 0.0, 1e9  # the peak grows with n: bisect for the limit
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if peak_at(middle) <= HEAD_LIMIT_MIB else (low, middle)
    return {
        "bytes_per_unit": {name: slope * 2**20 for name, (slope, _) in stages.items()},
        "ray_bytes_per_unit": ray[0] * 2**20,
        "peak_at_10m_mib": peak_at(10e6),
        "units_in_head_limit": low,
    }


def _projected_model(folder: Path) -> Path:
    """The tiny e5 (width 32, random) with a dense projection to bge-small's 384: vectors of the real size
    from a model ~15× cheaper than a layer of width 384, so the actors keep up with the head."""
    if not (folder / "modules.json").exists():
        import torch
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer import modules

        make_tiny_e5(folder)
        tiny = SentenceTransformer(str(folder), device="cpu")
        torch.manual_seed(0)
        projection = modules.Dense(in_features=tiny.get_embedding_dimension(), out_features=DIM)
        SentenceTransformer(modules=[*tiny, projection], device="cpu").save(str(folder))
    return folder


if __name__ == "__main__":
    main()
