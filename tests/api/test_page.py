"""`GET /` in a real headless Chromium, served as users start it (`make run`): ask, see the answer, click a
citation and see it highlighted in its document. With `RAG_API_KEY` set the page asks for the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rag_testkit.browser import Page, chromium
from rag_testkit.launch import Service, make_run

QUESTION = "When was the Eiffel Tower completed?"
KEY = "page-test-key"


@pytest.fixture(scope="module")
def browser() -> Iterator[Page]:
    with chromium() as page:
        yield page


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, sample_bundle: Path) -> Iterator[Service]:
    served = make_run(tmp_path_factory.mktemp("page"), bundle=sample_bundle)
    yield served
    served.stop()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, sample_bundle: Path) -> Iterator[Service]:
    served = make_run(tmp_path_factory.mktemp("page-key"), bundle=sample_bundle, env={"RAG_API_KEY": KEY})
    yield served
    served.stop()


def ask(page: Page, question: str) -> None:
    page.evaluate(
        f"document.getElementById('question').value = {question!r}; "
        "document.querySelector('#ask button').click(); true"
    )


def open_first_citation(page: Page) -> tuple[str, str]:
    """(the first evidence's quote, the highlighted span after clicking it)."""
    quote = page.wait_for("document.querySelector('#evidence li .quote')?.textContent")
    page.evaluate("document.querySelector('#evidence li').click(); true")
    cited = page.wait_for("document.getElementById('cited')?.textContent")
    return quote, cited


def test_ask_then_click_a_citation_highlights_it_in_its_document(browser: Page, service: Service) -> None:
    browser.goto(f"{service.url}/")
    ask(browser, QUESTION)
    quote, cited = open_first_citation(browser)
    evidence = httpx.post(f"{service.url}/answer", json={"question": QUESTION}, timeout=30).json()[
        "evidence"
    ][0]
    assert quote == f"“{evidence['text']}”" and cited == evidence["text"]
    shown = browser.evaluate("document.getElementById('document').textContent")
    assert cited in shown and len(shown) > len(cited)  # the span in its context
    assert browser.evaluate("document.getElementById('document-title').textContent") == evidence["title"]


def test_an_off_topic_question_shows_the_abstention(browser: Page, service: Service) -> None:
    browser.goto(f"{service.url}/")
    ask(browser, "Who won the 1998 World Cup?")
    text = browser.wait_for("document.getElementById('abstained')?.textContent")
    assert text.startswith("No answer: ")


def test_with_an_api_key_the_page_asks_for_it_then_answers(browser: Page, keyed: Service) -> None:
    assert httpx.post(f"{keyed.url}/answer", json={"question": QUESTION}, timeout=30).status_code == 401
    browser.goto(f"{keyed.url}/")
    ask(browser, QUESTION)
    browser.wait_for("!document.getElementById('key-box').hidden")
    browser.evaluate(
        f"document.getElementById('key').value = {KEY!r}; "
        "document.querySelector('#key-box button').click(); true"
    )
    quote, cited = open_first_citation(browser)
    assert cited and cited in quote
