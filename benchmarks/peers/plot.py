"""The two PNGs beside docs/BENCHMARKS.md, drawn from bench_peers.py's results file.

    python -m peers.plot build/bench-peers/peers.json docs/bench

Runs in the peers' venv: matplotlib is a benchmark tool, not a dependency of the product.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here; must precede pyplot
import matplotlib.pyplot as plt

# The two rows of this project sit close together: their labels go on either side.
OFFSETS = {"rag-http": (6, -14)}
COLOURS = {
    "rag": "#1b7837",
    "rag-http": "#5aae61",
    "haystack": "#2166ac",
    "txtai": "#b2182b",
    "naive": "#777777",
}


def title(report: dict[str, Any], what: str) -> str:
    quick = " — --quick smoke test, not a result" if report["quick"] else ""
    return f"{what}\nSciFact, {report['counts']['documents']:,} docs, {report['date']}{quick}"


def latency_quality(report: dict[str, Any], rows: list[dict[str, Any]], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for r in rows:
        colour = COLOURS.get(r["system"], "black")
        ax.plot([r["hybrid_p50"], r["rerank_p50"]], [r["ndcg10"]] * 2, color=colour, lw=0.8, alpha=0.5)
        ax.scatter(r["hybrid_p50"], r["ndcg10"], color=colour, marker="o", s=60, zorder=3)
        ax.scatter(
            r["rerank_p50"], r["ndcg10"], facecolors="none", edgecolors=colour, marker="s", s=60, zorder=3
        )
        ax.annotate(
            r["label"],
            (r["hybrid_p50"], r["ndcg10"]),
            textcoords="offset points",
            xytext=OFFSETS.get(r["system"], (6, 6)),
            fontsize=8,
        )
    ax.scatter([], [], color="grey", marker="o", label="hybrid retrieval")
    ax.scatter(
        [], [], facecolors="none", edgecolors="grey", marker="s", label="+ cross-encoder on the top 20"
    )
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per answer at concurrency 1 (ms, log scale)")
    ax.set_ylabel("nDCG@10, hybrid retrieval (no reranker)")
    ax.set_title(
        title(report, "Latency vs quality (the reranker has random weights: its quality is not shown)"),
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out / "peers-latency-quality.png")
    plt.close(fig)


def throughput(report: dict[str, Any], rows: list[dict[str, Any]], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), dpi=120)
    for ax, config, what in (
        (axes[0], "hybrid", "hybrid retrieval"),
        (axes[1], "rerank", "+ cross-encoder on the top 20"),
    ):
        values = [r[f"{config}_rps"] for r in rows]
        bars = ax.bar(range(len(rows)), values, color=[COLOURS.get(r["system"], "black") for r in rows])
        ax.bar_label(bars, labels=[f"{v:.1f}" if v >= 10 else f"{v:.2f}" for v in values], fontsize=8)
        ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=25, ha="right", fontsize=8)
        ax.set_ylabel("answers per second at concurrency 4")
        ax.set_title(what, fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title(report, "Throughput on 2 cores"), fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "peers-throughput.png")
    plt.close(fig)


def main() -> None:
    report = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for r in report["rows"] if "error" not in r]
    if not rows:
        print("no system finished: no plots")
        return
    latency_quality(report, rows, out)
    throughput(report, rows, out)
    print(f"plots: {out / 'peers-latency-quality.png'}, {out / 'peers-throughput.png'}")


if __name__ == "__main__":
    main()
