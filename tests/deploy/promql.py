"""What a PromQL expression names: metrics, their label matchers, and grouping labels.

Run on the text Prometheus itself printed (/api/v1/format_query), so spacing and quoting are canonical.
A small scanner, not a parser: it handles the constructs of our rules and dashboard, and the tests that use
it also assert it found something in every query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Names", "names"]

_STRING = r'"(?:[^"\\]|\\.)*"'
_MATCHER = re.compile(rf"\s*(?P<label>[a-zA-Z_]\w*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>{_STRING})\s*,?")
_SELECTOR = re.compile(rf"(?P<name>(?<![\w:])[a-zA-Z_:][\w:]*)?\{{(?P<matchers>(?:[^{{}}\"]|{_STRING})*)\}}")
_GROUPING = re.compile(
    r"\b(?P<keyword>by|without|on|ignoring|group_left|group_right)\s*\((?P<labels>[^)]*)\)"
)
_IDENTIFIER = re.compile(r"(?<![\w:.])[a-zA-Z_:][\w:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}


@dataclass
class Names:
    metrics: set[str] = field(default_factory=set)
    # (metric, label, operator, value) for every label matcher of a named metric
    matchers: list[tuple[str, str, str, str]] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)


def names(query: str) -> Names:
    found = Names()
    for grouping in _GROUPING.finditer(query):
        found.grouping |= {label.strip() for label in grouping["labels"].split(",") if label.strip()}
    rest = _GROUPING.sub(" ", query)
    for selector in _SELECTOR.finditer(rest):
        metric = selector["name"]
        if metric is None:
            raise ValueError(f"a selector without a metric name: {selector[0]!r}")
        found.metrics.add(metric)
        for matcher in _MATCHER.finditer(selector["matchers"]):
            value = matcher["value"][1:-1].encode().decode("unicode_escape")
            found.matchers.append((metric, matcher["label"], matcher["op"], value))
    rest = _SELECTOR.sub(" ", rest)
    rest = re.sub(_STRING, " ", rest)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # range and subquery durations
    rest = re.sub(r"\boffset\s+\S+", " ", rest)
    for identifier in _IDENTIFIER.finditer(rest):
        following = rest[identifier.end() :].lstrip()[:1]
        if following == "(" or identifier[0].lower() in _KEYWORDS:
            continue  # a function or aggregation, or an operator keyword
        found.metrics.add(identifier[0])
    return found
