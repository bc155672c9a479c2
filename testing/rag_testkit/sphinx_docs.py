"""Python's own documentation as Debian ships it (`python3.11-doc`): real HTML from Sphinx, the generator most
technical documentation is built with. Its pages hold what such pages hold: permalink marks in headings, API
entries as definition lists, code inline and in blocks, notes and footnotes. What each page says is read
here with lxml from the page itself, not with rag's loader.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .tools import require_packages

_HTML = Path("/usr/share/doc/python3.11/html")
# Footnotes and sidebars are asides: trafilatura leaves them out as it leaves out any page's asides.
_ASIDES = ("footnote", "sidebar")


@dataclass(frozen=True)
class PageText:
    headings: list[str]  # the main content's h1-h4, their permalink marks removed
    paragraphs: list[str]  # of 8 words or more, outside tables and asides, white space collapsed


def sphinx_pages(folder: Path, pages: list[str]) -> Path:
    """The named pages ("tutorial/classes.html") copied into `folder`, each under its own file name."""
    require_packages("python3.11-doc")
    folder.mkdir(parents=True, exist_ok=True)
    for page in pages:
        shutil.copyfile(_HTML / page, folder / Path(page).name)
    return folder


def tutorial_pages() -> list[str]:
    require_packages("python3.11-doc")
    return sorted(f"tutorial/{p.name}" for p in (_HTML / "tutorial").glob("*.html"))


def collapsed(text: str) -> str:
    return " ".join(text.split())


def page_text(page: Path) -> PageText:
    import lxml.html

    (main,) = lxml.html.parse(str(page)).xpath('//div[@role="main"]')
    for mark in main.xpath('.//a[@class="headerlink"]'):
        mark.drop_tree()
    headings = [collapsed(h.text_content()) for h in main.xpath(".//h1|.//h2|.//h3|.//h4")]
    paragraphs = []
    for p in main.xpath(".//p[not(ancestor::table)]"):
        classes = " ".join(a.get("class") or "" for a in p.iterancestors())
        text = collapsed(p.text_content())
        if len(text.split()) >= 8 and not any(aside in classes for aside in _ASIDES):
            paragraphs.append(text)
    return PageText(headings, paragraphs)
