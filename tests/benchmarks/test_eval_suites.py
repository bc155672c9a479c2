"""`make eval`'s suites (benchmarks/eval_suites.py) end to end on a miniature SciFact + SQuAD data folder
(the real run is documented in docs/EVALUATION.md)."""

import json
from pathlib import Path

import pytest
from eval_suites import main

DOCS = [
    ("d1", "Water", ["Water boils at 100 degrees Celsius.", "It freezes at 0 degrees."]),
    ("d2", "Cats", ["Cats sleep most of the day.", "They purr when happy."]),
    ("d3", "Paris", ["Paris is the capital of France.", "The Eiffel Tower is there."]),
    ("d4", "Plants", ["Plants use photosynthesis.", "Roots absorb water."]),
]


def make_data(root: Path) -> Path:
    sf = root / "scifact"
    (sf / "qrels").mkdir(parents=True)
    (sf / "derived").mkdir()
    with (
        (sf / "corpus.jsonl").open("w") as corpus,
        (sf / "derived" / "corpus_sentences.jsonl").open("w") as sents,
    ):
        for doc_id, title, sentences in DOCS:
            corpus.write(
                json.dumps({"_id": doc_id, "title": title, "text": " ".join(sentences), "metadata": {}})
                + "\n"
            )
            sents.write(json.dumps({"_id": doc_id, "title": title, "sentences": sentences}) + "\n")
    queries = [
        ("1", "At what temperature does water boil?", "d1", [0]),
        ("2", "What is the capital of France?", "d3", [0]),
        ("3", "Do cats sleep a lot?", "d2", [0]),
        ("4", "How do roots work?", "d4", [1]),
    ]
    with (sf / "queries.jsonl").open("w") as handle:
        for qid, text, doc, idx in queries:
            meta = {doc: [{"sentences": idx, "label": "SUPPORT"}]}
            handle.write(json.dumps({"_id": qid, "text": text, "metadata": meta}) + "\n")
    for split, picked in (("test", queries[:2]), ("train", queries[2:])):
        rows = "".join(f"{qid}\t{doc}\t1\r\n" for qid, _, doc, _ in picked)
        (sf / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\r\n" + rows)
    squad = {
        "version": "1.1",
        "data": [
            {
                "title": f"Article_{i}",
                "paragraphs": [
                    {
                        "context": " ".join(s),
                        "qas": [
                            {
                                "id": f"q{i}",
                                "question": f"Tell me about {t.lower()}?",
                                "answers": [{"text": s[0].split()[0]}],
                            }
                        ],
                    }
                ],
            }
            for i, (_, t, s) in enumerate(DOCS)
        ],
    }
    (root / "squad-v1.1").mkdir()
    (root / "squad-v1.1" / "dev-v1.1.part-a.json").write_text(json.dumps(squad))
    return root


def test_eval_runs_every_suite_and_writes_the_report(
    tmp_path: Path, default_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_data(tmp_path / "data")
    code = main([str(tmp_path / "work"), "--data", str(data)])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads((tmp_path / "work" / "eval.json").read_text())
    roles = {row["role"] for row in report["scifact"]["rows"]}
    assert {
        "reference",
        "baseline",
        "sweep-bm25",
        "sweep-fusion",
        "sweep-sentence",
        "sweep-unit",
        "chosen",
        "rerank",
    } <= roles
    for row in report["scifact"]["rows"]:
        assert 0.0 <= row["test"]["ndcg@10"] <= 1.0
    assert len(report["scifact"]["evidence"]) == 3
    assert report["squad"]["abstention"]["chosen"]["threshold"] >= 0.0
    assert set(report["builds"]) == {
        "scifact-document",
        "scifact-sentence",
        "scifact-sentence-title",
        "squad-sentence",
        "squad-sentence-title",
        "squad-paragraph",
    }
    assert "SciFact test" in out and "Abstention" in out and "chosen threshold" in out
    # A second run reuses the bundles: nothing is rebuilt.
    assert main([str(tmp_path / "work"), "--data", str(data), "--suites", "squad"]) == 0
    assert json.loads((tmp_path / "work" / "eval.json").read_text())["builds"] == {}


def test_eval_refuses_unknown_suites_and_missing_data(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "w"), "--data", str(tmp_path), "--suites", "nfcorpus"]) == 2
    assert "unknown suite" in capsys.readouterr().err
    assert main([str(tmp_path / "w"), "--data", str(tmp_path / "nope")]) == 2
