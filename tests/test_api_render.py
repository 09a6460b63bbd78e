"""Rules shown across dialects (worker.rules.dialects): pure, no IO."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from worker.rules import (
    FieldRegistry,
    UnknownDialect,
    canonical_groups,
    parse_rules,
    parse_simple_rules,
    parse_v1_rules,
    parse_v2_rules,
    simple_rules,
    v1_rules,
    v2_rules,
)
from worker.store import SegmentRules


def field(name: str, operator: str, value: Any = None) -> dict[str, Any]:
    condition: dict[str, Any] = {"kind": "field", "field": name, "operator": operator}
    if value is not None:
        condition["value"] = value
    return condition


def v2(*groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {"any": [{"all": group} for group in groups]}


ACTIVITY = {
    "kind": "activity",
    "metric": "open",
    "operator": "count_gte",
    "value": 3,
    "days_window": {"mode": "last", "days": 90},
}


def test_each_dialect_is_shown_as_written_in_its_own_api() -> None:
    rules_v1 = {"matchType": "any", "filters": [{"field": "city", "operator": "exists"}]}
    rules_simple = [{"field": "city", "operator": "before", "value": "x"}]
    rules_v2 = v2([field("city", "is_null")])
    assert v1_rules("v1", rules_v1) == ("any", rules_v1["filters"])
    assert simple_rules("simple", rules_simple) is rules_simple
    assert v2_rules("v2", rules_v2) is rules_v2


def test_one_group_is_match_type_all() -> None:
    rules = v2([field("opens_count", "gte", 3), field("last_open_at", "within_days", 90)])
    assert v1_rules("v2", rules) == (
        "all",
        [
            {"field": "opens_count", "operator": "gte", "value": 3},
            {"field": "last_open_at", "operator": "within_days", "value": 90},
        ],
    )


def test_single_condition_groups_are_match_type_any_with_v1_operators() -> None:
    rules = v2(
        [field("status", "equals", "a")],
        [field("status", "not_equals", "b")],
        [field("city", "is_not_null")],
        [field("city", "is_null")],
    )
    assert v1_rules("v2", rules) == (
        "any",
        [
            {"field": "status", "operator": "eq", "value": "a"},
            {"field": "status", "operator": "neq", "value": "b"},
            {"field": "city", "operator": "exists", "value": None},
            {"field": "city", "operator": "not_exists", "value": None},
        ],
    )


def test_what_v1_cannot_say_keeps_canonical_names_and_nests_groups() -> None:
    rules = v2(
        [field("tags", "has_any", ["vip"]), ACTIVITY],
        [{"kind": "membership", "operator": "in", "list_ids": ["l1"]}],
    )
    match_type, filters = v1_rules("v2", rules)
    assert match_type == "any"
    assert filters == [
        {
            "field": "_all",
            "operator": "all",
            "value": [
                {"field": "tags", "operator": "has_any", "value": ["vip"]},
                {
                    "field": "_activity",
                    "operator": "count_gte",
                    "value": {"metric": "open", "value": 3, "days_window": ACTIVITY["days_window"]},
                },
            ],
        },
        {"field": "_membership", "operator": "in", "value": {"list_ids": ["l1"]}},
    ]


def test_simple_shows_one_group_anded_and_several_as_one_any_rule() -> None:
    one = v2([field("created_at", "gt", "2026-01-01"), field("company", "starts_with", "A")])
    assert simple_rules("v2", one) == [
        {"field": "created_at", "operator": "after", "value": "2026-01-01"},
        {"field": "company", "operator": "starts_with", "value": "A"},
    ]
    several = v2([field("city", "equals", "x")], [field("city", "equals", "y")])
    assert simple_rules("v2", several) == [
        {
            "field": "_any",
            "operator": "any",
            "value": [
                [{"field": "city", "operator": "equals", "value": "x"}],
                [{"field": "city", "operator": "equals", "value": "y"}],
            ],
        }
    ]


def test_v1_and_simple_rules_convert_to_equivalent_v2() -> None:
    registry = FieldRegistry.builtin_only()
    v1 = {
        "matchType": "any",
        "filters": [
            {"field": "opens_count", "operator": "gte", "value": 3},
            {"field": "city", "operator": "not_exists", "value": None},
        ],
    }
    assert parse_v2_rules(v2_rules("v1", v1), registry) == parse_v1_rules(v1, registry)
    simple = [
        {"field": "created_at", "operator": "before", "value": "2026-01-01"},
        {"field": "company", "operator": "not_contains", "value": "Inc"},
    ]
    assert parse_v2_rules(v2_rules("simple", simple), registry) == parse_simple_rules(
        simple, registry
    )
    # ... and back: v2 -> simple round-trips to the same tree.
    assert parse_simple_rules(simple_rules("v2", v2_rules("simple", simple)), registry) == (
        parse_simple_rules(simple, registry)
    )


def test_malformed_stored_rules_show_as_empty_not_errors() -> None:
    for dialect, rules in (("v2", {"any": "x"}), ("v1", [1]), ("simple", {"a": 1})):
        assert canonical_groups(dialect, rules) == []
        assert v1_rules("v2", rules) == ("all", [])


# == an unknown dialect is an error, never read as another one ================================
SIMPLE_SHAPED = [{"field": "city", "operator": "equals", "value": "x"}]
UNKNOWN = "unknown rules dialect 'v9'; expected one of v2, v1, simple"


@pytest.mark.parametrize("show", [canonical_groups, v2_rules, v1_rules, simple_rules])
def test_showing_rules_of_an_unknown_dialect_is_an_error(show: Callable[[str, Any], Any]) -> None:
    with pytest.raises(UnknownDialect, match=UNKNOWN):
        show("v9", SIMPLE_SHAPED)


def test_parsing_rules_of_an_unknown_dialect_is_an_error() -> None:
    registry = FieldRegistry.builtin_only()
    assert parse_rules("simple", SIMPLE_SHAPED, registry).conditions()  # the same rules parse
    with pytest.raises(UnknownDialect, match=UNKNOWN) as info:
        parse_rules("v9", SIMPLE_SHAPED, registry)
    assert info.value.name == "v9"


def test_a_stored_segment_of_an_unknown_dialect_has_no_query() -> None:
    segment = SegmentRules(uuid4(), uuid4(), 1, "Simple", SIMPLE_SHAPED, (), "UTC")
    with pytest.raises(UnknownDialect, match="unknown rules dialect 'Simple'"):
        segment.query(FieldRegistry.builtin_only(), datetime.now(UTC))


# == nested trees (docs/rules.md) in the other dialects ======================================
CITY = {"kind": "field", "field": "city", "operator": "equals", "value": "Paris"}
OLD = {"kind": "field", "field": "created_at", "operator": "lt", "value": "2026-01-01"}
OPENED = {"kind": "activity", "metric": "open", "operator": "ever"}
V1_CITY = {"field": "city", "operator": "eq", "value": "Paris"}
V1_OLD = {"field": "created_at", "operator": "lt", "value": "2026-01-01"}


def test_a_single_all_or_any_of_conditions_is_plain_v1() -> None:
    assert v1_rules("v2", {"all": [CITY, OLD]}) == ("all", [V1_CITY, V1_OLD])
    assert v1_rules("v2", {"any": [CITY, OLD]}) == ("any", [V1_CITY, V1_OLD])
    # The first release's equivalent is shown as it always was.
    assert v1_rules("v2", {"any": [{"all": [CITY, OLD]}]}) == ("all", [V1_CITY, V1_OLD])


def test_a_nested_tree_shows_its_inner_nodes_as_pseudo_filters() -> None:
    rules = {"all": [CITY, {"not": {"any": [OLD, OPENED]}}]}
    opened = {"field": "_activity", "operator": "ever", "value": {"metric": "open"}}
    inner = {"field": "_any", "operator": "any", "value": [V1_OLD, opened]}
    shown = ("all", [V1_CITY, {"field": "_not", "operator": "not", "value": inner}])
    assert v1_rules("v2", rules) == shown
    simple_old = {"field": "created_at", "operator": "before", "value": "2026-01-01"}
    simple_inner = {**inner, "value": [simple_old, opened]}
    assert simple_rules("v2", rules) == [
        {"field": "city", "operator": "equals", "value": "Paris"},
        {"field": "_not", "operator": "not", "value": simple_inner},
    ]
    assert simple_rules("v2", {"any": [CITY, {"not": OLD}]}) == [
        {
            "field": "_any",
            "operator": "any",
            "value": [
                {"field": "city", "operator": "equals", "value": "Paris"},
                {"field": "_not", "operator": "not", "value": simple_old},
            ],
        }
    ]
    # Shown in v2, any tree is returned exactly as written.
    assert v2_rules("v2", rules) == rules
    assert canonical_groups("v2", rules) == []  # no flat reading: never a different meaning
