"""npm's own documentation, as its package ships it (`npm pack`, from the npm registry): 83 Markdown pages of a
docs-as-code site, each opening with YAML front matter (`title`, `section`, `description`), as Jekyll, Hugo,
MkDocs and Docusaurus pages do. Nobody here wrote them.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

from .tools import require_tool

__all__ = ["NPM_PACKAGE", "declared_title", "npm_docs"]

NPM_PACKAGE = "npm@10.9.2"
_TITLE = re.compile(r"^title:\s*(.+?)\s*$", re.MULTILINE)


def npm_docs(folder: Path) -> Path:
    """The package's docs/content/**/*.md extracted into `folder`, in their folders."""
    npm = require_tool("npm", "npm")
    folder.mkdir(parents=True, exist_ok=True)
    packed = subprocess.run(
        [npm, "pack", NPM_PACKAGE, "--pack-destination", str(folder), "--silent"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout.split()[-1]
    with tarfile.open(folder / packed) as archive:
        pages = [
            m
            for m in archive.getmembers()
            if m.isfile() and re.match(r"package/docs/content/.+\.md$", m.name)
        ]
        archive.extractall(folder / "extracted", members=pages, filter="data")
    return folder / "extracted" / "package" / "docs" / "content"


def declared_title(page: Path) -> str:
    """The `title:` line of a page's front matter, read as text (not with the YAML parser the loader uses)."""
    head = page.read_text(encoding="utf-8").split("\n---", 1)[0]
    match = _TITLE.search(head)
    return match.group(1).strip("'\"") if match else ""
