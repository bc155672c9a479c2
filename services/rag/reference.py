"""The README's reference tables, made from the code they describe: `python -m rag.reference README.md`
rewrites them in place; a test fails when the README and the code disagree.

A table sits between `<!-- reference:NAME -->` and `<!-- /reference:NAME -->` in the README.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from . import errors
from .config import SETTINGS_GROUPS
from .errors import RagError

__all__ = ["TABLES", "error_table", "rewrite", "settings_table"]


def _subclasses(cls: type[RagError]) -> list[type[RagError]]:
    """The tree in depth-first order, each branch in the order its classes are defined."""
    children = sorted(cls.__subclasses__(), key=lambda c: inspect.getsourcelines(c)[1])
    return [cls] + [c for child in children for c in _subclasses(child)]


def error_table() -> str:
    """Every `error_type` a client can get from rag/errors.py, with its HTTP status and meaning."""
    rows, seen = [], set()
    for cls in _subclasses(RagError)[1:]:
        if cls.__module__ != errors.__name__ or cls.error_type in seen:
            continue
        seen.add(cls.error_type)
        meaning = (inspect.getdoc(cls) or "").split("\n")[0]
        rows.append(f"| `{cls.error_type}` | {cls.status} | {meaning} |")
    return "\n".join(["| `error_type` | status | meaning |", "|---|---|---|", *rows])


def _variable(name: str, field: FieldInfo) -> str:
    return str(field.validation_alias) if field.validation_alias else f"RAG_{name.upper()}"


def _default(name: str, value: Any) -> str:
    if value is None or isinstance(value, SecretStr):
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple | list | str) and not value:
        return "empty"
    if isinstance(value, str):
        return f"`{value}`"
    if name.endswith("_bytes") and value >= 1024**2:
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2)):
            if value % size == 0:
                return f"{value // size} {unit}"
    return f"{value:_}".replace("_", ",") if isinstance(value, int) else str(value)


def settings_table() -> str:
    """Every setting, by group (rag/config.py), with its variable, default and meaning."""
    lines = []
    for group, model in SETTINGS_GROUPS.items():
        summary = (inspect.getdoc(model) or "").replace("\n", " ")
        lines += [f"**{group}** — {summary}", "", "| variable | default | meaning |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            description = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{_variable(name, field)}` | {_default(name, field.default)} | {description} |")
        lines.append("")
    return "\n".join(lines).rstrip()


TABLES = {"errors": error_table, "settings": settings_table}


def rewrite(text: str) -> str:
    for name, make in TABLES.items():
        pattern = re.compile(rf"(<!-- reference:{name} -->\n).*?(<!-- /reference:{name} -->)", re.S)
        found = pattern.search(text)
        if found is None:
            raise ValueError(f"no <!-- reference:{name} --> block")
        text = text[: found.end(1)] + make() + "\n" + text[found.start(2) :]
    return text


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "README.md")
    path.write_text(rewrite(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
