"""Metrics recorded in a bundle's manifest after the build: checksums stay valid, the format stays readable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.errors import BundleCorrupt
from rag.index import Evaluation, parse_manifest, read_manifest, record_evaluation, verify_bundle

EVALUATION = Evaluation(
    eval_set="e" * 64, queries=3, metrics={"ndcg@10": 0.75}, measured_at="2026-11-21T00:00:00Z"
)


def test_a_bundle_never_evaluated_has_no_evaluation_key(sample_bundle: Path) -> None:
    # what readers from before the field existed expect: they forbid unknown keys
    assert "evaluation" not in json.loads((sample_bundle / "manifest.json").read_text())
    assert read_manifest(sample_bundle).evaluation is None


def test_recording_rewrites_only_the_manifest_atomically(sample_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(sample_bundle, bundle)
    files = {p.name: p.read_bytes() for p in bundle.rglob("*") if p.is_file() and p.name != "manifest.json"}
    updated = record_evaluation(bundle, EVALUATION)
    assert read_manifest(bundle) == updated and updated.evaluation == EVALUATION
    assert updated.model_copy(update={"evaluation": None}) == read_manifest(sample_bundle)
    assert {
        p.name: p.read_bytes() for p in bundle.rglob("*") if p.is_file() and p.name != "manifest.json"
    } == files
    assert sorted(p.name for p in bundle.iterdir() if p.name.startswith(".")) == []  # no temp file left
    verify_bundle(bundle, updated)
    again = record_evaluation(bundle, EVALUATION.model_copy(update={"metrics": {"ndcg@10": 0.5}}))
    assert again.evaluation is not None and again.evaluation.metrics == {"ndcg@10": 0.5}


def test_a_damaged_bundle_gets_no_score(sample_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(sample_bundle, bundle)
    (bundle / "dense.faiss").write_bytes(b"x")
    with pytest.raises(BundleCorrupt, match=r"dense\.faiss"):
        record_evaluation(bundle, EVALUATION)
    assert read_manifest(bundle).evaluation is None


def test_unknown_keys_inside_the_evaluation_are_refused(sample_bundle: Path) -> None:
    raw = json.loads((sample_bundle / "manifest.json").read_text())
    raw["evaluation"] = {**EVALUATION.model_dump(), "extra": 1}
    with pytest.raises(BundleCorrupt, match="evaluation"):
        parse_manifest(json.dumps(raw).encode(), "m")
