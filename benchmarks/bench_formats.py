"""`make bench-formats`: how fast each corpus format loads (extraction + sentence segmentation), and how well
the PDF text layer comes out with pypdfium2 against the other PDF libraries that were candidates.

SQuAD v1.1 part A's 24 articles (1,048 paragraphs) are rendered once into each format (rag_testkit.documents:
PDF with running header, footer and page numbers; DOCX; HTML inside boilerplate; Markdown; plain text), then
loaded as `rag build` loads them. Plain text of the same paragraphs is the baseline, run in the same process:
the ratios are what to compare across machines. Embedding, the bulk of a build, costs the same per sentence
whatever the format, so it is left out.

    python benchmarks/bench_formats.py [--repeat 3] [--out build/bench/formats.json]

PDF candidates other than pypdfium2 are measured when importable (pypdf, pdfminer.six; not project
dependencies): `pip install --target /tmp/pdflibs pypdf pdfminer.six` and `PYTHONPATH=/tmp/pdflibs`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_models import machine
from rag_testkit.documents import render_docx, render_html, render_pdf
from rag_testkit.samples import SHARED_DATA

from rag.config import BuildConfig
from rag.corpus import load_corpus, segment_corpus, split_sentences
from rag.eval.datasets import load_squad

ROOT = Path(__file__).resolve().parents[1]


def articles() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for doc in load_squad(SHARED_DATA / "squad-v1.1" / "dev-v1.1.part-a.json").documents:
        out.setdefault(doc.metadata["article"], []).append(doc.text)
    return out


def render(folder: Path, source: dict[str, list[str]]) -> int:
    """Every format into folder/<format>/; returns the PDF page count."""
    pages = 0
    for fmt in ("pdf", "docx", "html", "md", "txt"):
        (folder / fmt).mkdir()
    for i, (title, paragraphs) in enumerate(source.items()):
        name = f"article-{i:02d}"
        placed = render_pdf(folder / "pdf" / f"{name}.pdf", title, paragraphs)
        pages += max(p.page for p in placed)
        render_docx(folder / "docx" / f"{name}.docx", title, paragraphs)
        render_html(folder / "html" / f"{name}.html", title, paragraphs)
        (folder / "md" / f"{name}.md").write_text(f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n")
        (folder / "txt" / f"{name}.txt").write_text(f"{title}\n\n" + "\n\n".join(paragraphs) + "\n")
    return pages


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def load_and_segment(folder: Path) -> tuple[int, int]:
    documents, report = load_corpus(folder)
    assert not report.skipped, report.skipped
    return len(documents), segment_corpus(documents, BuildConfig()).n_sentences


def pdf_candidates() -> dict[str, Callable[[Path], str]]:
    def pypdfium2_raw(path: Path) -> str:
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(str(path))
        text = " ".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
        pdf.close()
        return text

    candidates: dict[str, Callable[[Path], str]] = {"pypdfium2 (text only)": pypdfium2_raw}
    try:
        from pypdf import PdfReader

        candidates["pypdf"] = lambda p: " ".join(page.extract_text() for page in PdfReader(p).pages)
    except ImportError:
        pass
    try:
        from pdfminer.high_level import extract_text

        candidates["pdfminer.six"] = lambda p: extract_text(str(p))
    except ImportError:
        pass
    return candidates


def sentence_recall(text: str, source: list[str]) -> float:
    """Share of the source's sentences found verbatim (white space collapsed) in the extracted text."""
    squashed = " ".join(text.split())
    sentences = [" ".join(p[s.start : s.end].split()) for p in source for s in split_sentences(p, 2000)]
    return sum(s in squashed for s in sentences) / len(sentences)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "formats.json")
    args = parser.parse_args()
    info = machine()
    print(f"CPU: {info['cpu']} · avx2 {info['flags']['avx2']} · avx512_vnni {info['flags']['avx512_vnni']}")
    source = articles()
    with tempfile.TemporaryDirectory(prefix="bench-formats-") as tmp:
        folder = Path(tmp)
        pages = render(folder, source)
        rows = {}
        for fmt in ("txt", "md", "html", "docx", "pdf"):
            seconds, (docs, sentences) = best_of(args.repeat, lambda f=fmt: load_and_segment(folder / f))
            mb = sum(p.stat().st_size for p in (folder / fmt).iterdir()) / 1e6
            rows[fmt] = {"seconds": seconds, "documents": docs, "sentences": sentences, "mb": mb}
        print(f"\n{len(source)} articles, {pages} PDF pages; load + segment, best of {args.repeat}:\n")
        print("| format | files MB | seconds | docs/s | sentences/s | vs txt |")
        print("|---|---|---|---|---|---|")
        for fmt, row in rows.items():
            extra = f" ({pages / row['seconds']:.0f} pages/s)" if fmt == "pdf" else ""
            print(
                f"| {fmt} | {row['mb']:.1f} | {row['seconds']:.3f}{extra} | {row['documents'] / row['seconds']:.1f}"
                f" | {row['sentences'] / row['seconds']:.0f} | {row['seconds'] / rows['txt']['seconds']:.1f}× |"
            )
        print("\nPDF text layer: time for all PDFs, and share of SQuAD sentences found verbatim\n")
        print("| library | seconds | pages/s | sentences found |")
        print("|---|---|---|---|")
        pdfs = sorted((folder / "pdf").iterdir())
        paragraphs = list(source.values())
        candidates = {"rag's PDF loader (pypdfium2 + layout)": lambda p: load_corpus(p)[0][0].text}
        candidates.update(pdf_candidates())
        library_rows = {}
        for name, extract in candidates.items():
            seconds, texts = best_of(args.repeat, lambda e=extract: [e(p) for p in pdfs])
            recall = sum(sentence_recall(t, s) for t, s in zip(texts, paragraphs, strict=True)) / len(pdfs)
            library_rows[name] = {"seconds": seconds, "pages_per_second": pages / seconds, "recall": recall}
            print(f"| {name} | {seconds:.2f} | {pages / seconds:.0f} | {recall:.4f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": info, "pdf_pages": pages, "formats": rows, "pdf_libraries": library_rows}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwritten: {os.path.relpath(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
