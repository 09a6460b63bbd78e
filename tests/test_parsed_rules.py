"""Parsed rules are kept per (segment, generation, declarations) and never used for other
rules (worker.parsed_rules)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from worker.parsed_rules import ParsedRules
from worker.rules import FieldRegistry, RulesInvalid
from worker.store import SegmentRules

_COUNTRY = {"all": [{"kind": "field", "field": "country", "operator": "equals", "value": "FR"}]}
_SCORE = {"all": [{"kind": "field", "field": "score", "operator": "is_not_null"}]}


def _segment(rules: Any, generation: int = 1, segment_id: uuid.UUID | None = None) -> SegmentRules:
    return SegmentRules(
        segment_id or uuid.UUID(int=1), uuid.UUID(int=2), generation, "v2", rules, (), "UTC"
    )


def test_a_tree_is_parsed_once_and_equals_a_fresh_parse() -> None:
    parsed, registry = ParsedRules(), FieldRegistry.builtin_only()
    first = parsed.tree(_segment(_COUNTRY), registry)
    assert parsed.tree(_segment(dict(_COUNTRY)), registry) is first
    assert first == _segment(_COUNTRY).tree(registry)
    query = parsed.query(_segment(_COUNTRY), registry, datetime(2026, 1, 1, tzinfo=UTC))
    assert query == _segment(_COUNTRY).query(registry, datetime(2026, 1, 1, tzinfo=UTC))


def test_other_rules_generation_or_declarations_are_parsed_again() -> None:
    parsed = ParsedRules()
    numeric = FieldRegistry.from_declarations({"score": "number"})
    textual = FieldRegistry.from_declarations({"score": "text"})
    kept = parsed.tree(_segment(_SCORE), numeric)
    # The same segment and generation with other rules (never the API's doing): not reused.
    other = parsed.tree(_segment(_COUNTRY), numeric)
    assert other != kept and other == _segment(_COUNTRY).tree(numeric)
    assert parsed.tree(_segment(_SCORE, generation=2), numeric) == kept
    # A retyped custom field changes the tree.
    assert parsed.tree(_segment(_SCORE), textual) == _segment(_SCORE).tree(textual) != kept


def test_rules_that_no_longer_parse_raise_every_time() -> None:
    parsed = ParsedRules()
    for _ in range(2):
        with pytest.raises(RulesInvalid):
            parsed.tree(_segment(_SCORE), FieldRegistry.builtin_only())
    assert len(parsed) == 0


def test_the_least_recently_used_tree_goes_first() -> None:
    parsed, registry = ParsedRules(max_entries=2), FieldRegistry.builtin_only()
    a, b, c = (_segment(_COUNTRY, segment_id=uuid.UUID(int=n)) for n in (10, 11, 12))
    tree_a = parsed.tree(a, registry)
    parsed.tree(b, registry)
    assert parsed.tree(a, registry) is tree_a  # a used last: b goes
    parsed.tree(c, registry)
    assert len(parsed) == 2
    assert parsed.tree(a, registry) is tree_a
