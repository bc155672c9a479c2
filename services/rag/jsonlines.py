"""JSON Lines as the format defines it: records separated by "\\n" (a "\\r" before it belongs to the separator).

Python's `str.splitlines()` also breaks at U+2028, U+2029, U+0085 and the ASCII separators \\x0b \\x0c \\x1c-\\x1e,
and JSON lets a string hold all of them raw: `json.dumps(..., ensure_ascii=False)` writes U+2028 as is. So a
record whose text held one (web text, PDF text, a Latin-1 "…" read as U+0085) was read as two broken lines,
and the build, the evaluation or a resumed `rag ask --batch` stopped on "not valid JSON".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["numbered_lines"]


def numbered_lines(lines: str | Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, line) of each line that is not blank, split at "\\n" only: from a whole text, or from an
    iterable of lines that end in "\\n" (a binary file's lines, decoded one by one)."""
    for number, line in enumerate(lines.split("\n") if isinstance(lines, str) else lines, start=1):
        line = line.removesuffix("\n").removesuffix("\r")
        if line.strip():
            yield number, line
