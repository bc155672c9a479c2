"""`rag ask BUNDLE QUESTION` (or `--batch FILE`): answers from a bundle on the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import RagError
from ..jsonlines import numbered_lines
from .common import Subcommands, model_flags, settings_from

__all__ = ["add_parser"]


def _print_answer(answer: Any) -> None:
    if answer.abstained:
        print(f"(no answer) {answer.reason}")
    else:
        print(answer.answer)
    for i, e in enumerate(answer.evidence, start=1):
        print(f"  [{i}] {e.doc_id} {e.char_start}:{e.char_end} score={e.score:.3f}  {e.title}")
    total = answer.timings_ms.get("total", 0.0)
    print(f"  confidence {answer.confidence:.3f} · {total:.1f} ms")


def _batch_questions(path: Path) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    for number, line in numbered_lines(path.read_text(encoding="utf-8")):
        if line.lstrip().startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RagError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if "question" in record:
                yield str(record.get("id", number)), record["question"], record.get("filters")
            elif "_id" in record and "text" in record:
                yield str(record["_id"]), record["text"], None  # BEIR's queries.jsonl
            else:
                raise RagError(f"{path}:{number}: no 'question' (nor BEIR's '_id' and 'text')")
        else:
            yield str(number), line.strip(), None


def _answered_ids(out: Path) -> set[str]:
    """Ids already answered; a torn last line (crash mid-write) is cut off so appending stays valid JSONL."""
    if not out.exists():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with out.open("r+b") as handle:
            handle.truncate(keep)
        data = data[:keep]
    return {json.loads(line)["id"] for _, line in numbered_lines(data.decode("utf-8"))}


def cmd_ask(args: argparse.Namespace) -> int:
    from ..pipeline import Pipeline

    settings = settings_from(args)
    pipeline = Pipeline.from_settings(settings, args.bundle)
    if args.batch:
        out = Path(args.out or "answers.jsonl")
        done = _answered_ids(out)
        answered = skipped = 0
        with out.open("a", encoding="utf-8") as handle:
            for qid, question, filters in _batch_questions(Path(args.batch)):
                if qid in done:
                    skipped += 1
                    continue
                try:
                    record = {"id": qid, **pipeline.answer(question, filters=filters).model_dump()}
                except RagError as exc:
                    record = {
                        "id": qid,
                        "question": question,
                        "error": str(exc),
                        "error_type": exc.error_type,
                    }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                done.add(qid)
                answered += 1
        print(f"answered {answered}, already done {skipped} → {out}", file=sys.stderr)
        return 0
    if not args.question:
        raise RagError("give a question, or --batch FILE")
    filters = json.loads(args.filters) if args.filters else None
    answer = pipeline.answer(args.question, filters=filters)
    if args.json:
        print(answer.model_dump_json(indent=2))
    else:
        _print_answer(answer)
    return 0


def add_parser(sub: Subcommands) -> None:
    ask = sub.add_parser("ask", help="answer a question (or a batch) from a bundle")
    ask.add_argument("bundle")
    ask.add_argument("question", nargs="?")
    ask.add_argument("--json", action="store_true")
    ask.add_argument("--filters", help='JSON, e.g. {"source": "a.md"} or {"tags": {"not": "draft"}}')
    ask.add_argument("--batch", help="JSONL of {id, question, filters?} or one question per line")
    ask.add_argument("--out", help="answers JSONL for --batch (resumable: answered ids are skipped)")
    model_flags(ask)
    ask.set_defaults(func=cmd_ask)
