"""Debian's FAQ in six languages, from Debian's own packages: real documents in Cyrillic, Chinese, Japanese
and Korean as well as English and German, with questions people wrote. Each question is the title of the
section that answers it, so a unit is relevant to a question when its text lies in that section.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .tools import require_packages

FAQ_LANGUAGES = ("en", "de", "ru", "ja", "zh-cn", "ko")
_FAQ_ROOT = Path("/usr/share/doc/debian/FAQ")
_NUMBER = re.compile(r"^\s*[\d.]+\s*")
# Debian's New Maintainers' Guide in Simplified Chinese ships as a PDF too (typeset by the package's build).
MAINT_GUIDE_ZH_PDF = Path("/usr/share/doc/maint-guide-zh-cn/maint-guide.zh-cn.pdf")
MAINT_GUIDE_ZH_HTML = Path("/usr/share/doc/maint-guide-zh-cn/html")


@dataclass(frozen=True)
class FaqQuestion:
    question: str  # the section's title without its number ("4.1. ")
    answer: str  # the section's text, white space collapsed


def faq_corpus(language: str, folder: Path) -> Path:
    """The FAQ's pages in `language`, copied into `folder`: the English pages lie beside every translation's
    folder, and each of them is there twice (a link `x.html` to `x.en.html`)."""
    require_packages("debian-faq" if language == "en" else f"debian-faq-{language}")
    source = _FAQ_ROOT if language == "en" else _FAQ_ROOT / language
    folder.mkdir(parents=True, exist_ok=True)
    for page in sorted(source.glob("*.html")):
        if not page.is_symlink():
            shutil.copyfile(page, folder / page.name)
    return folder


def maint_guide_zh() -> tuple[Path, Path]:
    """The Chinese New Maintainers' Guide: (its PDF, its HTML folder)."""
    require_packages("maint-guide-zh-cn")
    return MAINT_GUIDE_ZH_PDF, MAINT_GUIDE_ZH_HTML


def collapsed(text: str) -> str:
    return " ".join(text.split())


def faq_questions(folder: Path) -> list[FaqQuestion]:
    """The sections of DocBook pages whose title asks a question, read with lxml, not with rag's loader."""
    import lxml.html

    found = []
    for page in sorted(folder.glob("*.html")):
        for section in lxml.html.parse(str(page)).xpath('//div[@class="section"]'):
            titles = section.xpath('.//*[self::h2 or self::h3][@class="title"]')
            title = collapsed(titles[0].text_content()) if titles else ""
            if not title.endswith(("?", "？")):
                continue
            for heading in section.xpath('.//div[@class="titlepage"]'):
                heading.getparent().remove(heading)
            found.append(FaqQuestion(_NUMBER.sub("", title), collapsed(section.text_content())))
    return found


def answering_units(unit_texts: list[str], question: FaqQuestion) -> set[int]:
    """Rows of the units whose text is in the question's section (a unit of fewer than 8 characters, such as
    a lone "是。", proves nothing)."""
    return {
        row for row, text in enumerate(unit_texts) if len(text) >= 8 and collapsed(text) in question.answer
    }
