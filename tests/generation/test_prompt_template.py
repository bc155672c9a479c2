"""The answer prompt and the generation settings: checked at startup, not at the first request."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.config import Settings
from rag.errors import ConfigError
from rag.generation.prompt import DEFAULT_TEMPLATE, PromptTemplate
from rag.pipeline import Evidence


def evidence(text: str, title: str = "Paris") -> Evidence:
    return Evidence(
        doc_id="d", title=title, sentence_id="d#0", text=text, char_start=0, char_end=len(text), score=1.0
    )


def test_evidence_is_numbered_in_order_one_line_each() -> None:
    prompt = PromptTemplate().render(
        "When?\n", [evidence("Built in 1889."), evidence("It is\n330 m tall.", title="")]
    )
    assert "[1] Paris: Built in 1889.\n[2] It is 330 m tall." in prompt
    assert prompt.rstrip().endswith("Question: When?\nAnswer:")


def test_custom_template_keeps_other_braces_and_is_not_reexpanded() -> None:
    template = PromptTemplate('Q={question} E={evidence} JSON: {"a": 1}')
    assert template.render("{evidence}?", [evidence("x")]) == 'Q={evidence}? E=[1] Paris: x JSON: {"a": 1}'
    (message,) = template.messages("q", [evidence("x")])
    assert message["role"] == "user"


def test_template_must_have_both_placeholders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="evidence"):
        PromptTemplate("Question: {question}")
    path = tmp_path / "prompt.txt"
    path.write_text("E: {evidence}\nQ: {question}")
    settings = Settings(
        generation_base_url="http://x", generation_model="m", generation_prompt_file=str(path)
    )
    assert PromptTemplate.from_settings(settings).template == "E: {evidence}\nQ: {question}"
    missing = settings.model_copy(update={"generation_prompt_file": str(tmp_path / "absent.txt")})
    with pytest.raises(ConfigError, match=r"absent\.txt"):
        PromptTemplate.from_settings(missing)
    assert PromptTemplate.from_settings(Settings()).template == DEFAULT_TEMPLATE


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"generation_mode": "generative"}, "RAG_GENERATION_BASE_URL"),
        ({"generation_expansions": 2}, "RAG_GENERATION_BASE_URL"),
        ({"generation_self_query": True}, "RAG_GENERATION_BASE_URL"),
        ({"generation_base_url": "http://x"}, "RAG_GENERATION_MODEL"),
        (
            {
                "generation_base_url": "http://x",
                "generation_model": "m",
                "generation_prompt": "{question}{evidence}",
                "generation_prompt_file": "p.txt",
            },
            "not both",
        ),
        ({"generation_retries": -1}, "generation_retries"),
        ({"generation_timeout_seconds": 0}, "generation_timeout_seconds"),
    ],
)
def test_settings_that_cannot_work_fail_at_startup(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**changes)


def test_empty_base_url_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_GENERATION_BASE_URL", "")
    monkeypatch.setenv("RAG_GENERATION_API_KEY", "k3y")
    settings = Settings()
    assert settings.generation_base_url is None and "k3y" not in settings.model_dump_json()
