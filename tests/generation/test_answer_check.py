"""The post-check: every sentence cited, only given evidence cited, every number in a cited sentence."""

from __future__ import annotations

import pytest

from rag.generation.check import check_answer, split_answer

EVIDENCE = [
    "The Eiffel Tower was completed in 1889.",
    "It is 330 metres tall.",
    "Water boils at 100 degrees Celsius at sea level.",
]


@pytest.mark.parametrize(
    ("text", "cited"),
    [
        ("The tower was completed in 1889 [1].", [1]),
        ("The tower was completed in 1889 [1]. It is 330 metres tall [2].", [1, 2]),
        ("The tower was completed in 1889.[1] It is 330 metres tall. [2]", [1, 2]),
        ("Completed in 1889 and 330 metres tall [1][2].", [1, 2]),
        ("Completed in 1889 and 330 metres tall [2, 1].", [2, 1]),
        ("Completed in 1889, 330 metres tall, water boils at 100 [1-3].", [1, 2, 3]),
        ("It stands 330 metres tall [2]\n\nIt was finished in 1889 [1].", [2, 1]),
        ("It was finished in 1,889 [1].", [1]),  # thousands separators normalise, as in the safeguard
    ],
)
def test_grounded_answers_pass(text: str, cited: list[int]) -> None:
    result = check_answer(text, EVIDENCE)
    assert result.ok, result
    assert result.cited == cited


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty_answer"),
        ("[1]", "empty_answer"),
        ("The tower was completed in 1889 [1]. It is famous.", "uncited_sentence"),
        ("It is famous. The tower was completed in 1889 [1].", "uncited_sentence"),
        ("The tower was completed in 1889.", "uncited_sentence"),
        ("The tower was completed in 1889 [4].", "unknown_citation"),
        ("The tower was completed in 1889 [0].", "unknown_citation"),
        ("The tower was completed in 1889 [1-999].", "unknown_citation"),
        ("The tower was completed in 1887 [1].", "unsupported_number"),
        # the number is in the evidence, but not in the sentence this one cites
        ("The tower was completed in 1889 [2].", "unsupported_number"),
        ("It is 330 metres tall [2]. It was completed in 1889 and cost 7 million [1].", "unsupported_number"),
    ],
)
def test_failures_name_the_rule(text: str, reason: str) -> None:
    result = check_answer(text, EVIDENCE)
    assert not result.ok and result.reason == reason, result
    assert result.detail


def test_citation_digits_are_not_numbers_of_the_answer() -> None:
    # "[2]" must not count as the number 2 that the cited sentence lacks
    assert check_answer("It is 330 metres tall [2].", EVIDENCE).ok


def test_markers_after_the_full_stop_belong_to_the_sentence_before() -> None:
    assert split_answer("First fact. [1] Second fact [2].") == ["First fact. [1]", "Second fact [2]."]
    assert split_answer("First fact.[1][2] Second fact. [3]") == ["First fact. [1][2]", "Second fact. [3]"]
