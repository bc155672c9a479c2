"""`make bench-scale`: how far one pod goes. For corpora of 100k, 1M and 5M units and each dense index kind:
build time, index size, memory per worker and per pod (two workers at once, as gunicorn runs them), retrieval
p50/p99 and recall@10 against exact search.

The 100k corpus is real (scale_vectors.py: SciFact and SQuAD text embedded with the configured model); 1M and
5M are drawn from a Gaussian mixture fitted to it, and its fidelity is printed. Queries are 1,000 real
questions. What is timed is the dense stage as retrieval calls it (DenseIndex.search, 100 results); BM25 and
the store are not in these numbers (docs/BENCHMARKS.md, "Scale", says what they add).

    python benchmarks/bench_scale.py [--sizes 100k,1M,5M] [--kinds flat,hnsw,hnsw-sq8,ivf-pq] [--quick]

Graph kinds build single-threaded (their bytes must not depend on scheduling): a size whose projected build
time exceeds --max-build-minutes is skipped, with the projection printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from bench_models import machine
from scale_vectors import Mixture, fidelity, real_sample

from rag.config import DenseParams
from rag.index.dense import write_dense

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SIZES = {"100k": 100_000, "1M": 1_000_000, "5M": 5_000_000}
# The synthetic draw at the real sample's size: what it does to each kind's recall, against the real row.
CALIBRATION = "100k-synthetic"
KINDS = ("flat", "hnsw", "hnsw-sq8", "ivf-pq")
# Search settings each kind is measured at; the first is the default (DenseParams).
SWEEPS: dict[str, list[dict[str, int]]] = {
    "flat": [{}],
    "hnsw": [{}, {"ef_search": 128}],
    "hnsw-sq8": [{}, {"ef_search": 128}],
    "ivf-pq": [{}, {"rescore": 4}, {"nprobe": 16}, {"nprobe": 64}, {"nprobe": 64, "rescore": 20}],
}


def echo(*parts: object) -> None:
    print(*parts, flush=True)


def corpus(label: str, real: np.ndarray, mixture: Mixture) -> np.ndarray:
    if label == CALIBRATION:
        return mixture.draw(len(real), seed=2)
    size = SIZES[label]
    return real[:size] if size <= len(real) else mixture.draw(size, seed=size)


def truth(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    import faiss

    _, ids = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    return ids


def build(folder: Path, vectors: np.ndarray, kind: str) -> dict[str, Any]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    write_dense(folder, vectors, kind, hnsw_m=32, ef_construction=200)  # type: ignore[arg-type]
    files = {p.name: p.stat().st_size for p in folder.iterdir()}
    return {"build_s": time.perf_counter() - started, "files": files}


def serve(folder: Path, kind: str, queries: Path, gold: Path) -> list[dict[str, Any]]:
    """Two workers at once, each loading the index and answering every query."""
    params = json.dumps([DenseParams(**p).model_dump() for p in SWEEPS[kind]])
    command = [
        sys.executable,
        str(HERE / "scale_worker.py"),
        str(folder),
        kind,
        str(queries),
        str(gold),
        params,
    ]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    reports = []
    for worker in workers:
        out, _ = worker.communicate(timeout=3600)
        if worker.returncode != 0:
            raise RuntimeError(f"worker failed ({worker.returncode})")
        reports.append(json.loads(out.splitlines()[-1]))
    return reports


def projected_build(kind: str, size: int, measured: dict[tuple[str, int], float]) -> float | None:
    """Seconds, from the largest size this kind was built at (n log n)."""
    done = [(n, s) for (k, n), s in measured.items() if k == kind]
    if not done:
        return None
    n, seconds = max(done)
    return seconds * (size * np.log(size)) / (n * np.log(n))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    real_file, queries_file = out / "real-units.npy", out / "real-queries.npy"
    if not real_file.exists():
        units, asked, _ = real_sample(SIZES["100k"], out / "embeddings.sqlite", args.queries)
        np.save(real_file, units)
        np.save(queries_file, asked)
    real, queries = np.load(real_file), np.load(queries_file)[: args.queries]
    echo(f"real sample: {len(real):,} units, {len(queries):,} queries")
    started = time.perf_counter()
    mixture = Mixture.fit(real)
    synthetic_100k = mixture.draw(len(real), seed=1)
    match = fidelity(real, synthetic_100k, queries)
    del synthetic_100k
    echo(f"mixture fitted in {time.perf_counter() - started:.0f} s; fidelity: {json.dumps(match)}")
    np.save(out / "queries.npy", queries)
    rows: list[dict[str, Any]] = []
    build_seconds: dict[tuple[str, int], float] = {}
    for label in args.sizes:
        vectors = corpus(label, real, mixture)
        size = len(vectors)
        gold = truth(vectors, queries)
        np.save(out / "truth.npy", gold)
        for kind in args.kinds:
            projection = projected_build(kind, size, build_seconds)
            if kind.startswith("hnsw") and projection and projection > 60 * args.max_build_minutes:
                echo(f"{label} {kind}: skipped, projected single-thread build {projection / 60:.0f} min")
                rows.append({"size": label, "units": size, "kind": kind, "skipped": projection})
                continue
            folder = out / f"{label}-{kind}"
            built = build(folder, vectors, kind)
            build_seconds[(kind, size)] = built["build_s"]
            workers = serve(folder, kind, out / "queries.npy", out / "truth.npy")
            row = {"size": label, "units": size, "kind": kind, **built, "workers": workers}
            rows.append(row)
            echo(summary(row))
            if not args.keep:
                shutil.rmtree(folder)
        del vectors
    return {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": machine(),
        "fidelity": match,
        "rows": rows,
        "other_parts": other_parts(args.bundle),
    }


OTHER_PARTS = """
import json, sys
from pathlib import Path
from rag.config import Bm25Params
from rag.index.lexical import Bm25Index
from rag.index.store import read_store

def anon_kb():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon"))

path = Path(sys.argv[1])
start = anon_kb()
documents, seg = read_store(path / "store.sqlite")
after_store = anon_kb()
Bm25Index(path / "bm25", seg.unit_doc, Bm25Params(), n_docs=len(documents))
print(json.dumps({"units": seg.n_units, "store_kb": after_store - start, "bm25_kb": anon_kb() - after_store}))
"""


def other_parts(bundle: Path) -> dict[str, Any] | None:
    """What the store and BM25 cost a process per unit, read from a real bundle: both are still loaded into
    each process' own memory (shared only by preloading before fork), so they add to the dense index."""
    if not (bundle / "manifest.json").exists():
        echo(f"{bundle}: no bundle there, store and BM25 not measured (make bench builds it)")
        return None
    child = subprocess.run([sys.executable, "-c", OTHER_PARTS, str(bundle)], capture_output=True, text=True)
    child.check_returncode()
    found: dict[str, Any] = json.loads(child.stdout)
    per_million = {k: v / found["units"] * 1e6 / 1024 for k, v in found.items() if k.endswith("_kb")}
    echo(
        f"{bundle.name} ({found['units']:,} units): per 1M units, store {per_million['store_kb']:.0f} MiB, "
        f"BM25 {per_million['bm25_kb']:.0f} MiB"
    )
    return {**found, "bundle": bundle.name, "mib_per_million_units": per_million}


def summary(row: dict[str, Any]) -> str:
    default = [w["runs"][0] for w in row["workers"]]
    pss = sum(w["after_kb"]["pss"] for w in row["workers"]) / 1024
    return (
        f"{row['size']:>5} {row['kind']:<9} build {row['build_s']:7.1f} s · "
        f"{sum(row['files'].values()) / 2**20:8.0f} MiB on disk · pod PSS {pss:7.0f} MiB · "
        f"p50 {np.mean([r['p50_ms'] for r in default]):6.2f} ms · recall@10 {default[0]['recall10']:.3f}"
    )


def table(report: dict[str, Any]) -> str:
    lines = [
        "| units | index | build | on disk | worker: private / file-backed | pod (2 workers, PSS) | p50 | p99 | recall@10 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        if "skipped" in row:
            lines.append(
                f"| {row['size']} | {row['kind']} | not built: single-thread build projected at "
                f"{row['skipped'] / 60:.0f} min | | | | | | |"
            )
            continue
        w = row["workers"]
        default = [x["runs"][0] for x in w]
        anon = max(x["after_kb"]["anon"] - x["before_kb"]["anon"] for x in w) / 1024
        file_backed = max(x["after_kb"]["file"] - x["before_kb"]["file"] for x in w) / 1024
        pss = sum(x["after_kb"]["pss"] - x["before_kb"]["pss"] for x in w) / 1024
        lines.append(
            f"| {row['size']} | {row['kind']} | {row['build_s']:.0f} s | {sum(row['files'].values()) / 2**20:,.0f} MiB "
            f"| {anon:,.0f} / {file_backed:,.0f} MiB | {pss:,.0f} MiB "
            f"| {np.mean([r['p50_ms'] for r in default]):.2f} ms | {np.mean([r['p99_ms'] for r in default]):.2f} ms "
            f"| {default[0]['recall10']:.3f} |"
        )
    return "\n".join(lines)


def sweep_table(report: dict[str, Any]) -> str:
    lines = ["| units | index | search settings | p50 | p99 | recall@10 |", "|---|---|---|---:|---:|---:|"]
    defaults = DenseParams().model_dump()
    for row in report["rows"]:
        if "skipped" in row or len(row["workers"][0]["runs"]) < 2:
            continue
        for i, run in enumerate(row["workers"][0]["runs"]):
            changed = {k: v for k, v in run["params"].items() if v != defaults[k]} or "defaults"
            p50 = np.mean([w["runs"][i]["p50_ms"] for w in row["workers"]])
            p99 = np.mean([w["runs"][i]["p99_ms"] for w in row["workers"]])
            lines.append(
                f"| {row['size']} | {row['kind']} | {changed} | {p50:.2f} ms | {p99:.2f} ms | {run['recall10']:.3f} |"
            )
    return "\n".join(lines)


def plot(results: Path, image: Path) -> None:
    """scale_plot.py runs in a venv of its own: matplotlib is a benchmark tool, not a product dependency."""
    venv = ROOT / "build" / "plot-venv"
    if not (venv / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "matplotlib==3.11.2"], check=True)
        (venv / ".installed").touch()
    subprocess.run(
        [str(venv / "bin" / "python"), str(HERE / "scale_plot.py"), str(results), str(image)], check=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=lambda s: s.split(","), default=list(SIZES), help=f"of {[*SIZES, CALIBRATION]}"
    )
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=list(KINDS))
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--max-build-minutes", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "scale")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "bench" / "scale.png")
    parser.add_argument("--keep", action="store_true", help="keep the built indexes")
    parser.add_argument("--results", default="scale.json", help="file name in --out")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--bundle",
        type=Path,
        default=ROOT / "build" / "bench" / "bundle-scifact-hnsw",
        help="a real bundle to measure the store's and BM25's memory per unit on",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke test: 100k only, 200 queries, no plot")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.queries, args.no_plot = ["100k"], 200, True
    info = machine()
    echo(f"CPU: {info['cpu']} · avx2 {info['flags']['avx2']} · avx512_vnni {info['flags']['avx512_vnni']}")
    report = measure(args)
    results = args.out / args.results
    results.write_text(json.dumps(report, indent=1))
    echo("\n" + table(report) + "\n\n" + sweep_table(report))
    if not args.no_plot:
        plot(results, args.plot)
        echo(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
