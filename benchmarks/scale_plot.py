"""The plot beside docs/BENCHMARKS.md's "Scale" table, drawn from bench_scale.py's results file.

    python scale_plot.py build/bench/scale/scale.json docs/bench/scale.png

Runs in a venv of its own (bench_scale.py makes it): matplotlib is a benchmark tool, not a dependency.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here; must precede pyplot
import matplotlib.pyplot as plt

COLOURS = {"flat": "#777777", "hnsw": "#2166ac", "hnsw-sq8": "#5aae61", "ivf-pq": "#b2182b"}


def series(rows: list[dict[str, Any]], kind: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Per size: units, the pod's private memory for the index (both workers' anonymous pages), the index
    files resident in the page cache (shared: the larger worker's), and p50."""
    units, private, shared, p50 = [], [], [], []
    for row in rows:
        if row["kind"] != kind or "skipped" in row:
            continue
        workers = row["workers"]
        units.append(row["units"])
        private.append(sum(w["after_kb"]["anon"] - w["before_kb"]["anon"] for w in workers) / 1024**2)
        shared.append(max(w["after_kb"]["file"] - w["before_kb"]["file"] for w in workers) / 1024**2)
        p50.append(sum(w["runs"][0]["p50_ms"] for w in workers) / len(workers))
    return units, private, shared, p50


def main() -> None:
    report = json.loads(Path(sys.argv[1]).read_text())
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    for kind, colour in COLOURS.items():
        units, private, shared, p50 = series(report["rows"], kind)
        if units:
            left.plot(units, shared, "o-", color=colour, label=f"{kind}: files in the page cache")
            left.plot(units, [max(p, 1e-3) for p in private], "s--", color=colour, label=f"{kind}: private")
            right.plot(units, p50, "o-", color=colour, label=kind)
    left.axhline(4.0, color="black", lw=0.8, ls="--")
    left.text(1.1e5, 4.1, "goal: 4 GB per pod", fontsize=8)
    right.axhline(10.0, color="black", lw=0.8, ls="--")
    right.text(1.1e5, 10.5, "goal: p50 10 ms", fontsize=8)
    for ax, label in (
        (left, "index memory per pod (2 workers), GiB"),
        (right, "dense retrieval p50, ms"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("units (100k real vectors; 1M and 5M drawn to match)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=6 if ax is left else 8)
    cpu = report["machine"]["cpu"]
    fig.suptitle(f"One pod, 2 cores ({cpu}), {report['date'][:10]}", fontsize=10)
    fig.tight_layout()
    Path(sys.argv[2]).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
