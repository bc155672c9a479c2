"""Markdown tables of an evaluation report (stdout and docs/EVALUATION.md)."""

from __future__ import annotations

from typing import Any

__all__ = ["render_tables"]


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_tables(report: dict[str, Any]) -> str:
    out = [f"Embedding model: {report['model']}"]
    if "scifact" in report:
        sf = report["scifact"]
        n = sf["counts"]
        out.append(
            f"\n### SciFact test ({n['test']} queries): document nDCG@10 and Recall@100; "
            f"settings chosen on train ({n['train']})"
        )
        out.append(
            _table(
                ["setting", "role", "train nDCG@10", "test nDCG@10", "test R@100"],
                [
                    [
                        r["name"],
                        r["role"],
                        r["train"]["ndcg@10"],
                        r["test"]["ndcg@10"],
                        r["test"]["recall@100"],
                    ]
                    for r in sf["rows"]
                ],
            )
        )
        delta = sf["chosen"]["test"]["ndcg@10"] - sf["baseline"]["test"]["ndcg@10"]
        out.append(
            f"\nchosen: {sf['chosen']['name']} — test nDCG@10 {sf['chosen']['test']['ndcg@10']:.4f} "
            f"({delta:+.4f} vs the plain hybrid baseline)"
        )
        out.append(f"\n### SciFact evidence sentences ({n['evidence']} test claims with rationales)")
        keys = ["evidence_recall@1", "evidence_recall@3", "evidence_recall@10", "answer_evidence_recall"]
        out.append(
            _table(["setting", *keys], [[name, *[e[k] for k in keys]] for name, e in sf["evidence"].items()])
        )
    if "squad" in report:
        sq = report["squad"]
        out.append(
            f"\n### SQuAD v1.1 part A ({sq['questions']:,} questions): top-1 / top-3 evidence contains a gold answer"
        )
        out.append(
            _table(
                [
                    "setting",
                    "tune top1",
                    "tune top3",
                    "held-out top1",
                    "held-out top3",
                    "all top1",
                    "all top3",
                ],
                [
                    [
                        r["name"],
                        r["tune_top1"],
                        r["tune_top3"],
                        r["heldout_top1"],
                        r["heldout_top3"],
                        r["all_top1"],
                        r["all_top3"],
                    ]
                    for r in sq["rows"]
                ],
            )
        )
        ab = sq["abstention"]
        out.append(
            f"\n### Abstention ({ab['variant']}): same questions, full corpus vs corpus without their article"
        )
        out.append(
            _table(
                [
                    "threshold",
                    "abstain (full)",
                    "abstain (without article)",
                    "answered with a gold answer (full)",
                ],
                [
                    [
                        r["threshold"],
                        r["abstain_full"],
                        r["abstain_without_article"],
                        r["answered_correct_full"],
                    ]
                    for r in ab["sweep"]
                    if round(r["threshold"] * 40) % 2 == 0
                ],
            )
        )
        c = ab["chosen"]
        out.append(
            f"\nchosen threshold {c['threshold']}: abstains on {c['abstain_full']:.1%} of answerable questions "
            f"and {c['abstain_without_article']:.1%} of unanswerable ones ({ab['rule']})"
        )
    if report.get("builds"):
        out.append("\n### Builds in this run")
        out.append(
            _table(
                ["bundle", "documents", "sentences", "units", "seconds", "embedded", "cache hits", "bytes"],
                [
                    [
                        n,
                        b["documents"],
                        b["sentences"],
                        b["units"],
                        b["seconds"],
                        b["embedded"],
                        b["cache_hits"],
                        b["bytes"],
                    ]
                    for n, b in report["builds"].items()
                ],
            )
        )
    return "\n".join(out)
