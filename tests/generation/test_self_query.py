"""Self-query filters: the schema comes from the bundle; whatever the LLM says is validated against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.generation.self_query import FilterSchema, merge_filters, parse_filter, self_query_messages
from rag.index import Bundle


@pytest.fixture(scope="module")
def schema(sample_bundle: Path) -> FilterSchema:
    return FilterSchema.of(Bundle.load(sample_bundle))


def test_schema_lists_categorical_fields_not_identity_fields(schema: FilterSchema) -> None:
    assert set(schema.fields) == {"tags", "source"}
    assert list(schema.fields["tags"].values()) == ["biology", "botany"]
    props = schema.json_schema()["properties"]
    assert props["tags"]["anyOf"][0]["enum"] == ["biology", "botany"]
    (message,) = self_query_messages("roots?", schema)
    assert '- tags: "biology", "botany"' in message["content"] and "Question: roots?" in message["content"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"tags": "botany"}', {"tags": ["botany"]}),
        ('Sure! ```json\n{"tags": ["Biology", "BOTANY", "botany"]}\n```', {"tags": ["biology", "botany"]}),
        ('{"tags": "astronomy"}', {}),  # unknown value
        ('{"colour": "red", "doc_id": "roots", "title": "Roots"}', {}),  # unknown / identity fields
        ('{"tags": {"not": "biology"}}', {}),  # operators are not the LLM's to use
        ('{"tags": [true, 3, null, "botany"]}', {"tags": ["botany"]}),
        ('["tags", "botany"]', {}),
        ("{not json}", {}),
        ("no filter applies", {}),
        ("{}", {}),
    ],
)
def test_replies_are_validated_never_trusted(schema: FilterSchema, reply: str, expected: dict) -> None:
    assert parse_filter(reply, schema) == expected


def test_request_filters_win() -> None:
    assert merge_filters(None, {}) == (None, {})
    assert merge_filters({"tags": "biology"}, {"tags": ["botany"]}) == ({"tags": "biology"}, {})
    applied, added = merge_filters({"tags": "biology"}, {"source": ["a.txt"]})
    assert applied == {"tags": "biology", "source": ["a.txt"]} and added == {"source": ["a.txt"]}
