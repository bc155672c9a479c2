"""Same answers whatever the format: SQuAD v1.1 part A's 24 articles rendered as PDF (paragraphs flowing over
pages, a running header, a running footer and page numbers on every page), as DOCX and as HTML pages inside
boilerplate, each built as users build (`Builder`, the default models) and asked all 5,696 questions. Evidence
top-1 / top-3 must be within 0.5 points of the JSONL build of the same paragraphs; no header, footer or
boilerplate is ever evidence; every PDF evidence sentence's page is where the renderer put it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from rag_testkit.documents import BOILERPLATE_WORDS, Placed, page_of, render_docx, render_html, render_pdf
from rag_testkit.samples import SHARED_DATA

from rag.config import BuildConfig
from rag.eval.datasets import SquadData, load_squad
from rag.index import Builder, Bundle
from rag.pipeline import Pipeline

pytestmark = pytest.mark.slow

TOLERANCE = 0.005  # half a point
FORMATS = ("pdf", "docx", "html")


def slug(title: str) -> str:
    return re.sub(r"\W+", "-", title).strip("-")


@pytest.fixture(scope="module")
def squad() -> SquadData:
    return load_squad(SHARED_DATA / "squad-v1.1" / "dev-v1.1.part-a.json")


def articles(squad: SquadData) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for doc in squad.documents:
        out.setdefault(doc.metadata["article"], []).append(doc.text)
    return out


@pytest.fixture(scope="module")
def corpora(squad: SquadData, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("formats")
    folders = {name: root / name for name in ("jsonl", *FORMATS)}
    for folder in folders.values():
        folder.mkdir()
    with (folders["jsonl"] / "corpus.jsonl").open("w") as out:
        for doc in squad.documents:
            out.write(json.dumps({"id": doc.id, "title": doc.title, "text": doc.text}) + "\n")
    placed: dict[str, list[Placed]] = {}
    for title, paragraphs in articles(squad).items():
        placed[f"{slug(title)}.pdf"] = render_pdf(folders["pdf"] / f"{slug(title)}.pdf", title, paragraphs)
        render_docx(folders["docx"] / f"{slug(title)}.docx", title, paragraphs)
        render_html(folders["html"] / f"{slug(title)}.html", title, paragraphs)
    return {"folders": folders, "placed": placed}


@pytest.fixture(scope="module")
def pipelines(corpora: dict[str, Any], settings, embedder, tmp_path_factory) -> dict[str, Pipeline]:
    out = {}
    cache = tmp_path_factory.mktemp("cache") / "embeddings.sqlite"
    for name, folder in corpora["folders"].items():
        builder = Builder(embedder, BuildConfig(), cache_path=cache)
        documents, report = builder.load(folder)
        assert report.skipped == [], report.skipped
        builder.build(documents, folder.parent / f"{name}-bundle", report=report)
        params = settings.retrieval_params().model_copy(update={"rerank": False})
        out[name] = Pipeline(Bundle.load(folder.parent / f"{name}-bundle"), embedder, None, params)
    return out


@pytest.fixture(scope="module")
def evidence(pipelines: dict[str, Pipeline], squad: SquadData) -> dict[str, list[list[Any]]]:
    """Per format, the top-3 evidence sentences (sentence units: the ranked hits) of every question."""
    return {
        name: [pipeline.search(q.question, limit=3).hits for q in squad.questions]
        for name, pipeline in pipelines.items()
    }


def hit_rates(hits: list[list[Any]], squad: SquadData) -> tuple[float, float]:
    def contains(hit: Any, answers: tuple[str, ...]) -> bool:
        return any(a in hit.text for a in answers)

    top1 = sum(bool(h) and contains(h[0], q.answers) for h, q in zip(hits, squad.questions, strict=True))
    top3 = sum(any(contains(x, q.answers) for x in h) for h, q in zip(hits, squad.questions, strict=True))
    return top1 / len(hits), top3 / len(hits)


@pytest.mark.parametrize("fmt", FORMATS)
def test_evidence_hit_rates_match_the_jsonl_build(fmt: str, evidence: dict, squad: SquadData) -> None:
    base = hit_rates(evidence["jsonl"], squad)
    got = hit_rates(evidence[fmt], squad)
    print(f"{fmt}: top-1 {got[0]:.4f} top-3 {got[1]:.4f}; jsonl: top-1 {base[0]:.4f} top-3 {base[1]:.4f}")
    assert abs(got[0] - base[0]) <= TOLERANCE and abs(got[1] - base[1]) <= TOLERANCE, (got, base)


def test_no_running_line_or_boilerplate_is_ever_evidence(evidence: dict, pipelines: dict) -> None:
    for hits in evidence["pdf"]:
        for hit in hits:
            assert "Field Guide" not in hit.text and "Confidential" not in hit.text, hit.text
    for doc in pipelines["pdf"].bundle.documents:
        assert "Field Guide" not in doc.text and not re.search(r"\bPage \d+\b", doc.text)
    for doc in pipelines["html"].bundle.documents:
        assert not [w for w in BOILERPLATE_WORDS if w in doc.text], doc.id
    for hits in evidence["docx"]:
        assert not [hit for hit in hits if "1066 | Conquest" in hit.text]  # the rendered table is no sentence


def test_every_pdf_evidence_sentence_is_on_the_page_the_renderer_put_it(
    evidence: dict, pipelines: dict, corpora: dict, squad: SquadData
) -> None:
    paragraphs = articles(squad)
    bundle = pipelines["pdf"].bundle
    checked = 0
    for hits in evidence["pdf"]:
        for hit in hits:
            doc = bundle.document(hit.doc_id)
            squashed = [" ".join(p.split()) for p in paragraphs[doc.title]]
            head = hit.text[:40]  # a handful of sentences differ further on ("O 2" for "O2")
            # the same sentence can stand in two paragraphs of an article: any of their pages
            expected = {
                page_of(corpora["placed"][hit.doc_id], i, p, p.index(head))
                for i, p in enumerate(squashed)
                if head in p
            }
            assert doc.page_at(hit.char_start) in expected, (hit.doc_id, hit.text, expected)
            checked += 1
    assert checked > 10_000
