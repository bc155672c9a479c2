"""One serving worker of `make bench-scale`: loads a dense index as Bundle.load does (memory-mapped), asks the
queries as retrieval does (the 100 best, RetrievalParams.dense_top_k), and reports latency, recall@10 against
exact search and its memory. Two run at once, as a pod's two gunicorn workers.

    python scale_worker.py FOLDER KIND QUERIES.npy TRUTH.npy PARAMS_JSON
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import faiss  # noqa: F401  (its libraries load before the first measurement, not inside the index' share)
import numpy as np

from rag.config import DenseParams
from rag.index.dense import DenseIndex

WARM = 30


def memory_kb() -> dict[str, int]:
    """Private (anonymous) and file-backed resident pages, and PSS: shared pages divided among the processes
    mapping them, so the PSS of a pod's workers adds up to what the pod holds."""
    status = {
        line.split(":")[0]: int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith(("RssAnon", "RssFile", "VmHWM"))
    }
    rollup = {
        line.split(":")[0]: int(line.split()[1])
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]
        if line.split()[-1] == "kB"
    }
    return {
        "anon": status["RssAnon"],
        "file": status["RssFile"],
        "pss": rollup["Pss"],
        "hwm": status["VmHWM"],
    }


def main() -> None:
    folder, kind, queries_file, truth_file, params_json = sys.argv[1:6]
    queries, truth = np.load(queries_file), np.load(truth_file)
    before = memory_kb()
    started = time.perf_counter()
    runs = []
    index = None
    for params in json.loads(params_json):
        index = DenseIndex(Path(folder), kind, DenseParams(**params), threads=1)  # type: ignore[arg-type]
        load_seconds = time.perf_counter() - started
        for q in queries[:WARM]:
            index.search(q, 100)
        latencies, found = [], 0
        for q, exact in zip(queries, truth, strict=True):
            t = time.perf_counter()
            ids, _ = index.search(q, 100)
            latencies.append(time.perf_counter() - t)
            found += len(set(ids[:10].tolist()) & set(exact.tolist()))
        runs.append(
            {
                "params": params,
                "p50_ms": 1000 * float(np.percentile(latencies, 50)),
                "p99_ms": 1000 * float(np.percentile(latencies, 99)),
                "recall10": found / (10 * len(queries)),
                "load_s": load_seconds,
            }
        )
    print(json.dumps({"runs": runs, "before_kb": before, "after_kb": memory_kb()}))


if __name__ == "__main__":
    main()
