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


PAGES = {
    "debian.md": "---\ntitle: Install on Debian\ntags: [setup, linux]\nversion: 2.1\ndate: 2024-05-01\n---\n\n"
    "Install the agent with apt. The package starts the agent's service at once.\n",
    "windows.md": "---\ntitle: Install on Windows\ntags: [setup, windows]\nversion: 2.0\n---\n\n"
    "Install the agent with its MSI package. The installer starts the agent's service at once.\n",
    "draft.md": "---\ntitle: Upgrades\ndraft: true\nmenu: {main: {weight: 3}}\n---\n\n"
    "Upgrade the agent by installing the new package over the old one.\n",
}


def test_front_matter_fields_are_filters(tmp_path: Path, settings, embedder) -> None:
    """A docs site's own taxonomy (`tags`, `version`, `draft`) filters answers, as a JSONL record's metadata
    does; a nested field (`menu`) is not a filter value, and a date is its ISO text."""
    from rag.config import RetrievalParams
    from rag.index import Builder, Bundle
    from rag.pipeline import Pipeline

    builder = Builder.from_settings(settings, embedder=embedder)
    documents, report = builder.load(write_corpus(tmp_path / "site", PAGES))
    assert {d.id: d.metadata for d in documents}["debian.md"] == {
        "source": "debian.md", "tags": ["setup", "linux"], "version": 2.1, "date": "2024-05-01",
    }  # fmt: skip
    builder.build(documents, tmp_path / "bundle", report=report)
    pipeline = Pipeline(Bundle.load(tmp_path / "bundle"), embedder, None, RetrievalParams(rerank=False))
    params = RetrievalParams(rerank=False, abstain_threshold=-1.0)
    found = {h.doc_id for h in pipeline.search("How do I install the agent?", params).hits}
    assert found == {"debian.md", "windows.md", "draft.md"}
    by_tag = pipeline.search("How do I install the agent?", params, filters={"tags": "windows"}).hits
    assert {h.doc_id for h in by_tag} == {"windows.md"}
    not_draft = pipeline.search("How do I install the agent?", params, filters={"draft": {"not": True}}).hits
    assert {h.doc_id for h in not_draft} == {"debian.md", "windows.md"}
    assert "menu" not in pipeline.bundle.filter_fields()
