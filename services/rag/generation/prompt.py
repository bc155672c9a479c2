"""The answer prompt: the evidence sentences numbered [1]..[k], the question, and how to cite.

The template is configurable (`RAG_GENERATION_PROMPT`, or `RAG_GENERATION_PROMPT_FILE`) and must contain
`{question}` and `{evidence}`. They are replaced literally, not with str.format, so a template may contain
other braces (JSON examples) without escaping them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import ConfigError
from ..pipeline import Evidence

__all__ = ["DEFAULT_TEMPLATE", "PromptTemplate"]

DEFAULT_TEMPLATE = """Answer the question using only the numbered evidence sentences below.

Rules:
- End every sentence of your answer with the number of the evidence it relies on, in square brackets, \
e.g. [1] or [1][3]. Cite only the numbers listed below.
- Copy every number (years, amounts, percentages) exactly as it appears in the evidence you cite.
- Be brief: one to three sentences. If the evidence does not answer the question, say so in one sentence \
and cite the closest evidence.

Evidence:
{evidence}

Question: {question}
Answer:"""

_PLACEHOLDERS = ("{question}", "{evidence}")
_PLACEHOLDER = re.compile(r"\{(question|evidence)\}")


@dataclass(frozen=True)
class PromptTemplate:
    template: str = DEFAULT_TEMPLATE

    def __post_init__(self) -> None:
        missing = [p for p in _PLACEHOLDERS if p not in self.template]
        if missing:
            raise ConfigError(f"the generation prompt template lacks {' and '.join(missing)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> PromptTemplate:
        if settings.generation_prompt_file:
            path = Path(settings.generation_prompt_file)
            try:
                return cls(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError(f"RAG_GENERATION_PROMPT_FILE {path}: {exc.strerror or exc}") from None
        return cls(settings.generation_prompt or DEFAULT_TEMPLATE)

    def render(self, question: str, evidence: Sequence[Evidence]) -> str:
        numbered = "\n".join(
            f"[{n}] {_one_line(e.title)}: {_one_line(e.text)}"
            if e.title.strip()
            else f"[{n}] {_one_line(e.text)}"
            for n, e in enumerate(evidence, 1)
        )
        values = {"question": _one_line(question), "evidence": numbered}
        # One pass, so a placeholder-like string inside the evidence or the question is never expanded.
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template)

    def messages(self, question: str, evidence: Sequence[Evidence]) -> list[dict[str, str]]:
        # One user turn, no system turn: some models' chat templates (Gemma's, for one) reject a system role.
        return [{"role": "user", "content": self.render(question, evidence)}]


def _one_line(text: str) -> str:
    # A newline inside a sentence would read as the start of another numbered line.
    return " ".join(text.split())
