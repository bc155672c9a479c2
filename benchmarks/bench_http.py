"""`make bench`: /answer over HTTP (gunicorn, 2 workers × 1 ORT thread) against the same pipeline in-process.

The reranked scenarios also run on 1 worker × 2 threads: in-process, that is both cores on one answer, as
`rag ask` runs on 2 cores; over HTTP, a pod shaped for latency rather than the chart's 2 × 1.

The models are the default `make run` serves (`make models`: the real int8 bge-small-en, and the real int8
ms-marco-MiniLM-L-12-v2 as the reranker), plus a bge-reranker-base-sized cross-encoder (random weights: its
cost, never its quality) for a production-size reranker under the same design.

For each scenario a real service is started on loopback and `wrk` (C, one thread) drives it for a bounded
time at concurrency 1, 4 and 16 with the SciFact test questions (so no two consecutive requests repeat, and
the answer cache is off except in the cache-hit scenario). In the same run the pipeline is called in-process
on the same questions, and the reranker's own forward pass is timed on the same (question, unit) pairs, so
the HTTP overhead and the rerank overhead are ratios that other load on the machine mostly cancels.

    python benchmarks/bench_http.py [--quick] [--duration S] [--out build/bench/http.json]

`--quick` uses the sample corpus (sample-corpus/) and short runs: a smoke test of the harness, not a measurement.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
from bench_models import export_folder, prepare  # noqa: E402
from rag_testkit.launch import make_run  # noqa: E402  (tests/ is on the path through bench_models)
from real_models import real_models  # noqa: E402

SHARED_DATA = Path(os.environ.get("RAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
WORK = ROOT / "build" / "bench"
CONCURRENCY = (1, 4, 16)
TARGETS = {
    "hybrid p50 at c=1 (ms)": 8.0,
    "cache hit p50 at c=1 (ms)": 2.0,
    "HTTP overhead p50 (ms)": 1.5,
    "bge-base rerank: HTTP p50 / forward p50": 1.15,
    "hybrid req/s at c=16 (min)": 200.0,
    # issue 19: reranking cheap enough to leave on, and a pod that fits in 1 GB. In-process is one process
    # on both cores (RAG_THREADS=2, what `rag ask` takes on 2 cores); HTTP is the chart's pod, 2 workers × 1
    # thread, and a pod of 1 worker × 2 threads for the bge-base-size reranker.
    "default (MiniLM-L12 rerank) in-process p50, 2 threads (ms)": 80.0,
    "default (MiniLM-L12 rerank) HTTP p50 at c=1 (ms)": 120.0,
    "bge-base-size rerank in-process p50, 2 threads (ms)": 350.0,
    "bge-base-size rerank HTTP p50 at c=1 (ms)": 350.0,
    "bge-base-size rerank HTTP p50 at c=1, 1 worker × 2 threads (ms)": 350.0,
    "default: pod PSS after the reranked load (MB)": 1000.0,
}
DEFAULT = "hybrid + MiniLM-L12 reranker (real, the default)"
NO_TITLE = "the default with RAG_RERANK_TITLE=false (titles not read)"
BGE_BASE = "hybrid + bge-base-size reranker (int8)"
# one answer computed at a time, on both cores: 2 at once would run 4 threads on 2 cores (docs/DEPLOY.md)
TWO_THREADS = {"RAG_WORKERS": "1", "RAG_THREADS": "2", "RAG_INFERENCE_THREADS": "1"}
DEFAULT_2T = "the default on 1 worker × 2 threads (RAG_WORKERS=1 RAG_THREADS=2 RAG_INFERENCE_THREADS=1)"
BGE_BASE_2T = (
    "bge-base-size reranker on 1 worker × 2 threads (RAG_WORKERS=1 RAG_THREADS=2 RAG_INFERENCE_THREADS=1)"
)

WRK_SCRIPT = r"""
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local i = 0
local headers = {["Content-Type"] = "application/json"}
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/answer", headers, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %f, "p50": %f, "p95": %f, "p99": %f, "errors": %d, "non2xx": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def echo(message: str) -> None:
    print(message, flush=True)


# ---- inputs ---------------------------------------------------------------------------------------------


def bundle_and_questions(
    quick: bool, embedder: Path, dense_index: str, label: str = ""
) -> tuple[Path, list[str]]:
    """The sample (quick) or SciFact bundle built with `embedder` (rebuilt when the model or settings changed;
    the embedding cache makes a rebuild with a known model cheap), and its questions."""
    from rag.config import Settings
    from rag.corpus import load_corpus
    from rag.eval.datasets import load_beir
    from rag.index import Builder, read_manifest
    from rag.models import load_embedder

    settings = Settings(
        backend="onnx", embedding_model=str(embedder), reranker_model=None, threads=2, dense_index=dense_index
    )
    if quick:
        documents, _ = load_corpus(ROOT / "sample-corpus")
        questions = [
            f"How does the service handle {w}?" for w in ("abstention", "caching", "metrics", "errors")
        ]
        path = WORK / f"bundle-docs-{dense_index}{label}"
    else:
        data = load_beir(SHARED_DATA / "scifact")
        documents, questions = data.documents, list(data.queries.values())
        path = WORK / f"bundle-scifact-{dense_index}{label}"
    model = load_embedder(settings)
    current = (path / "manifest.json").is_file() and (
        read_manifest(path).embedding_model.fingerprint == model.identity.fingerprint
        and read_manifest(path).build == settings.build_config()
    )
    if not current:
        echo(f"building {path} from {len(documents)} documents ({embedder.name}) …")
        Builder(model, settings.build_config(), cache_path=WORK / "embeddings.sqlite").build(
            documents, path, overwrite=True
        )
    return path, questions


# ---- the two sides: in-process and over HTTP --------------------------------------------------------------


def server_env(embedder: Path, reranker: Path | None, **extra: str) -> dict[str, str]:
    """The settings every scenario names: the int8 models, 2 workers × 1 thread (also on a larger machine),
    the answer cache off (so questions are computed, not remembered) and a deadline long enough for the
    bge-base-size reranker under load. The rest is what `make run` gives the service."""
    return {
        "RAG_BACKEND": "onnx",
        "RAG_EMBEDDING_MODEL": str(embedder),
        "RAG_RERANKER_MODEL": str(reranker or ""),
        "RAG_WORKERS": "2",
        "RAG_THREADS": "1",
        "RAG_CACHE_SIZE": "0",
        "RAG_REQUEST_TIMEOUT_SECONDS": "120",
        **extra,
    }


def in_process(bundle: Path, env: dict[str, str], questions: list[str], seconds: float) -> dict[str, Any]:
    """Sequential answers from the pipeline the service would build, plus the reranker's bare forward time."""
    from rag.config import Settings
    from rag.pipeline import Pipeline

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        settings = Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    pipeline = Pipeline.from_settings(settings, bundle)
    pipeline.answer(questions[0])
    total, forward = [], []
    stages: dict[str, list[float]] = {}
    deadline = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < deadline or i < max(3, min(len(questions), 8)):
        question = questions[i % len(questions)]
        started = time.perf_counter()
        answer = pipeline.answer(question)
        total.append((time.perf_counter() - started) * 1000)
        for stage, ms in answer.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
        if pipeline.reranker is not None and pipeline.cross_encoder is not None:
            ranking = pipeline.rank(question, pipeline.resolve({"rerank": False}))
            texts = pipeline.cross_encoder.texts(ranking, pipeline.params)  # what the answer's rerank read
            started = time.perf_counter()
            pipeline.reranker.score(question, texts)
            forward.append((time.perf_counter() - started) * 1000)
        i += 1
    return {
        "answers": len(total),
        "p50_ms": statistics.median(total),
        "forward_p50_ms": statistics.median(forward) if forward else None,
        # where an answer's time goes: each stage's median (Pipeline's own timings)
        "stages_p50_ms": {stage: round(statistics.median(ms), 2) for stage, ms in stages.items()},
    }


class Service:
    """`make run` serving `bundle` with these settings (rag_testkit/launch.py: the one launcher)."""

    def __init__(self, bundle: Path, env: dict[str, str], workdir: Path) -> None:
        self.service = make_run(workdir, bundle=bundle, env=env, timeout=300)
        self.url = self.service.url
        # every worker ready: /ready is answered by whichever worker accepts, so ask until both have said 200
        for _ in range(20):
            httpx.get(f"{self.url}/ready", timeout=5)

    def memory_mb(self) -> dict[str, Any]:
        """RSS and PSS (shared pages split between the processes sharing them) of the master and each worker."""

        def read(pid: int | str) -> dict[str, float]:
            fields = {}
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
                name, value = line.split(":", 1)
                fields[name] = int(value.split()[0]) / 1024
            return {"rss": round(fields["Rss"], 1), "pss": round(fields["Pss"], 1)}

        master = self.service.master()
        workers = [read(pid) for pid in self.service.workers()]
        out: dict[str, Any] = {"master": read(master), "workers": workers}
        out["total_pss"] = round(out["master"]["pss"] + sum(w["pss"] for w in workers), 1)
        return out

    def stop(self) -> None:
        self.service.stop()


def wrk(url: str, bodies: Path, script: Path, concurrency: int, seconds: float) -> dict[str, Any]:
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "60s",
            "-s",
            str(script),
            url,
        ],
        env={**os.environ, "BENCH_BODIES": str(bodies)},
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("BENCH "))
    stats = json.loads(line[6:])
    stats["rps"] = stats["requests"] / stats["seconds"]
    return stats


def served_requests(log: Path, since: float) -> list[tuple[int, float]]:
    """(status, server-side latency ms) of every /answer the service logged after `since` (Unix time)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if '"rag.access"' not in line or '"/answer"' not in line:
            continue
        record = json.loads(line)
        when = calendar.timegm(time.strptime(record["ts"][:19], "%Y-%m-%dT%H:%M:%S"))
        if when >= since:
            out.append((int(record["status"]), float(record["latency_ms"])))
    return out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def overload(service: Service, body_file: Path, script: Path, seconds: float) -> dict[str, Any]:
    """Twice the service's admission capacity (workers × RAG_MAX_CONCURRENCY) in connections: how much is shed
    (429), how fast the admitted answers stay, and what the workers' memory does."""
    connections = 2 * 2 * 32  # 2 workers (server_env) × the default RAG_MAX_CONCURRENCY
    before = service.memory_mb()
    started = time.time() - 1
    stats = wrk(f"{service.url}/answer", body_file, script, connections, seconds)
    after = service.memory_mb()
    time.sleep(1)  # the access log of the last answers
    served = served_requests(service.service.log, started)
    admitted = [ms for status, ms in served if status == 200]
    statuses = [status for status, _ in served]
    return {
        "connections": connections,
        "seconds": seconds,
        "requests": len(served),
        "answered": len(admitted),
        "shed_429_share": round(statuses.count(429) / max(1, len(statuses)), 4),
        "server_errors": sum(status >= 500 for status in statuses),
        "socket_errors": stats["errors"],
        "admitted_p50_ms": percentile(admitted, 50),
        "admitted_p99_ms": percentile(admitted, 99),
        "worker_rss_mb_before": [w["rss"] for w in before["workers"]],
        "worker_rss_mb_after": [w["rss"] for w in after["workers"]],
    }


def memory_rounds(service: Service, body_file: Path, script: Path, rounds: int, seconds: float) -> list[Any]:
    """Worker RSS/PSS after start, then after each overload round and after 10 s idle following it."""
    echo(f"\n== memory over {rounds} overload rounds: {service.service.log.parent.name}")
    try:
        samples: list[Any] = [{"after": "start", **service.memory_mb()}]
        for n in range(1, rounds + 1):
            row = overload(service, body_file, script, seconds)
            samples.append({"after": f"round {n}", "answered": row["answered"], **service.memory_mb()})
            time.sleep(10)
            samples.append({"after": f"round {n} + 10 s idle", **service.memory_mb()})
            for sample in samples[-2:]:
                workers = ", ".join(f"{w['rss']:.0f}/{w['pss']:.0f}" for w in sample["workers"])
                echo(
                    f"   {sample['after']:<22} workers RSS/PSS {workers} MB, pod PSS {sample['total_pss']:.0f} MB"
                )
        return samples
    finally:
        service.stop()


# ---- the run --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="sample corpus, short runs: a harness smoke test"
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per wrk run (default 8; quick 1)"
    )
    parser.add_argument("--out", type=Path, default=WORK / "http.json")
    parser.add_argument("--overload-only", action="store_true", help="only the overload rows (2× capacity)")
    parser.add_argument(
        "--memory-rounds",
        type=int,
        default=0,
        help="only this many overload rounds with the bge-base-size reranker: does worker memory plateau?",
    )
    parser.add_argument(
        "--dense-index",
        choices=("flat", "hnsw"),
        default="hnsw",
        help="hnsw (default): ~0.05 ms per query on SciFact's 44k sentences; flat scans all of them (~5 ms)",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    duration = args.duration or (1.0 if args.quick else 8.0)
    WORK.mkdir(parents=True, exist_ok=True)

    embedder, minilm_l12 = real_models()
    prepare(WORK, ["bge-base-ce"], ["onnx-int8"], echo)
    rerankers = {"minilm-l12": minilm_l12, "bge-base-ce": export_folder(WORK, "bge-base-ce", "onnx-int8")}
    bundle, questions = bundle_and_questions(args.quick, embedder, args.dense_index)

    scratch = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    script = scratch / "post.lua"
    script.write_text(WRK_SCRIPT)

    def bodies(name: str, texts: list[str]) -> Path:
        path = scratch / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"question": q}) + "\n" for q in texts))
        return path

    # Reranked scenarios take seconds per answer: a fixed handful of questions, the same on both sides, so
    # the HTTP and in-process medians are over the same (question, unit) pairs.
    reranked = questions[:8]
    scenarios: list[tuple[str, Path | None, dict[str, str], list[str], float]] = [
        ("bm25 only", None, {"RAG_ALPHA": "0"}, questions, duration),
        ("hybrid", None, {}, questions, duration),
        (DEFAULT, rerankers["minilm-l12"], {}, reranked, duration * 2),
        (NO_TITLE, rerankers["minilm-l12"], {"RAG_RERANK_TITLE": "false"}, reranked, duration * 2),
        (BGE_BASE, rerankers["bge-base-ce"], {}, reranked, duration * 4),
        # the same models with both cores on one answer: in-process as `rag ask` runs, and a pod for latency
        (DEFAULT_2T, rerankers["minilm-l12"], TWO_THREADS, reranked, duration * 2),
        (BGE_BASE_2T, rerankers["bge-base-ce"], TWO_THREADS, reranked, duration * 4),
        ("cache hit (hybrid)", None, {"RAG_CACHE_SIZE": "1024"}, questions[:1], duration),
    ]
    report: dict[str, Any] = {
        "bundle": str(bundle),
        "dense_index": args.dense_index,
        "questions": len(questions),
        "duration_s": duration,
        "rows": [],
    }
    if args.memory_rounds:
        report["memory_rounds"] = {
            f"RAG_MAX_BATCH_TOKENS={tokens}": memory_rounds(
                Service(
                    bundle,
                    # RAG_MAX_REQUESTS=0: no recycling (under this load the default replaces a worker about
                    # every round, 429s count), so what a worker keeps is seen
                    server_env(
                        embedder, rerankers["bge-base-ce"], RAG_MAX_BATCH_TOKENS=tokens, RAG_MAX_REQUESTS="0"
                    ),
                    scratch / f"rounds-{tokens}",
                ),
                bodies("rounds", questions[:40]),
                script,
                args.memory_rounds,
                3 if args.quick else 30,
            )
            for tokens in ("1024", "1000000")  # the default, and no bound (batches of up to 32 pairs)
        }
        args.overload_only = True
    for name, reranker, extra, texts, seconds in [] if args.overload_only else scenarios:
        echo(f"\n== {name}")
        env = server_env(embedder, reranker, **extra)
        row: dict[str, Any] = {"scenario": name, "questions": len(texts)}
        body_file = bodies(f"bodies-{len(report['rows'])}", texts)
        if len(texts) > 1:
            row["in_process"] = in_process(bundle, env, texts, min(seconds, 10.0))
            forward = row["in_process"]["forward_p50_ms"]
            echo(
                f"   in-process p50 {row['in_process']['p50_ms']:.2f} ms"
                + (f" (reranker forward p50 {forward:.1f} ms)" if forward else "")
                + f"; stages p50 {row['in_process']['stages_p50_ms']}"
            )
        service = Service(bundle, env, scratch / f"{name.split()[0]}-{len(report['rows'])}")
        try:
            row["memory_mb"] = service.memory_mb()
            for c in CONCURRENCY:
                stats = wrk(f"{service.url}/answer", body_file, script, c, seconds)
                row[f"c{c}"] = stats
                echo(
                    f"   c={c:<2} {stats['rps']:7.1f} req/s  p50 {stats['p50']:8.2f}  p95 {stats['p95']:8.2f}  "
                    f"p99 {stats['p99']:8.2f} ms  errors {stats['errors']} non-2xx {stats['non2xx']}"
                )
            row["memory_after_load_mb"] = service.memory_mb()
            echo(
                f"   pod PSS {row['memory_mb']['total_pss']:.0f} MB at start, "
                f"{row['memory_after_load_mb']['total_pss']:.0f} MB after the load"
            )
        finally:
            service.stop()
        report["rows"].append(row)

    overloads = (
        []
        if args.memory_rounds
        else [
            ("overload: hybrid", None, questions),
            ("overload: " + DEFAULT, rerankers["minilm-l12"], reranked),
        ]
    )
    report["overload"] = []
    for name, reranker, texts in overloads:
        echo(f"\n== {name}: 2× admission capacity for {30 if not args.quick else 3} s")
        service = Service(
            bundle, server_env(embedder, reranker), scratch / f"overload-{len(report['overload'])}"
        )
        try:
            row = {
                "scenario": name,
                **overload(service, bodies(f"overload-{name[-5:]}", texts), script, 3 if args.quick else 30),
            }
        finally:
            service.stop()
        report["overload"].append(row)
        echo("   " + json.dumps(row))

    if not (args.quick or args.overload_only):
        echo("\n== preload before fork vs load per worker (hybrid + bge-base-size reranker): memory")
        for preload in ("false", "true"):
            env = server_env(embedder, rerankers["bge-base-ce"], RAG_PRELOAD=preload)
            service = Service(bundle, env, scratch / f"preload-{preload}")
            try:
                memory = service.memory_mb()
                check = httpx.post(f"{service.url}/answer", json={"question": questions[1]}, timeout=60)
                report[f"preload_{preload}"] = {"memory_mb": memory, "answer_status": check.status_code}
                echo(f"   preload={preload}: workers {memory} (an answer: {check.status_code})")
            finally:
                service.stop()

    if report["rows"]:
        summarise(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    echo(f"\nwrote {args.out}")


def summarise(report: dict[str, Any]) -> None:
    rows = {row["scenario"]: row for row in report["rows"]}
    hybrid, default, bge, cache = (rows["hybrid"], rows[DEFAULT], rows[BGE_BASE], rows["cache hit (hybrid)"])
    default_2t, bge_2t = rows[DEFAULT_2T], rows[BGE_BASE_2T]
    measured = {
        "hybrid p50 at c=1 (ms)": hybrid["c1"]["p50"],
        "cache hit p50 at c=1 (ms)": cache["c1"]["p50"],
        "HTTP overhead p50 (ms)": hybrid["c1"]["p50"] - hybrid["in_process"]["p50_ms"],
        "bge-base rerank: HTTP p50 / forward p50": bge["c1"]["p50"] / bge["in_process"]["forward_p50_ms"],
        "hybrid req/s at c=16 (min)": hybrid["c16"]["rps"],
        "default (MiniLM-L12 rerank) in-process p50, 2 threads (ms)": default_2t["in_process"]["p50_ms"],
        "default (MiniLM-L12 rerank) HTTP p50 at c=1 (ms)": default["c1"]["p50"],
        "bge-base-size rerank in-process p50, 2 threads (ms)": bge_2t["in_process"]["p50_ms"],
        "bge-base-size rerank HTTP p50 at c=1 (ms)": bge["c1"]["p50"],
        "bge-base-size rerank HTTP p50 at c=1, 1 worker × 2 threads (ms)": bge_2t["c1"]["p50"],
        "default: pod PSS after the reranked load (MB)": default["memory_after_load_mb"]["total_pss"],
    }

    def ratio(a: dict[str, Any], b: dict[str, Any], *keys: str) -> str:
        x, y = a, b
        for key in keys:
            x, y = x[key], y[key]
        return f"{x / y:.2f}×"

    echo(
        "\nratios in this run: default reranked / hybrid in-process p50 "
        + ratio(default, hybrid, "in_process", "p50_ms")
        + "; bge-base-size / MiniLM-L12 rerank HTTP p50 "
        + ratio(bge, default, "c1", "p50")
        + "; 2 threads / 1 thread in-process p50: default "
        + ratio(default_2t, default, "in_process", "p50_ms")
        + ", bge-base-size "
        + ratio(bge_2t, bge, "in_process", "p50_ms")
        + "; 1 worker × 2 threads / 2 workers × 1 thread req/s at c=4: default "
        + ratio(default_2t, default, "c4", "rps")
        + ", bge-base-size "
        + ratio(bge_2t, bge, "c4", "rps")
    )
    compared = (hybrid, default, bge, cache, default_2t, bge_2t)
    if min(row[f"c{c}"]["requests"] for row in compared for c in CONCURRENCY) == 0:
        echo("\nsome runs completed no request (too short for the reranker): no target is judged")
        return
    report["targets"] = {}
    echo("\n| target | measured | goal | met |\n|---|---|---|---|")
    for name, value in measured.items():
        goal = TARGETS[name]
        met = value >= goal if "(min)" in name else value <= goal
        errors = hybrid["c16"]["errors"] + hybrid["c16"]["non2xx"] if "req/s" in name else 0
        met = met and errors == 0
        report["targets"][name] = {"measured": round(value, 3), "goal": goal, "met": met}
        echo(f"| {name} | {value:.2f} | {goal} | {'yes' if met else 'no'} |")


if __name__ == "__main__":
    main()
