"""Markdown pages of docs-as-code sites open with front matter (`rag_testkit.npm_docs`: npm's own 83 pages).

Read as Markdown, "title: Install⏎section: 5⏎description: …⏎---" is a setext heading: on npm's docs it was
the section of 4,314 of the 4,335 prose blocks, and a page's title was its file name where the front matter
names it ("package-json" for "package.json").
"""

from __future__ import annotations

from pathlib import Path

from rag_testkit.npm_docs import declared_title, npm_docs
from rag_testkit.samples import write_corpus

from rag.corpus import load_corpus


def test_npm_docs_take_their_titles_from_front_matter_and_keep_it_out_of_the_text(tmp_path: Path) -> None:
    root = npm_docs(tmp_path / "npm")
    documents, report = load_corpus(root)
    assert len(documents) == 83 and report.skipped == []
    assert {d.id: d.title for d in documents} == {d.id: declared_title(root / d.id) for d in documents}
    for doc in documents:
        assert not doc.text.startswith(("title:", "---")), doc.id
        assert not any("section:" in b.section or "description:" in b.section for b in doc.blocks), doc.id


def test_toml_front_matter_and_pages_that_only_look_like_it(tmp_path: Path) -> None:
    """Hugo's TOML front matter is read too. A page that opens with a thematic break, or whose "front
    matter" does not parse as fields, keeps its text."""
    write_corpus(
        tmp_path,
        {
            "hugo.md": '+++\ntitle = "Backups"\nweight = 3\n+++\n\nBackups run nightly at two.\n',
            "rule.md": "---\n\nA page that opens with a rule. It has no front matter.\n\n---\n\nMore text here.\n",
            "broken.md": "---\ntitle: [unclosed\n---\n\nThe text after a block that does not parse.\n",
        },
    )
    documents, _ = load_corpus(tmp_path)
    by_id = {d.id: d for d in documents}
    assert by_id["hugo.md"].title == "Backups" and by_id["hugo.md"].text == "Backups run nightly at two."
    assert "opens with a rule" in by_id["rule.md"].text and by_id["rule.md"].title == "rule"
    assert "title: [unclosed" in by_id["broken.md"].text and by_id["broken.md"].title == "broken"
