"""Self-query: the LLM maps a question to a metadata filter over the bundle's known fields and values.

The request asks for JSON constrained by a JSON schema that enumerates every allowed value (servers that
support `response_format: json_schema` — vLLM, llama.cpp, OpenAI — enforce it while decoding). The reply is
still never trusted: unknown fields and values are dropped, values are mapped to their exact spelling in the
bundle, and a filter on a field the request already filters is ignored (the request wins).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..index import Bundle

__all__ = ["FilterSchema", "merge_filters", "parse_filter", "self_query_messages"]

# Identity fields would turn search into lookup by name, and have one value per document.
_EXCLUDED = frozenset({"doc_id", "title"})
_MAX_VALUES = 100  # a field with more distinct values is not a category; listing them would bloat the prompt

SELF_QUERY_PROMPT = """A search runs over documents with these metadata fields and allowed values:
{fields}

If the question below clearly restricts the search to some of these values, reply with a JSON object that maps \
each such field to one allowed value or a list of allowed values. Otherwise reply with {}. Reply with JSON only.

Question: {question}"""

_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class FilterSchema:
    """Filterable fields: field → (casefolded value → the value as the bundle spells it)."""

    fields: dict[str, dict[str, str]]

    @classmethod
    def of(cls, bundle: Bundle) -> FilterSchema:
        # The same flattening as the bundle's own filter index: lists count per item, scalars as strings.
        values: dict[str, set[str]] = defaultdict(set)
        for metadata in bundle.documents.metadata:  # not the documents: their texts stay in the store
            for key, value in metadata.items():
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str | int | float | bool):
                        values[key].add(str(item))
        known = bundle.filter_fields()
        return cls(
            {
                name: {v.casefold(): v for v in sorted(found)}
                for name, found in sorted(values.items())
                if name in known and name not in _EXCLUDED and 2 <= len(found) <= _MAX_VALUES
            }
        )

    def describe(self) -> str:
        return "\n".join(
            f"- {name}: {', '.join(map(json.dumps, vals.values()))}" for name, vals in self.fields.items()
        )

    def json_schema(self) -> dict[str, Any]:
        properties = {}
        for name, vals in self.fields.items():
            enum = {"type": "string", "enum": list(vals.values())}
            properties[name] = {"anyOf": [enum, {"type": "array", "items": enum, "minItems": 1}]}
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def response_format(self) -> dict[str, Any]:
        return {"type": "json_schema", "json_schema": {"name": "filters", "schema": self.json_schema()}}

    def validate(self, proposed: Any) -> dict[str, list[str]]:
        """Only known fields with known values (mapped to the bundle's spelling); everything else dropped."""
        if not isinstance(proposed, dict):
            return {}
        out: dict[str, list[str]] = {}
        for name, value in proposed.items():
            allowed = self.fields.get(name) if isinstance(name, str) else None
            if allowed is None:
                continue
            items = value if isinstance(value, list) else [value]
            kept = []
            for item in items:
                if isinstance(item, str | int | float) and not isinstance(item, bool):
                    canonical = allowed.get(str(item).strip().casefold())
                    if canonical is not None and canonical not in kept:
                        kept.append(canonical)
            if kept:
                out[name] = kept
        return out


def self_query_messages(question: str, schema: FilterSchema) -> list[dict[str, str]]:
    content = SELF_QUERY_PROMPT.replace("{fields}", schema.describe()).replace(
        "{question}", " ".join(question.split())
    )
    return [{"role": "user", "content": content}]


def parse_filter(text: str, schema: FilterSchema) -> dict[str, list[str]]:
    """The validated filter in a reply (a JSON object, possibly inside prose or a code fence); {} if none."""
    match = _OBJECT.search(text)
    if match is None:
        return {}
    try:
        return schema.validate(json.loads(match.group(0)))
    except ValueError:
        return {}


def merge_filters(
    requested: dict[str, Any] | None, proposed: dict[str, list[str]]
) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    """(filters to apply, the proposed ones actually added): the request's own filters always win."""
    added = {name: values for name, values in proposed.items() if not requested or name not in requested}
    if not added:
        return requested, {}
    return {**(requested or {}), **added}, added
