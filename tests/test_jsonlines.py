"""Every JSON Lines file rag reads ends its lines at "\n" only (`rag.jsonlines`): a record may hold U+2028,
U+0085 and the other characters `str.splitlines()` breaks at, as `json.dumps(..., ensure_ascii=False)` writes
them. The corpus loader's case is in tests/corpus/test_loaders.py; the generation client's SSE lines in
tests/generation/test_chat_client.py."""

from __future__ import annotations

import json
from pathlib import Path

from rag.cli.ask import _answered_ids, _batch_questions
from rag.eval.datasets import load_eval_set
from rag.jsonlines import numbered_lines

QUESTION = "Which metrics does the service export?\u2028(Prometheus)"


def test_numbered_lines_split_at_newline_only() -> None:
    text = 'a\u2028b\r\n\n  \nc\x85d\x0ce\n{"x": 1}'
    assert list(numbered_lines(text)) == [(1, "a\u2028b"), (4, "c\x85d\x0ce"), (5, '{"x": 1}')]
    assert list(numbered_lines(["a\u2028b\r\n", "\n", "c\n"])) == [(1, "a\u2028b"), (3, "c")]


def test_a_resumed_batch_reads_answers_holding_a_line_separator(tmp_path: Path) -> None:
    """`rag ask --batch` writes its answers with ensure_ascii=False; evidence quoting a sentence that holds
    U+2028 made the next run (the resume) stop on "Unterminated string"."""
    out = tmp_path / "answers.jsonl"
    answers = [{"id": "q1", "answer": "One.\u2028Two."}, {"id": "q2", "answer": "Three.\x85"}]
    out.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers), encoding="utf-8")
    assert _answered_ids(out) == {"q1", "q2"}
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"id": "q3", "question": QUESTION}, ensure_ascii=False) + "\n")
    assert list(_batch_questions(questions)) == [("q3", QUESTION, None)]


def test_an_eval_set_question_may_hold_a_line_separator(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    (tmp_path / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": QUESTION}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    assert load_eval_set(tmp_path).queries == {"q1": QUESTION}
