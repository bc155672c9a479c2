"""`make eval`: the SciFact and SQuAD suites that chose the shipped defaults (docs/EVALUATION.md).

    python benchmarks/eval_suites.py WORK_DIR --data ../shared/data [--suites scifact,squad]

WORK_DIR keeps the bundles (rebuilt only when their build settings or model change) and the JSON report;
the Markdown tables are printed. Settings come from RAG_* as for the service, with the model flags over them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from studies.suites import run_eval

from rag.cli.common import model_flags, settings_from
from rag.errors import RagError

SUITES = ("scifact", "squad")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eval_suites", description=__doc__)
    parser.add_argument("work_dir")
    parser.add_argument("--data", default="../shared/data", help="folder with scifact/ and squad-v1.1/")
    parser.add_argument("--suites", default=",".join(SUITES))
    parser.add_argument("--json-out", help="default: WORK_DIR/eval.json")
    model_flags(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    try:
        if unknown := set(suites) - set(SUITES):
            raise RagError(f"unknown suite(s): {', '.join(sorted(unknown))} (known: {', '.join(SUITES)})")
        if not Path(args.data).is_dir():
            raise RagError(f"evaluation data not found: {args.data}")
        work = Path(args.work_dir)
        run_eval(
            settings_from(args),
            Path(args.data),
            work,
            suites,
            Path(args.json_out or work / "eval.json"),
            print,
        )
    except RagError as exc:
        print(f"eval_suites: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
