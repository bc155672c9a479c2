"""Each file type as users have it: structure kept (pages, sections, blocks), boilerplate and running lines
dropped, offsets exact; tables, code and headings never evidence sentences."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rag_testkit.documents import BOILERPLATE_WORDS, page_of, render_docx, render_html, render_pdf

from rag.config import BuildConfig
from rag.corpus import Document, load_corpus
from rag.corpus.documents import PROSE
from rag.corpus.units import document_sentences

RIVERS = [
    "Loire",
    "Rhine",
    "Danube",
    "Elbe",
    "Oder",
    "Seine",
    "Rhone",
    "Garonne",
    "Tagus",
    "Ebro",
    "Po",
    "Tiber",
]


def paragraphs(n: int = 24) -> list[str]:
    """Paragraphs of distinct sentences (so each can be found again), of uneven lengths so that some flow over
    a page break."""
    out = []
    for i in range(n):
        river = RIVERS[i % len(RIVERS)]
        out.append(
            " ".join(
                f"Survey {i}-{j} of the {river} counted {17 * i + j} herons along its lower course in spring."
                for j in range(3 + (i * 7) % 9)
            )
        )
    return out


def sentences_of(doc: Document) -> list[tuple[int, int, str]]:
    return [(s.start, s.end, doc.text[s.start : s.end]) for s in document_sentences(doc, 2000)]


def one(folder: Path) -> Document:
    documents, report = load_corpus(folder)
    assert report.skipped == [], report.skipped
    (doc,) = documents
    return doc


def assert_offsets_exact(doc: Document) -> None:
    prose = [b for b in doc.blocks if b.kind in PROSE]
    for start, end, text in sentences_of(doc):
        assert text and text == text.strip() and doc.text[start:end] == text
        if doc.blocks:
            assert any(b.start <= start and end <= b.end for b in prose), text
    for block in doc.blocks:
        assert 0 <= block.start < block.end <= len(doc.text)
    assert list(doc.page_starts) == sorted(doc.page_starts)


def test_pdf_running_lines_dropped_paragraphs_rejoined_pages_where_the_renderer_put_them(
    tmp_path: Path,
) -> None:
    source = paragraphs()
    placed = render_pdf(tmp_path / "guide.pdf", "Herons of European rivers", source)
    assert max(p.page for p in placed) >= 3 and len(placed) > len(source)  # some paragraphs span a page break
    doc = one(tmp_path / "guide.pdf")
    assert doc.title == "Herons of European rivers"
    assert "Field Guide" not in doc.text and "Confidential" not in doc.text and "Page " not in doc.text
    found = sentences_of(doc)
    expected = [s for p in source for s in re.findall(r"[^.]+\.", p)]
    assert [text for _, _, text in found] == [s.strip() for s in expected]
    for start, _, text in found:
        i = next(k for k, p in enumerate(source) if text in p)
        assert doc.page_at(start) == page_of(placed, i, source[i], source[i].index(text)), text
    assert_offsets_exact(doc)


def test_docx_headings_tables_and_page_breaks(tmp_path: Path) -> None:
    source = paragraphs(9)
    pages = render_docx(tmp_path / "report.docx", "River survey", source, per_page=4)
    doc = one(tmp_path / "report.docx")
    assert doc.title == "River survey"
    found = sentences_of(doc)
    assert {text for _, _, text in found} == {s.strip() for p in source for s in re.findall(r"[^.]+\.", p)}
    for start, _, text in found:
        assert doc.page_at(start) == pages[next(k for k, p in enumerate(source) if text in p)]
        assert doc.block_at(start).section == "River survey › Overview"  # type: ignore[union-attr]
    assert [b.kind for b in doc.blocks if b.kind != "paragraph"] == ["heading", "heading", "table"]
    assert "1066 | Conquest" in doc.text
    assert_offsets_exact(doc)


def test_docx_without_page_breaks_has_no_pages(tmp_path: Path) -> None:
    render_docx(tmp_path / "short.docx", "Short", paragraphs(3), per_page=10)
    doc = one(tmp_path / "short.docx")
    assert doc.page_starts == () and doc.page_at(0) is None


def test_html_keeps_the_article_and_drops_the_boilerplate(tmp_path: Path) -> None:
    source = paragraphs(6)
    render_html(tmp_path / "article.html", "Herons", source)
    doc = one(tmp_path / "article.html")
    assert doc.title.startswith("Herons")
    assert not [w for w in BOILERPLATE_WORDS if w in doc.text]
    assert "window.dataLayer" not in doc.text and "color: red" not in doc.text
    assert {text for _, _, text in sentences_of(doc)} == {
        s.strip() for p in source for s in re.findall(r"[^.]+\.", p)
    }
    assert_offsets_exact(doc)


MARKDOWN = """# Operations

Intro sentence one. Intro sentence two.

## Thresholds

| threshold | abstain (full) | abstain (without article) |
|---|---|---|
| 0.40 | 0.05 | 0.83 |

What the numbers say:

- A lower threshold answers more. It also answers wrongly more often.
- Use `rag eval` to **measure** it.

```bash
make eval   # not a sentence
```
"""


def test_markdown_tables_code_and_headings_are_never_sentences(tmp_path: Path) -> None:
    (tmp_path / "ops.md").write_text(MARKDOWN)
    doc = one(tmp_path / "ops.md")
    texts = [text for _, _, text in sentences_of(doc)]
    assert texts == [
        "Intro sentence one.",
        "Intro sentence two.",
        "A lower threshold answers more.",
        "It also answers wrongly more often.",
        "Use rag eval to measure it.",
    ]
    assert "What the numbers say:" not in texts  # a lone line ending in a colon: a heading-like paragraph
    assert [b.kind for b in doc.blocks] == [
        "heading", "paragraph", "heading", "table", "heading", "list_item", "list_item", "code",
    ]  # fmt: skip
    section = doc.block_at(doc.text.index("A lower")).section  # type: ignore[union-attr]
    assert section == "Operations › Thresholds › What the numbers say:"
    assert_offsets_exact(doc)


def test_plain_text_and_jsonl_keep_the_whole_text_as_prose(corpus_dir: Path) -> None:
    documents, _ = load_corpus(corpus_dir)
    for doc in documents:
        assert_offsets_exact(doc)
    assert next(d for d in documents if d.id == "water.txt").blocks == ()


@pytest.mark.parametrize("limit, skipped", [(2000, False), (400, True)])
def test_a_500_page_pdf_builds_under_the_default_page_limit_and_not_over_a_lower_one(
    tmp_path: Path, limit: int, skipped: bool
) -> None:
    from rag.corpus import Limits

    render_pdf(tmp_path / "big.pdf", "Big", paragraphs(1) * 500, one_per_page=True)
    (tmp_path / "note.txt").write_text("A small note. It builds.")
    documents, report = load_corpus(tmp_path, limits=Limits(max_pages=limit))
    assert ("big.pdf" in {d.id for d in documents}) is not skipped
    if skipped:
        assert report.skipped == [
            {"source": "big.pdf", "reason": "500 pages, more than the limit of 400 (RAG_MAX_PAGES)"}
        ]


def test_table_rows_and_code_lines_are_evidence_only_when_asked_for(tmp_path: Path, monkeypatch) -> None:
    """RAG_EVIDENCE_BLOCKS (the setting under test) adds tables (a row per sentence) and code (a line per
    sentence) to the evidence; headings never are."""
    from rag.config import load_settings
    from rag.corpus import segment_corpus

    (tmp_path / "ops.md").write_text(MARKDOWN)
    monkeypatch.setenv("RAG_EVIDENCE_BLOCKS", "paragraph,list_item,table,code")
    config = load_settings().build_config()
    doc = one(tmp_path / "ops.md")
    seg = segment_corpus([doc], config)
    texts = [doc.text[s:e] for s, e in zip(seg.sent_start, seg.sent_end, strict=True)]
    assert "0.40 | 0.05 | 0.83" in texts and "threshold | abstain (full) | abstain (without article)" in texts
    assert "make eval   # not a sentence" in texts
    assert "Operations" not in texts and "What the numbers say:" not in texts
    default = segment_corpus([doc], BuildConfig())
    assert default.n_sentences == len(texts) - 3
