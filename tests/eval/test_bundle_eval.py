"""A built bundle scored on an evaluation set (`rag eval --bundle`), and the quality gate over two manifests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rag_testkit import samples

from rag.cli import main
from rag.config import RetrievalParams
from rag.errors import ConfigError
from rag.eval import load_eval_set
from rag.eval.gate import quality_gate
from rag.eval.retrieval import evaluate_bundle
from rag.index import Bundle, Evaluation, Manifest, read_manifest, verify_bundle
from rag.pipeline import Pipeline

QUERIES = {
    "eiffel": ("When was the Eiffel Tower completed?", "paris.md"),
    "boil": ("At what temperature does water boil?", "water.txt"),
    "roots": ("What do roots absorb from the soil?", "roots"),
}


def write_eval_set(folder: Path, queries: dict[str, tuple[str, str]] = QUERIES) -> Path:
    return samples.write_eval_set(folder, queries)


def test_eval_set_reads_queries_and_judgements_and_names_what_is_wrong(tmp_path: Path) -> None:
    folder = write_eval_set(tmp_path / "set")
    first = load_eval_set(folder)
    assert first.queries["boil"] == QUERIES["boil"][0] and first.qrels["roots"] == {"roots": 1}
    # the id is the content, not the file layout: reordered lines give the same set
    lines = (folder / "queries.jsonl").read_text().splitlines()
    (folder / "queries.jsonl").write_text("\n".join(reversed(lines)) + "\n\n")
    assert load_eval_set(folder).id == first.id
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nboil\twater.txt\t2\n")
    assert load_eval_set(folder).id != first.id
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nnope\twater.txt\t1\n")
    with pytest.raises(ConfigError, match="judged queries without text: nope"):
        load_eval_set(folder)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nboil\twater.txt\t0\n")
    with pytest.raises(ConfigError, match="no query has a relevant document"):
        load_eval_set(folder)
    with pytest.raises(ConfigError, match=r"qrels/dev\.tsv not found"):
        load_eval_set(folder, "dev")


def test_lexical_queries_score_their_documents_first(sample_bundle: Path, embedder, tmp_path: Path) -> None:
    # BM25 only: the expected ranking follows from the words alone
    pipeline = Pipeline(Bundle.load(sample_bundle), embedder, None, RetrievalParams(alpha=0.0, rerank=False))
    evaluation = evaluate_bundle(pipeline, load_eval_set(write_eval_set(tmp_path / "set")))
    assert evaluation.queries == 3
    assert evaluation.metrics == {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0}
    unknown = {"moon": ("Does the Moon have an atmosphere?", "moon.txt"), "boil": QUERIES["boil"]}
    missing = evaluate_bundle(pipeline, load_eval_set(write_eval_set(tmp_path / "other", unknown)))
    assert missing.metrics["ndcg@10"] == pytest.approx(0.5) and missing.metrics["recall@100"] == 0.5


def test_rag_eval_bundle_records_metrics_in_the_manifest_and_the_bundle_still_verifies(
    sample_bundle: Path, default_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("RAG_RERANKER_MODEL", "")
    monkeypatch.setenv("RAG_ALPHA", "0")
    bundle = tmp_path / "bundle"
    shutil.copytree(sample_bundle, bundle)
    files_before = read_manifest(bundle).files
    extra = {**QUERIES, "moon": ("Does the Moon have an atmosphere?", "moon.txt")}
    eval_set = write_eval_set(tmp_path / "set", extra)
    argv = ["eval", "--bundle", str(bundle), "--eval-set", str(eval_set), "--record"]
    assert main([*argv, "--json-out", str(tmp_path / "eval.json")]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["metrics"]["recall@100"] == 0.75 and report["queries"] == 4 and report["recorded"]
    assert "1 judged document(s) not in the bundle: moon.txt" in err
    assert json.loads((tmp_path / "eval.json").read_text()) == report
    manifest = read_manifest(bundle)
    assert manifest.evaluation is not None and manifest.evaluation.metrics == report["metrics"]
    assert manifest.evaluation.eval_set == load_eval_set(eval_set).id
    assert manifest.files == files_before and "manifest.json" not in manifest.files
    verify_bundle(bundle, manifest)
    Bundle.load(bundle)
    assert main(["eval", "--bundle", str(bundle)]) == 2
    assert "--bundle needs --eval-set" in capsys.readouterr().err
    assert main(["eval"]) == 2
    assert "give --bundle BUNDLE --eval-set DIR" in capsys.readouterr().err


def with_metrics(manifest: Manifest, eval_set: str = "a" * 64, **metrics: float) -> Manifest:
    evaluation = Evaluation(eval_set=eval_set, queries=9, metrics=metrics, measured_at="2026-11-21T00:00:00Z")
    return manifest.model_copy(update={"evaluation": evaluation})


def rebuilt(manifest: Manifest) -> Manifest:
    """Another build: one file with other bytes (another corpus, model or configuration)."""
    name = next(iter(manifest.files))
    changed = manifest.files[name].model_copy(update={"sha256": "0" * 64})
    return manifest.model_copy(update={"files": {**manifest.files, name: changed}})


def test_quality_gate_refuses_a_drop_beyond_the_margin_only(sample_bundle: Path) -> None:
    base = read_manifest(sample_bundle)
    current = with_metrics(rebuilt(base), **{"ndcg@10": 0.80})

    def gate(new: float, margin: float = 0.02) -> bool:
        verdict = quality_gate(
            with_metrics(base, **{"ndcg@10": new}),
            current,
            metric="ndcg@10",
            margin=margin,
            against="staging",
        )
        return verdict.passed

    assert gate(0.90) and gate(0.80) and gate(0.79) and gate(0.78)  # 0.78 = 0.80 − 0.02 is still allowed
    assert not gate(0.7799) and not gate(0.10)
    assert not gate(0.7999, margin=0.0) and gate(0.10, margin=0.75)
    refused = quality_gate(
        with_metrics(base, **{"ndcg@10": 0.5}), current, metric="ndcg@10", margin=0.02, against="staging"
    )
    assert refused.message == "refused: ndcg@10 0.5000 < 0.8000 − 0.02 = 0.7800 (staging)"
    assert (refused.new, refused.current) == (0.5, 0.8)


def test_quality_gate_without_anything_to_compare_passes_and_says_so(sample_bundle: Path) -> None:
    base = read_manifest(sample_bundle)
    new = with_metrics(base, **{"ndcg@10": 0.5})
    first = quality_gate(new, None, metric="ndcg@10", margin=0.02, against="channel staging")
    assert first.passed and "no version on channel staging yet" in first.message
    older = quality_gate(new, rebuilt(base), metric="ndcg@10", margin=0.02, against="staging")  # no metrics
    assert older.passed and not older.unchanged and "staging recorded no ndcg@10" in older.message
    moved = quality_gate(
        new,
        with_metrics(rebuilt(base), "b" * 64, **{"ndcg@10": 0.5}),
        metric="ndcg@10",
        margin=0,
        against="s",
    )
    assert moved.passed and "measured on another evaluation set: bbbbbbbbbbbb → aaaaaaaaaaaa" in moved.message


def test_a_rebuild_with_the_same_files_is_unchanged_whatever_its_score(sample_bundle: Path) -> None:
    base = read_manifest(sample_bundle)
    current = with_metrics(base, **{"ndcg@10": 0.9})  # scored with other query-time settings, say
    same = quality_gate(
        with_metrics(base, **{"ndcg@10": 0.5}), current, metric="ndcg@10", margin=0, against="s"
    )
    assert (
        same.passed and same.unchanged and same.message == "unchanged: the same files as s (ndcg@10 0.5000)"
    )


def test_quality_gate_cannot_vouch_for_what_was_not_measured(sample_bundle: Path) -> None:
    base = read_manifest(sample_bundle)
    with pytest.raises(ConfigError, match="no recorded evaluation"):
        quality_gate(base, None, metric="ndcg@10", margin=0.02, against="staging")
    with pytest.raises(ConfigError, match=r"no metric 'mrr@10' \(recorded: ndcg@10\)"):
        quality_gate(with_metrics(base, **{"ndcg@10": 1.0}), None, metric="mrr@10", margin=0.02, against="s")
    with pytest.raises(ConfigError, match="margin must be ≥ 0"):
        quality_gate(with_metrics(base, **{"ndcg@10": 1.0}), None, metric="ndcg@10", margin=-1, against="s")
