import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rag_testkit.samples import write_corpus

from rag.cli import main


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, default_env: None) -> None:
    monkeypatch.setenv("RAG_THREADS", "1")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_build_then_ask_pretty_and_json(env, tmp_path: Path, corpus_dir: Path, capsys) -> None:
    code, out, _ = run(capsys, "build", str(corpus_dir), "--out", str(tmp_path / "b"), "--quiet")
    assert code == 0 and "built" in out and "5 documents" in out
    code, out, _ = run(capsys, "ask", str(tmp_path / "b"), "When was the Eiffel Tower completed?")
    assert code == 0 and "[1] paris.md" in out and "The Eiffel Tower was completed in 1889." in out
    code, out, _ = run(
        capsys, "ask", str(tmp_path / "b"), "Eiffel Tower", "--json", "--filters", '{"doc_id": "paris.md"}'
    )
    answer = json.loads(out)
    assert code == 0 and {e["doc_id"] for e in answer["evidence"]} == {"paris.md"}
    code, _, err = run(capsys, "build", str(corpus_dir), "--out", str(tmp_path / "b"), "--quiet")
    assert code == 2 and "already exists" in err


def test_batch_is_resumable_after_a_torn_write(env, tmp_path: Path, sample_bundle: Path, capsys) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps({"id": f"q{i}", "question": q})
            for i, q in enumerate(
                ["Where is Paris?", "What do cats do?", "How do roots work?", "Water boiling point?"]
            )
        )
        + "\n"
    )
    out = tmp_path / "answers.jsonl"
    first = json.dumps({"id": "q0", "question": "Where is Paris?", "answer": "kept"})
    out.write_text(first + "\n" + '{"id": "q1", "quest')  # a crash in the middle of writing q1
    code, _, err = run(capsys, "ask", str(sample_bundle), "--batch", str(questions), "--out", str(out))
    assert code == 0 and "answered 3, already done 1" in err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["q0", "q1", "q2", "q3"]
    assert records[0]["answer"] == "kept" and all("evidence" in r for r in records[1:])
    code, _, err = run(capsys, "ask", str(sample_bundle), "--batch", str(questions), "--out", str(out))
    assert "answered 0, already done 4" in err


def test_errors_exit_2_with_one_line(
    env, tmp_path: Path, sample_bundle: Path, capsys, tiny_models, monkeypatch
) -> None:
    cases = []
    cases.append((["ask", str(tmp_path / "missing"), "q"], "bundle not found"))
    corrupt = shutil.copytree(sample_bundle, tmp_path / "corrupt")
    (corrupt / "store.sqlite").write_bytes(b"garbage")
    cases.append((["ask", str(corrupt), "q"], "store.sqlite does not match its checksum"))
    empty = write_corpus(tmp_path / "empty", {"a.txt": ""})
    cases.append(
        (
            ["build", str(empty), "--out", str(tmp_path / "x")],
            "has no documents with text (skipped a.txt: empty file)",
        )
    )
    cases.append((["ask", str(sample_bundle), "  "], "the question is empty"))
    for argv, message in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("rag: error: ") and message in err and err.count("\n") == 1, err
    monkeypatch.setenv("RAG_EMBEDDING_MODEL", str(tiny_models["e5_other"]))
    monkeypatch.setenv("RAG_BACKEND", "torch")
    monkeypatch.setenv("RAG_RERANKER_MODEL", "")
    code, _, err = run(capsys, "ask", str(sample_bundle), "q")
    assert code == 2 and "was built with embedding model 'BAAI/bge-small-en'" in err


def test_console_script_is_installed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "build" in result.stdout and "eval" in result.stdout


@pytest.mark.parametrize("kind", ["ivf-pq", "hnsw-sq8"])
def test_a_compressed_index_answers_as_the_flat_one(
    env, kind: str, tmp_path: Path, corpus_dir: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RAG_DENSE_INDEX (the setting under test) picks a compressed index; on a corpus this small its 8-bit
    codes order the candidates as the exact vectors do, so the answers are the flat index' own."""
    code, _, _ = run(capsys, "build", str(corpus_dir), "--out", str(tmp_path / "flat"), "--quiet")
    assert code == 0
    monkeypatch.setenv("RAG_DENSE_INDEX", kind)
    code, out, _ = run(capsys, "build", str(corpus_dir), "--out", str(tmp_path / kind), "--quiet")
    assert code == 0
    manifest = json.loads((tmp_path / kind / "manifest.json").read_text())
    assert manifest["build"]["dense_index"] == kind
    assert ("unit_codes.npy" in manifest["files"]) == (kind == "ivf-pq")
    for question in ("When was the Eiffel Tower completed?", "What do roots absorb?", "Why do cats purr?"):
        answers = []
        for bundle in ("flat", kind):
            code, out, _ = run(capsys, "ask", str(tmp_path / bundle), question, "--json")
            assert code == 0
            answers.append([(e["doc_id"], e["sentence_id"]) for e in json.loads(out)["evidence"]])
        assert answers[0] == answers[1]


def test_a_beir_dataset_folder_builds_from_its_corpus_and_evaluates_as_its_eval_set(
    env, tmp_path: Path, capsys
) -> None:
    """What a user with a BEIR download runs: `rag build` and `rag eval --eval-set` on the same folder. Its
    queries indexed as documents would be each question's own best match."""
    docs = {
        "d1": ("Roots", "Roots absorb water and minerals from the soil."),
        "d2": ("Paris", "The Eiffel Tower was completed in 1889."),
        "d3": ("Cats", "Cats sleep for most of the day."),
    }
    queries = {
        "q1": "Roots absorb minerals.",
        "q2": "The Eiffel Tower was completed in 1889.",
    }  # claims, as SciFact
    beir = write_corpus(
        tmp_path / "beir",
        {
            "corpus.jsonl": "".join(
                json.dumps({"_id": i, "title": t, "text": x, "metadata": {}}) + "\n"
                for i, (t, x) in docs.items()
            ),
            "queries.jsonl": "".join(json.dumps({"_id": i, "text": q}) + "\n" for i, q in queries.items()),
        },
    )
    (beir / "qrels").mkdir()
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    code, out, err = run(capsys, "build", str(beir), "--out", str(tmp_path / "b"), "--quiet")
    assert code == 0 and "3 documents" in out
    assert "skipped queries.jsonl: a BEIR dataset folder's documents are its corpus.jsonl" in err
    evaluated = subprocess.run(  # a process of its own: faiss announces its CPU search on first import
        [sys.executable, "-m", "rag.cli", "eval", "--bundle", str(tmp_path / "b"), "--eval-set", str(beir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout)["metrics"]["ndcg@10"] == pytest.approx(
        1.0
    )
    assert evaluated.stderr == ""  # was faiss.loader's "Could not load library with AVX512 support …"
    answers = tmp_path / "answers.jsonl"
    code, _, err = run(
        capsys, "ask", str(tmp_path / "b"), "--batch", str(beir / "queries.jsonl"), "--out", str(answers)
    )
    assert code == 0 and "answered 2" in err
    records = {r["id"]: r for r in map(json.loads, answers.read_text().splitlines())}
    assert {i: r["evidence"][0]["doc_id"] for i, r in records.items()} == {"q1": "d1", "q2": "d2"}
