"""Evaluation datasets: BEIR (SciFact, with its evidence sentences), SQuAD v1.1, and evaluation sets for a
built bundle (BEIR's queries + qrels without a corpus). Read-only inputs."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..corpus import Document, load_corpus
from ..errors import ConfigError
from ..jsonlines import numbered_lines

__all__ = ["BeirData", "EvalSet", "SquadData", "SquadQuestion", "load_beir", "load_eval_set", "load_squad"]


@dataclass
class BeirData:
    documents: list[Document]
    queries: dict[str, str]  # test queries only
    qrels: dict[str, dict[str, int]]
    # query id → doc id → gold evidence character spans in that document's text (SciFact only)
    evidence: dict[str, dict[str, list[tuple[int, int]]]] = field(default_factory=dict)


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    folder = Path(folder)
    documents, _ = load_corpus(folder / "corpus.jsonl")
    qrels = _read_qrels(folder / "qrels" / f"{split}.tsv")
    queries: dict[str, str] = {}
    metadata: dict[str, dict[str, list[dict[str, list[int]]]]] = {}
    for _, line in numbered_lines((folder / "queries.jsonl").read_text(encoding="utf-8")):
        record = json.loads(line)
        if record["_id"] in qrels:
            queries[record["_id"]] = record["text"]
            metadata[record["_id"]] = record.get("metadata") or {}
    evidence = _scifact_evidence(folder, documents, metadata)
    return BeirData(documents=documents, queries=queries, qrels=qrels, evidence=evidence)


@dataclass(frozen=True)
class EvalSet:
    """Questions with judged documents for one corpus (BEIR layout: queries.jsonl, qrels/<split>.tsv)."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    id: str  # sha256 of the queries and judgements: two measurements compare only on the same set


def load_eval_set(folder: str | Path, split: str = "test") -> EvalSet:
    """An evaluation set for a built bundle: the corpus is the bundle's, so only queries and qrels are read.
    Every judged query needs its text; an empty set is refused (its score would say nothing)."""
    folder = Path(folder)
    queries_file, qrels_file = folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"
    for needed in (queries_file, qrels_file):
        if not needed.is_file():
            raise ConfigError(
                f"evaluation set {folder}: {needed.relative_to(folder)} not found (BEIR layout)"
            )
    try:
        qrels = _read_qrels(qrels_file)
        texts = {
            str(record["_id"]): str(record["text"])
            for _, line in numbered_lines(queries_file.read_text(encoding="utf-8"))
            for record in (json.loads(line),)
        }
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"evaluation set {folder}: cannot read it ({type(exc).__name__}: {exc})") from None
    qrels = {qid: judged for qid, judged in qrels.items() if any(g > 0 for g in judged.values())}
    if not qrels:
        raise ConfigError(f"evaluation set {folder}: no query has a relevant document in {qrels_file.name}")
    missing = sorted(set(qrels) - set(texts))
    if missing:
        raise ConfigError(f"evaluation set {folder}: judged queries without text: {', '.join(missing[:5])}")
    queries = {qid: texts[qid] for qid in sorted(qrels)}
    canonical = json.dumps({"queries": queries, "qrels": qrels}, sort_keys=True, ensure_ascii=False)
    return EvalSet(queries=queries, qrels=qrels, id=hashlib.sha256(canonical.encode()).hexdigest())


def _scifact_evidence(
    folder: Path, documents: list[Document], metadata: dict[str, dict[str, list[dict[str, list[int]]]]]
) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """Gold evidence sentence indices (SciFact's own segmentation) → character spans in our stored text."""
    sentences_file = folder / "derived" / "corpus_sentences.jsonl"
    if not sentences_file.exists():
        return {}
    texts = {d.id: d.text for d in documents}
    spans: dict[str, list[tuple[int, int]]] = {}
    for _, line in numbered_lines(sentences_file.read_text(encoding="utf-8")):
        record = json.loads(line)
        text, cursor, doc_spans = texts.get(record["_id"], ""), 0, []
        for sentence in record["sentences"]:
            start = text.find(sentence, cursor)
            doc_spans.append((start, start + len(sentence)) if start >= 0 else (-1, -1))
            cursor = max(cursor, start + len(sentence))
        spans[record["_id"]] = doc_spans
    evidence: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for qid, per_doc in metadata.items():
        for doc_id, sets in per_doc.items():
            gold = sorted(
                {spans[doc_id][i] for s in sets for i in s["sentences"] if spans[doc_id][i][0] >= 0}
            )
            if gold:
                evidence.setdefault(qid, {})[doc_id] = gold
    return evidence


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    answers: tuple[str, ...]
    article: str
    paragraph_id: str


@dataclass
class SquadData:
    documents: list[Document]  # one per paragraph; metadata["article"] is the article title
    questions: list[SquadQuestion]


def load_squad(path: str | Path) -> SquadData:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    documents: list[Document] = []
    questions: list[SquadQuestion] = []
    for article in raw["data"]:
        title = article["title"].replace("_", " ")
        for p, paragraph in enumerate(article["paragraphs"]):
            doc_id = f"{article['title']}#{p}"
            documents.append(
                Document(id=doc_id, title=title, text=paragraph["context"], metadata={"article": title})
            )
            for qa in paragraph["qas"]:
                questions.append(
                    SquadQuestion(
                        id=qa["id"],
                        question=qa["question"],
                        answers=tuple(a["text"] for a in qa["answers"]),
                        article=title,
                        paragraph_id=doc_id,
                    )
                )
    return SquadData(documents=documents, questions=questions)
