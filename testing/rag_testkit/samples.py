"""Sample inputs shared by tests (a module, not conftest, so test files can import it by a unique name)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("RAG_SHARED_DATA", ROOT.parent / "shared" / "data"))

SAMPLE_DOCS = {
    "paris.md": "# Paris\n\nParis is the capital of France. The Eiffel Tower was completed in 1889.\n\n"
    "It is 330 metres tall. Millions of tourists visit it every year.\n",
    "water.txt": "Water boils at 100 degrees Celsius at sea level. At higher altitudes it boils at a lower "
    "temperature, e.g. about 90 degrees on high mountains. Ice melts at 0 degrees.",
    "cats.html": "<html><head><title>Cats</title><style>p {color: red}</style></head><body><h1>Cats</h1>"
    "<p>Cats sleep most of the day.</p><p>Dogs bark at the postman every morning. Cats do not.</p>"
    "<script>var x = 1;</script></body></html>",
    "plants.jsonl": '{"id": "photo", "title": "Photosynthesis", "text": "Photosynthesis converts light energy '
    'into chemical energy. It happens in the chloroplasts of plants.", "metadata": {"tags": ["biology"]}}\n'
    '{"id": "roots", "title": "Roots", "text": "Roots absorb water and minerals from the soil.", '
    '"metadata": {"tags": ["biology", "botany"]}}\n',
}


def write_corpus(folder: Path, files: dict[str, str | bytes] = SAMPLE_DOCS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def answering_pipeline(bundle: Path, embedder: Any, reranker: Any, settings: Any) -> Any:
    """The sample bundle's pipeline with abstention off, so every question gets evidence (API tests)."""
    from rag.index import Bundle
    from rag.pipeline import Pipeline

    params = settings.retrieval_params().model_copy(
        update={"abstain_threshold": -1.0, "abstain_rerank_threshold": 0.0}
    )
    return Pipeline(Bundle.load(bundle), embedder, reranker, params)


def big_corpus(folder: Path, documents: int = 3000) -> Path:
    """A JSONL corpus large enough that an ingestion job is still running seconds after it starts."""
    folder.mkdir(parents=True)
    words = [
        "cell",
        "protein",
        "gene",
        "tumour",
        "patients",
        "trial",
        "dose",
        "vaccine",
        "immune",
        "receptor",
        "mouse",
        "pathway",
        "cohort",
    ]
    with (folder / "docs.jsonl").open("w") as handle:
        for i in range(documents):
            text = " ".join(f"{words[(i + j) % len(words)]} {j}." for j in range(40))
            handle.write(json.dumps({"id": f"d{i}", "title": f"doc {i}", "text": text}) + "\n")
    return folder


_WORDS = [
    "cell",
    "protein",
    "gene",
    "river",
    "mountain",
    "engine",
    "market",
    "theory",
    "signal",
    "planet",
    "enzyme",
    "bridge",
    "climate",
    "vaccine",
    "neuron",
    "orbit",
    "copper",
    "forest",
    "harbor",
    "circuit",
    "membrane",
    "glacier",
    "lattice",
    "tissue",
]


def sentences_corpus(folder: Path, docs: int = 70, sentences: int = 18) -> Path:
    """~1,260 sentences (by default): three embedding chunks of 512, so a Ray build can spread over nodes."""
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(docs):
        lines = []
        for s in range(sentences):
            words = [_WORDS[(d * 7 + s * 3 + k * 5) % len(_WORDS)] for k in range(6 + (d + s) % 9)]
            lines.append(f"Study {d}.{s} relates the {' '.join(words)} to result {d * sentences + s}.")
        (folder / f"doc{d:03d}.txt").write_text(" ".join(lines))
    return folder


def write_eval_set(folder: Path, queries: dict[str, tuple[str, str]]) -> Path:
    """A BEIR-layout evaluation set (queries.jsonl + qrels/test.tsv) of {query id: (text, relevant doc id)}."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": qid, "text": text}) + "\n" for qid, (text, _) in queries.items())
    )
    rows = "".join(f"{qid}\t{doc}\t1\n" for qid, (_, doc) in queries.items())
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


def upload_folder(s3_endpoint: str, bucket: str, folder: Path, prefix: str) -> str:
    """Every file under `folder` to s3://bucket/prefix/… (a corpus or an eval set kept in S3); that URI."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    for path in folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return f"s3://{bucket}/{prefix}"
