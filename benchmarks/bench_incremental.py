"""`make bench-incremental`: a cold SciFact build vs a rebuild after 1% of the documents changed.

With the embedding cache (`rag build --cache`) a rebuild embeds only the units whose text changed. Measured:
  cold     Builder.build of the corpus with a fresh cache (every unit embedded, batch-invariant: batch 1)
  rebuild  the same after changing 1% of the documents (every 100th: its first sentence reworded and one
           sentence appended), reusing the cache
  check    a cold build of the CHANGED corpus with another fresh cache: its files must have the rebuild's
           sha256 (every file manifest.json lists: store.sqlite, dense.faiss, bm25/*; manifest.json itself
           holds the build time `created_at` and is not compared)
  batched  (--batched) a cold build without cache at batch 64: what batch invariance costs
Times are Builder.build's own (corpus loading and model loading excluded, the same in both).

    python benchmarks/bench_incremental.py           # SciFact (5,183 documents), MiniLM int8 ONNX
    python benchmarks/bench_incremental.py --quick   # the first 300 documents: a dry run (~1 min)

Needs build/bench/minilm.onnx-int8 (`rag models export sentence-transformers/all-MiniLM-L6-v2 --quantize int8`)
and an otherwise idle machine (numbers under load are not comparable).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RAG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scifact"
MODEL = ROOT / "build" / "bench" / "minilm.onnx-int8"
WORK = ROOT / "build" / "bench" / "incremental"


def echo(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def change(documents: list[Any], every: int) -> tuple[list[Any], int]:
    out = list(documents)
    changed = 0
    for i in range(0, len(out), every):
        doc = out[i]
        first, dot, rest = doc.text.partition(". ")
        text = f"{first.upper()}{dot}{rest}" if dot else doc.text.upper()
        out[i] = replace(doc, text=f"{text} Revision {i}: the findings were re-examined in a later cohort.")
        changed += 1
    return out, changed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the first 300 documents")
    parser.add_argument("--documents", type=int, help="use the first N documents")
    parser.add_argument("--model", default=str(MODEL))
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0 = the cores)")
    parser.add_argument("--batched", action="store_true", help="also a cold build without cache at batch 64")
    parser.add_argument("--work", default=str(WORK))
    parser.add_argument("--json-out", help="write the results here too")
    args = parser.parse_args()

    from rag.config import BuildConfig, Settings
    from rag.eval.datasets import load_beir
    from rag.index import Builder, read_manifest
    from rag.models import load_embedder

    work = Path(args.work) / ("quick" if args.quick else "full")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    documents = load_beir(DATA).documents
    limit = args.documents or (300 if args.quick else None)
    if limit:
        documents = documents[:limit]
    settings = Settings(backend="onnx", embedding_model=args.model, reranker_model=None, threads=args.threads)
    embedder = load_embedder(settings)
    config = BuildConfig()
    changed_docs, n_changed = change(documents, every=100)
    echo(f"{len(documents)} documents, {n_changed} changed; model {args.model}")

    def build(docs: list[Any], name: str, cache: str | None, **kwargs: Any) -> tuple[float, Any]:
        started = time.perf_counter()
        result = Builder(embedder, config, cache_path=work / cache if cache else None).build(
            docs, work / name, **kwargs
        )
        seconds = time.perf_counter() - started
        echo(f"{name}: {seconds:.2f}s, {result.embedded} embedded, {result.cache_hits} from cache")
        return seconds, result

    cold_s, cold = build(documents, "cold", "cache.sqlite")
    re_s, rebuilt = build(changed_docs, "rebuild", "cache.sqlite")
    check_s, _ = build(changed_docs, "cold-changed", "fresh.sqlite")

    def sums(name: str) -> dict[str, str]:
        return {path: entry.sha256 for path, entry in read_manifest(work / name).files.items()}

    identical = sums("rebuild") == sums("cold-changed")
    report: dict[str, Any] = {
        "documents": len(documents),
        "changed_documents": n_changed,
        "units": cold.manifest.counts["units"],
        "cold_seconds": round(cold_s, 2),
        "rebuild_seconds": round(re_s, 2),
        "speedup": round(cold_s / re_s, 1),
        "rebuild_embedded": rebuilt.embedded,
        "rebuild_cache_hits": rebuilt.cache_hits,
        "cold_changed_seconds": round(check_s, 2),
        "byte_identical_to_cold_build": identical,
        "compared_files": sorted(sums("rebuild")),
        "model": Path(args.model).name,
        "threads": settings.effective_threads(),
        "load_average_at_end": os.getloadavg()[0],
    }
    if args.batched:
        batched_s, _ = build(documents, "batched", None)
        report["cold_batched_no_cache_seconds"] = round(batched_s, 2)
    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
