"""`make bench-milvus`: the bundle backend against the Milvus backend, same models, same fusion, one run.

SciFact test (nDCG@10, Recall@100; sentence units, documents ranked by their best unit) and SQuAD v1.1 dev
part A (top-1 and top-3 sentence holds the answer), with the real bge-small-en embedder and no rerank: what
differs between the backends is candidate retrieval, and rerank would only blur it. Milvus is milvus-lite
2.5.1's engine on loopback over gRPC (FLAT inner product, BM25 with its English analyzer). Latency is
`Pipeline.rank` (embed, candidates, fusion), the backends asked in turn per question so noise cancels.
"milvus" searches Milvus with the whole bundle loaded; "milvus-pod" is what a pod with
RAG_RETRIEVAL_BACKEND=milvus loads: the bundle without its indexes, unit vectors read from the collection.

    python benchmarks/bench_milvus.py [--queries N] [--out build/bench/milvus.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_http import SHARED_DATA, WORK, bundle_and_questions
from rag_testkit.milvus import MilvusLite
from real_models import real_models
from studies.suites import ranked_sentences

from rag.config import RetrievalParams, Settings
from rag.eval.datasets import load_beir, load_squad
from rag.eval.metrics import ndcg_at_k, recall_at_k
from rag.index import Builder, Bundle, read_manifest
from rag.milvus import bundle_version, connect
from rag.milvus.candidates import MilvusCandidates
from rag.milvus.publish import publish_bundle
from rag.milvus.schema import collection_name
from rag.models import load_embedder
from rag.pipeline import Pipeline, Timings

PARAMS = RetrievalParams(rerank=False)  # the shipped fusion and signals, without the cross-encoder


def echo(message: str) -> None:
    print(message, flush=True)


def squad_bundle(settings: Settings, embedder: Any) -> Path:
    """SQuAD part A paragraphs as sentence units with titles (the shipped build), built once."""
    data = load_squad(SHARED_DATA / "squad-v1.1" / "dev-v1.1.part-a.json")
    path = WORK / "bundle-squad-a-flat"
    config = settings.build_config()
    if not (path / "manifest.json").is_file() or read_manifest(path).build != config:
        echo(f"building {path} from {len(data.documents)} paragraphs …")
        Builder(embedder, config, cache_path=WORK / "embeddings.sqlite").build(
            data.documents, path, overwrite=True
        )
    return path


def pipelines(bundle: Bundle, embedder: Any, engine: MilvusLite, settings: Settings) -> dict[str, Pipeline]:
    started = time.perf_counter()
    client = connect(settings, engine.uri)
    result = publish_bundle(client, bundle, bundle_version(bundle), "rag", bm25_params=settings.bm25_params())
    echo(f"published {bundle.path.name}: {result.rows:,} units in {time.perf_counter() - started:.0f} s")
    source = MilvusCandidates(
        lambda: connect(settings, engine.uri),
        collection_name("rag", bundle_version(bundle)),
        bundle,
        settings.milvus_timeout_seconds,
        bm25=True,
    )
    local = Pipeline(bundle, embedder, None, PARAMS)
    # What a pod with RAG_RETRIEVAL_BACKEND=milvus loads: the bundle without its indexes, the unit vectors
    # (dense scores of the fused units) read from the collection.
    thin = Bundle.load(bundle.path, indexes=False)
    pod_source = MilvusCandidates(
        lambda: connect(settings, engine.uri),
        source.collection,
        thin,
        settings.milvus_timeout_seconds,
        bm25=True,
    )
    pod = Pipeline(thin.with_unit_vectors(pod_source.rows()), embedder, None, PARAMS, source=pod_source)
    return {"bundle": local, "milvus": local.with_candidates(source), "milvus-pod": pod}


def scifact(sides: dict[str, Pipeline], limit: int) -> dict[str, Any]:
    data = load_beir(SHARED_DATA / "scifact", "test")
    queries = list(data.queries.items())[:limit]
    scores: dict[str, dict[str, list[float]]] = {
        name: {"ndcg": [], "r100": [], "ms": [], "compose_ms": []} for name in sides
    }
    for qid, question in queries:
        for name, pipeline in sides.items():
            t = time.perf_counter()
            ranking = pipeline.rank(question, timings=Timings())
            scores[name]["ms"].append(1000 * (time.perf_counter() - t))
            t = time.perf_counter()
            pipeline.compose(question, ranking, PARAMS)  # evidence and MMR: where a pod reads vectors
            scores[name]["compose_ms"].append(1000 * (time.perf_counter() - t))
            seen: dict[str, None] = {}
            for unit in ranking.units.tolist():
                seen.setdefault(pipeline.bundle.documents[pipeline.bundle.seg.unit_doc[unit]].id)
            ranked = list(seen)[:100]
            scores[name]["ndcg"].append(ndcg_at_k(ranked, data.qrels[qid], 10))
            scores[name]["r100"].append(recall_at_k(ranked, data.qrels[qid], 100))
    return {
        name: {
            "queries": len(queries),
            "ndcg@10": float(np.mean(s["ndcg"])),
            "recall@100": float(np.mean(s["r100"])),
            "rank_p50_ms": float(np.percentile(s["ms"], 50)),
            "rank_p99_ms": float(np.percentile(s["ms"], 99)),
            "compose_p50_ms": float(np.percentile(s["compose_ms"], 50)),
        }
        for name, s in scores.items()
    }


def squad(sides: dict[str, Pipeline], limit: int) -> dict[str, Any]:
    questions = load_squad(SHARED_DATA / "squad-v1.1" / "dev-v1.1.part-a.json").questions[:limit]
    hits: dict[str, list[tuple[bool, bool]]] = {name: [] for name in sides}
    for q in questions:
        for name, pipeline in sides.items():
            top = [e.text for e in ranked_sentences(pipeline, pipeline.rank(q.question), 3)]
            found = [any(a in s for a in q.answers) for s in top]
            hits[name].append((any(found[:1]), any(found[:3])))
    return {
        name: {
            "questions": len(questions),
            "top1": float(np.mean([h[0] for h in rows])),
            "top3": float(np.mean([h[1] for h in rows])),
        }
        for name, rows in hits.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=100_000, help="at most this many per dataset")
    parser.add_argument("--out", type=Path, default=WORK / "milvus.json")
    args = parser.parse_args()
    embedder_path, _ = real_models()
    settings = Settings(backend="onnx", embedding_model=str(embedder_path), reranker_model=None, threads=2)
    embedder = load_embedder(settings)
    scifact_path, _ = bundle_and_questions(False, embedder_path, "flat")
    squad_path = squad_bundle(settings, embedder)
    folder = WORK / "milvus-engine"
    shutil.rmtree(folder, ignore_errors=True)
    engine = MilvusLite(folder).start()
    try:
        report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        sides = pipelines(Bundle.load(scifact_path), embedder, engine, settings)
        report["scifact"] = scifact(sides, args.queries)
        echo(json.dumps(report["scifact"], indent=1))
        sides = pipelines(Bundle.load(squad_path), embedder, engine, settings)
        report["squad"] = squad(sides, args.queries)
        echo(json.dumps(report["squad"], indent=1))
    finally:
        engine.stop()
    args.out.write_text(json.dumps(report, indent=1))
    s, q = report["scifact"], report["squad"]
    echo(
        "\n| backend | SciFact nDCG@10 | Recall@100 | rank p50 | rank p99 | evidence p50 | SQuAD-A top-1 | top-3 |"
        "\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name in ("bundle", "milvus", "milvus-pod"):
        echo(
            f"| {name} | {s[name]['ndcg@10']:.4f} | {s[name]['recall@100']:.4f} | {s[name]['rank_p50_ms']:.1f} ms "
            f"| {s[name]['rank_p99_ms']:.1f} ms | {s[name]['compose_p50_ms']:.1f} ms "
            f"| {q[name]['top1']:.4f} | {q[name]['top3']:.4f} |"
        )


if __name__ == "__main__":
    main()
