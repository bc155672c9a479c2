"""`rag eval --bundle BUNDLE --eval-set DIR`: one built bundle scored on an evaluation set, through the
Pipeline the API serves (what CI's quality gate records). The studies that chose the defaults are not part of
the product: `make eval` (benchmarks/eval_suites.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import RagError
from .common import Subcommands, model_flags, settings_from

__all__ = ["add_parser"]


def cmd_eval(args: argparse.Namespace) -> int:
    """One built bundle on an evaluation set, through the Pipeline the API serves (settings from RAG_*)."""
    from ..eval import load_eval_set
    from ..eval.retrieval import evaluate_bundle
    from ..index import record_evaluation
    from ..pipeline import Pipeline

    if not args.bundle:
        raise RagError("give --bundle BUNDLE --eval-set DIR (the SciFact/SQuAD studies are `make eval`)")
    if not args.eval_set:
        raise RagError("--bundle needs --eval-set DIR (queries.jsonl and qrels/<split>.tsv)")
    eval_set = load_eval_set(args.eval_set, args.split)
    pipeline = Pipeline.from_settings(settings_from(args), args.bundle)
    known = set(pipeline.bundle.documents.ids)
    absent = sorted({d for judged in eval_set.qrels.values() for d in judged} - known)
    if absent:  # a degraded corpus shows up here first; the score says how much it matters
        print(
            f"warning: {len(absent)} judged document(s) not in the bundle: {', '.join(absent[:5])}",
            file=sys.stderr,
        )
    evaluation = evaluate_bundle(pipeline, eval_set)
    if args.record:
        record_evaluation(args.bundle, evaluation)
    report = {"bundle": str(args.bundle), "recorded": args.record, **evaluation.model_dump()}
    text = json.dumps(report, indent=2)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def add_parser(sub: Subcommands) -> None:
    ev = sub.add_parser("eval", help="score one built bundle on an evaluation set (--bundle, --eval-set)")
    ev.add_argument("--bundle", help="the built bundle to evaluate")
    ev.add_argument("--eval-set", help="folder with queries.jsonl and qrels/<split>.tsv")
    ev.add_argument("--split", default="test", help="the qrels file to read (default test)")
    ev.add_argument("--record", action="store_true", help="write the metrics into the bundle's manifest.json")
    ev.add_argument("--json-out", help="also write the report here")
    model_flags(ev)
    ev.set_defaults(func=cmd_eval)
