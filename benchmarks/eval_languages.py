"""`make eval-languages`: the product on documents in other languages and scripts. Debian's FAQ in English,
German, Russian, Japanese, Chinese and Korean (Debian's packages, installed on the way; `rag_testkit.faq`):
each language's pages are built into a bundle the way `rag build` builds a folder, and each question the FAQ
asks (a section title) is put to the Pipeline that serves `/answer`. A unit answers when its text lies in the
question's section.

Per language: the sentences found (against the English original's count: the same text, translated), and the
share of questions whose section is at rank 1 and in the top 10, with MRR@10, for BM25 alone, dense alone,
both fused, and the shipped default (fused, then reranked); then what `/answer` does at the shipped threshold:
the share answered, and the share whose first evidence sentence is in the section.

The shipped models (bge-small-en, ms-marco-MiniLM-L-12-v2, `make models`) read English. Their rows on other
languages say what a user gets without importing a model for that language; BM25's rows, no model at all.

    python benchmarks/eval_languages.py [--out build/eval-languages.json] [--languages ja,zh-cn]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
from rag_testkit.faq import (  # noqa: E402
    FAQ_LANGUAGES,
    FaqQuestion,
    answering_units,
    faq_corpus,
    faq_questions,
)
from real_models import echo, real_models  # noqa: E402

from rag.config import Settings  # noqa: E402
from rag.corpus import iter_unit_texts  # noqa: E402
from rag.index import Builder  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402

MODES: dict[str, dict[str, Any]] = {
    "BM25": {"alpha": 0.0, "rerank": False},
    "dense": {"alpha": 1.0, "rerank": False},
    "fused": {"rerank": False},
    "fused + rerank (shipped)": {},
}


def ranks(pipeline: Pipeline, questions: list[FaqQuestion], mode: dict[str, Any]) -> dict[str, float]:
    texts = list(iter_unit_texts(pipeline.bundle.documents, pipeline.bundle.seg, with_title=False))
    params = pipeline.resolve(mode)
    top1 = top10 = reciprocal = 0.0
    asked = 0
    for q in questions:
        relevant = answering_units(texts, q)
        if not relevant:
            continue
        asked += 1
        ranked = pipeline.rank(q.question, params).units[:10].tolist()
        first = next((i for i, unit in enumerate(ranked) if unit in relevant), None)
        top1 += first == 0
        top10 += first is not None
        reciprocal += 1.0 / (first + 1) if first is not None else 0.0
    return {"questions": asked, "top1": top1 / asked, "top10": top10 / asked, "mrr@10": reciprocal / asked}


def answers(pipeline: Pipeline, questions: list[FaqQuestion]) -> dict[str, float]:
    answered = cited = 0
    for q in questions:
        answer = pipeline.answer(q.question)
        answered += not answer.abstained
        cited += bool(answer.evidence) and " ".join(answer.evidence[0].text.split()) in q.answer
    return {"answered": answered / len(questions), "first evidence in section": cited / len(questions)}


def language(settings: Settings, lang: str, work: Path) -> dict[str, Any]:
    corpus = faq_corpus(lang, work / lang / "corpus")
    questions = faq_questions(corpus)
    builder = Builder.from_settings(settings)
    documents, _ = builder.load(corpus)
    result = builder.build(documents, work / lang / "bundle")
    pipeline = Pipeline.from_settings(settings, result.path)
    row: dict[str, Any] = {
        "documents": len(documents),
        "sentences": result.manifest.counts["sentences"],
        "questions": len(questions),
        "modes": {name: ranks(pipeline, questions, mode) for name, mode in MODES.items()},
        "answers": answers(pipeline, questions),
    }
    return row


def table(rows: dict[str, dict[str, Any]]) -> str:
    english = rows.get("en", {}).get("sentences")
    lines = [
        "| language | sentences (÷ English) | questions | "
        + " | ".join(f"{m}: top 1 / top 10 / MRR@10" for m in MODES)
        + " | answered | first evidence in section |",
        "|---|---:|---:|" + "---:|" * len(MODES) + "---:|---:|",
    ]
    for lang, row in rows.items():
        ratio = f" ({row['sentences'] / english:.2f})" if english else ""
        cells = [f"{m['top1']:.3f} / {m['top10']:.3f} / {m['mrr@10']:.3f}" for m in row["modes"].values()]
        a = row["answers"]
        lines.append(
            f"| {lang} | {row['sentences']:,}{ratio} | {next(iter(row['modes'].values()))['questions']} | "
            + " | ".join(cells)
            + f" | {a['answered']:.3f} | {a['first evidence in section']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "eval-languages.json")
    parser.add_argument("--languages", default=",".join(FAQ_LANGUAGES))
    args = parser.parse_args()
    embedder, reranker = real_models()
    settings = Settings(
        backend="onnx", embedding_model=str(embedder), reranker_model=str(reranker), threads=2
    )
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="rag-eval-languages-") as work:
        for lang in args.languages.split(","):
            rows[lang] = language(settings, lang, Path(work))
            echo(f"{lang}: {json.dumps(rows[lang])}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    echo(table(rows))


if __name__ == "__main__":
    main()
