"""Bad files never stop a build: each is skipped with its reason, recorded in the manifest and printed by
`rag build`, and the rest of the corpus builds."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from rag_testkit.documents import render_docx, render_pdf

from rag.cli import main
from rag.corpus import load_corpus


def encrypted_pdf(path: Path) -> None:
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), encrypt="a-user-password")
    pdf.drawString(72, 720, "Secret text nobody may index.")
    pdf.save()


def image_only_pdf(path: Path) -> None:
    """A scan: shapes, no text layer."""
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path))
    for i in range(20):
        pdf.rect(72 + i * 10, 600 - i * 12, 200, 8, fill=1)
    pdf.showPage()
    pdf.save()


def corrupt_docx(path: Path, good: Path) -> None:
    """A real DOCX cut in half (an interrupted upload)."""
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def docx_with_a_damaged_part(path: Path, good: Path) -> None:
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as out:
        for item in src.infolist():
            body = src.read(item)
            out.writestr(item, b"<w:document><unclosed" if item.filename == "word/document.xml" else body)


BAD = {
    "encrypted.pdf": "encrypted (needs a password)",
    "scan.pdf": "no text layer (a scanned or image-only PDF?)",
    "half.docx": "not a valid DOCX",
    "damaged.docx": "not a valid DOCX",
    "nav-only.html": "no main content found",
    "empty.pdf": "empty file",
    "empty.docx": "empty file",
    "empty.md": "empty file",
    "random.pdf": "not a readable PDF",
    "random.docx": "not a valid DOCX",
    "binary.txt": "binary content (NUL bytes), not text",
    "binary.md": "binary content (NUL bytes), not text",
}


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    render_pdf(folder / "good.pdf", "Good", ["The good PDF says herons nest in reeds. It builds."])
    render_docx(tmp_path / "model.docx", "Good", ["The good DOCX says storks nest on roofs."])
    (folder / "good.md").write_text("# Good\n\nThe good Markdown says egrets are white.\n")
    encrypted_pdf(folder / "encrypted.pdf")
    image_only_pdf(folder / "scan.pdf")
    corrupt_docx(folder / "half.docx", tmp_path / "model.docx")
    docx_with_a_damaged_part(folder / "damaged.docx", tmp_path / "model.docx")
    (folder / "nav-only.html").write_text(
        "<html><body><nav><a href='/'>Home</a> <a href='/a'>About</a></nav><footer>© 2026</footer></body></html>"
    )
    for name in ("empty.pdf", "empty.docx", "empty.md"):
        (folder / name).write_bytes(b"")
    noise = os.urandom(4096)
    (folder / "random.pdf").write_bytes(noise)
    (folder / "random.docx").write_bytes(noise)
    (folder / "binary.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00" + noise)
    (folder / "binary.md").write_bytes(b"\x00\x00\x00" + noise)
    return folder


def test_each_bad_file_is_skipped_with_its_reason_and_the_rest_loads(corpus: Path) -> None:
    documents, report = load_corpus(corpus)
    assert sorted(d.id for d in documents) == ["good.md", "good.pdf"]  # good.docx is outside the corpus
    reasons = {s["source"]: s["reason"] for s in report.skipped}
    assert set(reasons) == set(BAD)
    for name, reason in BAD.items():
        assert reasons[name].startswith(reason), (name, reasons[name])


def test_rag_build_prints_each_skip_and_records_it_in_the_manifest(
    corpus: Path, tmp_path: Path, default_env: None, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """`RAG_MAX_FILE_BYTES` (the setting under test) also skips a file over it."""
    (corpus / "large.md").write_text("# Large\n\n" + "Herons wade in shallow water. " * 4000)
    monkeypatch.setenv("RAG_MAX_FILE_BYTES", "100000")
    assert main(["build", str(corpus), "--out", str(tmp_path / "bundle"), "--quiet"]) == 0
    printed = capsys.readouterr().err
    expected = {**BAD, "large.md": "120,009 bytes, more than the limit of 100,000 (RAG_MAX_FILE_BYTES)"}
    for name, reason in expected.items():
        assert f"warning: skipped {name}: {reason}" in printed, name
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    recorded = {s["source"]: s["reason"] for s in manifest["skipped"]}
    assert set(recorded) == set(expected) and recorded["large.md"] == expected["large.md"]
    assert manifest["counts"]["documents"] == 2
