"""The rule language at the boundary (docs/rules.md): what each dialect accepts, the typed
tree it becomes, and for every invalid input the exact dotted location and error type.

No database: these are the pure parsers of worker.rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, get_args
from uuid import UUID

import pytest

from worker.rules import (
    ActivityCondition,
    FieldCondition,
    FieldRegistry,
    IspCondition,
    MembershipCondition,
    RulesInvalid,
    RuleTree,
    parse_simple_rules,
    parse_v1_rules,
    parse_v2_rules,
    simple,
)
from worker.rules.fields import (
    ALL_FIELD_OPERATORS,
    BUILTIN_FIELDS,
    OPERATORS_BY_TYPE,
    FieldSource,
    FieldType,
)
from worker.rules.limits import (
    MAX_ARRAY_ITEMS,
    MAX_CONDITIONS,
    MAX_CONDITIONS_PER_GROUP,
    MAX_DAYS,
    MAX_FIELD_NAME_LENGTH,
    MAX_GROUPS,
    MAX_RULES_BYTES,
    MAX_SIMPLE_RULES,
    MAX_STRING_LENGTH,
    MAX_V1_FILTERS,
)
from worker.rules.tree import CalendarPeriod, DaysWindow

REGISTRY = FieldRegistry.from_declarations(
    {
        "nickname": "text",
        "score": "number",
        "birthday": "datetime",
        "vip": "boolean",
        "hobbies": "list",
    }
)
LIST_A = UUID("0fd3d5b4-1c0a-4e91-8a4f-0f17dc6dc5ab")
LIST_B = UUID("6c1d8e0a-95a3-4c4e-9d0e-2f6f3f7e1b22")
CAMPAIGN = "5f1e2b7c-7d0c-4b5e-8a59-3f2c1d0e9a11"
OTHER_CAMPAIGN = "5f1e2b7c-7d0c-4b5e-8a59-3f2c1d0e9a12"
ABSENT: Any = object()
LONG = "x" * (MAX_STRING_LENGTH + 1)
GOOD = {"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"}

# A representative field of each type, built in and custom.
FIELDS_BY_TYPE = {
    FieldType.TEXT: ["email", "nickname"],
    FieldType.NUMBER: ["opens_count", "score"],
    FieldType.DATETIME: ["created_at", "last_open_at", "birthday"],
    FieldType.BOOLEAN: ["vip"],
    FieldType.LIST: ["tags", "hobbies"],
}


def field(name: str, operator: str, value: Any = ABSENT, **extra: Any) -> dict[str, Any]:
    cond: dict[str, Any] = {"kind": "field", "field": name, "operator": operator, **extra}
    if value is not ABSENT:
        cond["value"] = value
    return cond


def activity(operator: str, value: Any = ABSENT, **extra: Any) -> dict[str, Any]:
    cond: dict[str, Any] = {"kind": "activity", "metric": "open", "operator": operator, **extra}
    if value is not ABSENT:
        cond["value"] = value
    return cond


def deliverability(operator: str, value: Any = ABSENT, **extra: Any) -> dict[str, Any]:
    cond = {"kind": "deliverability", "metric": "bounce", "operator": operator, **extra}
    if value is not ABSENT:
        cond["value"] = value
    return cond


def v2(*conditions: Any) -> dict[str, Any]:
    return {"any": [{"all": list(conditions)}]}


def errors_of(parse: Callable[[], RuleTree]) -> list[tuple[str, str]]:
    with pytest.raises(RulesInvalid) as info:
        parse()
    return [(e.loc, e.type) for e in info.value.errors]


def v2_errors(body: Any, **kwargs: Any) -> list[tuple[str, str]]:
    return errors_of(lambda: parse_v2_rules(body, REGISTRY, **kwargs))


def v1_errors(body: Any) -> list[tuple[str, str]]:
    return errors_of(lambda: parse_v1_rules(body, REGISTRY))


def simple_errors(rules: Any) -> list[tuple[str, str]]:
    return errors_of(lambda: parse_simple_rules(rules, REGISTRY))


def only(tree: RuleTree) -> Any:
    """The single condition of a one-condition tree."""
    assert len(tree.flat_groups()) == 1 and len(tree.flat_groups()[0]) == 1
    return tree.flat_groups()[0][0]


# == v2: every invalid condition ==============================================================
# Each bad condition is placed third in the second group, so its location is
# rules_json.any[1].all[2] and a wrong index anywhere in the path shows.
BAD_AT = "rules_json.any[1].all[2]"


def _case(id_: str, condition: Any, where: str, type_: str) -> Any:
    return pytest.param(condition, where, type_, id=id_)


INVALID_CONDITIONS = [
    # -- kinds and shapes
    _case("kind-unknown", {"kind": "cohort"}, ".kind", "unknown_kind"),
    _case("kind-not-a-string", {"kind": 5, "field": "email"}, ".kind", "unknown_kind"),
    _case("kind-missing", {"field": "email", "operator": "is_null"}, ".kind", "missing"),
    _case("condition-is-a-number", 1, "", "condition_type"),
    _case("condition-is-a-string", "email equals x", "", "condition_type"),
    _case("condition-is-an-array", [GOOD], "", "condition_type"),
    _case("condition-is-null", None, "", "condition_type"),
    # -- field names
    _case("field-unknown", field("favourite_color", "is_null"), ".field", "unknown_field"),
    _case("field-empty", field("", "is_null"), ".field", "string_too_short"),
    _case("field-not-a-string", field(5, "is_null"), ".field", "string_type"),  # type: ignore[arg-type]
    _case("field-missing", {"kind": "field", "operator": "is_null"}, ".field", "missing"),
    _case(
        "field-name-too-long",
        field("f" * (MAX_FIELD_NAME_LENGTH + 1), "is_null"),
        ".field",
        "string_too_long",
    ),
    # -- field operators
    _case("operator-unknown", field("email", "like", "x"), ".operator", "unknown_operator"),
    _case("operator-v1-spelling", field("email", "eq", "x"), ".operator", "unknown_operator"),
    _case("operator-missing", {"kind": "field", "field": "email"}, ".operator", "missing"),
    _case("operator-not-a-string", field("email", 7, "x"), ".operator", "string_type"),  # type: ignore[arg-type]
    _case(
        "operator-too-long",
        field("email", "o" * (MAX_FIELD_NAME_LENGTH + 1), "x"),
        ".operator",
        "string_too_long",
    ),
    _case("field-unknown-key", field("email", "is_null", extra=1), ".extra", "extra_forbidden"),
    # -- activity
    _case("activity-metric-unknown", activity("ever", metric="bounce"), ".metric", "literal_error"),
    _case("activity-count-without-value", activity("count_gte"), ".value", "missing"),
    _case("activity-count-null-value", activity("count_eq", None), ".value", "missing"),
    _case("activity-count-negative", activity("count_lte", -1), ".value", "greater_than_equal"),
    _case("activity-count-string", activity("count_gte", "1"), ".value", "int_type"),
    _case("activity-count-float", activity("count_gte", 1.0), ".value", "int_type"),
    _case("activity-count-bool", activity("count_gte", True), ".value", "int_type"),
    _case("activity-count-too-big", activity("count_gte", 2**31), ".value", "less_than_equal"),
    _case("activity-ever-with-value", activity("ever", 1), ".value", "value_forbidden"),
    _case("activity-never-with-zero", activity("never", 0), ".value", "value_forbidden"),
    _case(
        "activity-include-and-exclude",
        activity("ever", include_campaign_ids=[CAMPAIGN], exclude_campaign_ids=[OTHER_CAMPAIGN]),
        ".exclude_campaign_ids",
        "campaign_filters_conflict",
    ),
    _case(
        "activity-campaign-not-uuid",
        activity("ever", include_campaign_ids=[CAMPAIGN, "'; DROP TABLE events; --"]),
        ".include_campaign_ids[1]",
        "uuid_parsing",
    ),
    _case(
        "activity-campaign-ids-not-array",
        activity("ever", exclude_campaign_ids=CAMPAIGN),
        ".exclude_campaign_ids",
        "list_type",
    ),
    _case(
        "activity-too-many-campaigns",
        activity("ever", include_campaign_ids=[CAMPAIGN] * (MAX_ARRAY_ITEMS + 1)),
        ".include_campaign_ids",
        "too_long",
    ),
    _case("activity-unknown-key", activity("ever", campaigns=[]), ".campaigns", "extra_forbidden"),
    # -- days_window (activity and deliverability)
    _case(
        "days-zero",
        activity("ever", days_window={"mode": "last", "days": 0}),
        ".days_window.days",
        "greater_than_equal",
    ),
    _case(
        "days-negative",
        deliverability("ever", days_window={"mode": "more_than", "days": -5}),
        ".days_window.days",
        "greater_than_equal",
    ),
    _case(
        "days-over-max",
        activity("ever", days_window={"mode": "last", "days": MAX_DAYS + 1}),
        ".days_window.days",
        "less_than_equal",
    ),
    _case(
        "days-string",
        activity("ever", days_window={"mode": "last", "days": "30"}),
        ".days_window.days",
        "int_type",
    ),
    _case(
        "days-float",
        activity("ever", days_window={"mode": "last", "days": 30.0}),
        ".days_window.days",
        "int_type",
    ),
    _case(
        "days-missing",
        activity("ever", days_window={"mode": "last"}),
        ".days_window.days",
        "missing",
    ),
    _case(
        "days-window-mode-unknown",
        activity("ever", days_window={"mode": "next", "days": 3}),
        ".days_window.mode",
        "literal_error",
    ),
    _case(
        "days-window-unknown-key",
        activity("ever", days_window={"mode": "last", "days": 3, "units": "days"}),
        ".days_window.units",
        "extra_forbidden",
    ),
    # -- days_window mode calendar (docs/rules.md, timezones)
    _case(
        "calendar-window-unit-with-last",
        activity("ever", days_window={"mode": "last", "days": 3, "unit": "day"}),
        ".days_window.unit",
        "value_forbidden",
    ),
    _case(
        "calendar-window-without-unit",
        activity("ever", days_window={"mode": "calendar", "offset": 0}),
        ".days_window.unit",
        "missing",
    ),
    _case(
        "calendar-window-without-offset",
        activity("ever", days_window={"mode": "calendar", "unit": "week"}),
        ".days_window.offset",
        "missing",
    ),
    _case(
        "calendar-window-with-days",
        deliverability(
            "ever", days_window={"mode": "calendar", "unit": "day", "offset": 0, "days": 3}
        ),
        ".days_window.days",
        "value_forbidden",
    ),
    _case(
        "calendar-window-bad-unit",
        activity("ever", days_window={"mode": "calendar", "unit": "fortnight", "offset": 0}),
        ".days_window.unit",
        "literal_error",
    ),
    _case(
        "calendar-window-future",
        activity("ever", days_window={"mode": "calendar", "unit": "day", "offset": 1}),
        ".days_window.offset",
        "less_than_equal",
    ),
    _case(
        "calendar-window-too-far",
        activity("ever", days_window={"mode": "calendar", "unit": "day", "offset": -3651}),
        ".days_window.offset",
        "greater_than_equal",
    ),
    # -- in_calendar and anniversary_within_days (docs/rules.md, timezones)
    _case(
        "in-calendar-not-object",
        field("created_at", "in_calendar", "week"),
        ".value",
        "calendar_type",
    ),
    _case(
        "in-calendar-bad-unit",
        field("created_at", "in_calendar", {"unit": "days", "offset": 0}),
        ".value.unit",
        "calendar_unit",
    ),
    _case(
        "in-calendar-no-unit",
        field("created_at", "in_calendar", {"offset": 0}),
        ".value.unit",
        "calendar_unit",
    ),
    _case(
        "in-calendar-offset-ahead",
        field("created_at", "in_calendar", {"unit": "day", "offset": 1}),
        ".value.offset",
        "offset_range",
    ),
    _case(
        "in-calendar-offset-too-far",
        field("created_at", "in_calendar", {"unit": "year", "offset": -3651}),
        ".value.offset",
        "offset_range",
    ),
    _case(
        "in-calendar-offset-not-int",
        field("created_at", "in_calendar", {"unit": "year", "offset": "-1"}),
        ".value.offset",
        "int_type",
    ),
    _case(
        "in-calendar-unknown-key",
        field("created_at", "in_calendar", {"unit": "day", "offset": 0, "tz": "UTC"}),
        ".value.tz",
        "extra_forbidden",
    ),
    _case(
        "in-calendar-on-text",
        field("email", "in_calendar", {"unit": "day", "offset": 0}),
        ".operator",
        "operator_not_allowed",
    ),
    _case(
        "anniversary-too-many-days",
        field("created_at", "anniversary_within_days", 367),
        ".value",
        "days_range",
    ),
    _case(
        "anniversary-negative",
        field("created_at", "anniversary_within_days", -1),
        ".value",
        "days_range",
    ),
    _case(
        "anniversary-bool",
        field("created_at", "anniversary_within_days", True),
        ".value",
        "int_type",
    ),
    _case(
        "anniversary-on-number",
        field("opens_count", "anniversary_within_days", 7),
        ".operator",
        "operator_not_allowed",
    ),
    _case(
        "anniversary-of-latest-event",
        field("last_open_at", "anniversary_within_days", 7),
        ".operator",
        "operator_not_allowed",
    ),
    _case(
        "days-window-not-object",
        activity("ever", days_window=30),
        ".days_window",
        "model_type",
    ),
    # -- deliverability
    _case(
        "deliverability-metric-open",
        deliverability("ever", metric="open"),
        ".metric",
        "literal_error",
    ),
    _case("deliverability-count-without-value", deliverability("count_lte"), ".value", "missing"),
    _case(
        "deliverability-count-negative",
        deliverability("count_eq", -1),
        ".value",
        "greater_than_equal",
    ),
    _case(
        "deliverability-ever-with-value",
        deliverability("ever", 2),
        ".value",
        "value_forbidden",
    ),
    _case(
        "deliverability-has-no-campaign-filter",
        deliverability("ever", include_campaign_ids=[]),
        ".include_campaign_ids",
        "extra_forbidden",
    ),
    # -- membership
    _case(
        "membership-no-lists",
        {"kind": "membership", "operator": "in", "list_ids": []},
        ".list_ids",
        "too_short",
    ),
    _case(
        "membership-lists-missing",
        {"kind": "membership", "operator": "in"},
        ".list_ids",
        "missing",
    ),
    _case(
        "membership-list-not-uuid",
        {"kind": "membership", "operator": "in", "list_ids": [str(LIST_A), "list-1"]},
        ".list_ids[1]",
        "uuid_parsing",
    ),
    _case(
        "membership-too-many-lists",
        {"kind": "membership", "operator": "in", "list_ids": [str(LIST_A)] * 1001},
        ".list_ids",
        "too_long",
    ),
    _case(
        "membership-operator-unknown",
        {"kind": "membership", "operator": "equals", "list_ids": [str(LIST_A)]},
        ".operator",
        "literal_error",
    ),
    _case(
        "membership-unknown-key",
        {"kind": "membership", "operator": "in", "list_ids": [str(LIST_A)], "value": 1},
        ".value",
        "extra_forbidden",
    ),
    # -- isp
    _case("isp-no-values", {"kind": "isp", "operator": "in", "values": []}, ".values", "too_short"),
    _case(
        "isp-value-string",
        {"kind": "isp", "operator": "in", "values": [1, "2"]},
        ".values[1]",
        "int_type",
    ),
    _case(
        "isp-value-bool",
        {"kind": "isp", "operator": "in", "values": [True]},
        ".values[0]",
        "int_type",
    ),
    _case(
        "isp-value-float",
        {"kind": "isp", "operator": "not_in", "values": [1.5]},
        ".values[0]",
        "int_type",
    ),
    _case(
        "isp-value-out-of-int4",
        {"kind": "isp", "operator": "in", "values": [2**31]},
        ".values[0]",
        "less_than_equal",
    ),
    _case(
        "isp-too-many-values",
        {"kind": "isp", "operator": "in", "values": list(range(MAX_ARRAY_ITEMS + 1))},
        ".values",
        "too_long",
    ),
    _case(
        "isp-operator-unknown",
        {"kind": "isp", "operator": "is", "values": [1]},
        ".operator",
        "literal_error",
    ),
    _case(
        "isp-unknown-key",
        {"kind": "isp", "operator": "in", "values": [1], "names": ["Gmail"]},
        ".names",
        "extra_forbidden",
    ),
]


@pytest.mark.parametrize(("condition", "where", "type_"), INVALID_CONDITIONS)
def test_invalid_condition_is_reported_at_its_location(
    condition: Any, where: str, type_: str
) -> None:
    body = {"any": [{"all": [GOOD]}, {"all": [GOOD, GOOD, condition]}]}
    assert v2_errors(body) == [(BAD_AT + where, type_)]


# -- operators not allowed for the field's type (every type, every foreign operator) ----------
OPERATOR_NOT_ALLOWED = [
    pytest.param(name, op, id=f"{field_type}-{name}-{op}")
    for field_type, names in FIELDS_BY_TYPE.items()
    for name in names
    for op in sorted(ALL_FIELD_OPERATORS - OPERATORS_BY_TYPE[field_type])
]


@pytest.mark.parametrize(("name", "operator"), OPERATOR_NOT_ALLOWED)
def test_operator_not_allowed_for_field_type(name: str, operator: str) -> None:
    assert v2_errors(v2(field(name, operator, "x"))) == [
        ("rules_json.any[0].all[0].operator", "operator_not_allowed")
    ]


# -- values of the wrong type, missing or forbidden, per field type and operator family -------
TEXT_SCALAR = ["equals", "not_equals", "contains", "not_contains", "starts_with"]
NUMBER_SCALAR = ["equals", "not_equals", "gt", "gte", "lt", "lte"]
ORDERED = ["gt", "gte", "lt", "lte"]
ARRAY = ["in", "not_in"]
HAS = ["has_any", "has_all", "has_none"]
TOO_MANY = MAX_ARRAY_ITEMS + 1
# (operators, value, location after `.value`, error type, label) per field type.
VALUE_PROBLEMS: dict[FieldType, list[tuple[list[str], Any, str, str, str]]] = {
    FieldType.TEXT: [
        (TEXT_SCALAR, ABSENT, "", "string_type", "missing"),
        (TEXT_SCALAR, None, "", "string_type", "null"),
        (TEXT_SCALAR, 5, "", "string_type", "number"),
        (TEXT_SCALAR, True, "", "string_type", "bool"),
        (TEXT_SCALAR, ["a"], "", "string_type", "array"),
        (TEXT_SCALAR, {"a": 1}, "", "string_type", "object"),
        (TEXT_SCALAR, "", "", "string_empty", "empty"),
        (TEXT_SCALAR, LONG, "", "string_too_long", "too-long"),
        (TEXT_SCALAR, "a\x00b", "", "string_nul", "nul"),
        (TEXT_SCALAR, "a\ud800", "", "string_unicode", "lone-surrogate"),
        (ARRAY, ABSENT, "", "array_type", "missing"),
        (ARRAY, "a", "", "array_type", "scalar"),
        (ARRAY, [], "", "array_type", "empty-array"),
        (ARRAY, ["a", ""], "[1]", "string_empty", "empty-element"),
        (ARRAY, ["a", 5], "[1]", "string_type", "number-element"),
        (ARRAY, ["a", None], "[1]", "string_type", "null-element"),
        (ARRAY, ["a", LONG], "[1]", "string_too_long", "long-element"),
        (ARRAY, ["a"] * TOO_MANY, "", "array_too_long", "too-many"),
    ],
    FieldType.NUMBER: [
        (NUMBER_SCALAR, ABSENT, "", "number_type", "missing"),
        (NUMBER_SCALAR, "5", "", "number_type", "numeric-string"),
        (NUMBER_SCALAR, True, "", "number_type", "bool"),
        (NUMBER_SCALAR, [1], "", "number_type", "array"),
        (NUMBER_SCALAR, math.nan, "", "number_type", "nan"),
        (NUMBER_SCALAR, math.inf, "", "number_type", "infinity"),
        (ARRAY, 1, "", "array_type", "scalar"),
        (ARRAY, [], "", "array_type", "empty-array"),
        (ARRAY, [1, "2"], "[1]", "number_type", "string-element"),
        (ARRAY, [1, 2, False], "[2]", "number_type", "bool-element"),
        (ARRAY, [1] * TOO_MANY, "", "array_too_long", "too-many"),
    ],
    FieldType.DATETIME: [
        (ORDERED, ABSENT, "", "datetime_format", "missing"),
        (ORDERED, "yesterday", "", "datetime_format", "words"),
        (ORDERED, 1700000000, "", "datetime_format", "epoch-number"),
        (ORDERED, "2026-02-30", "", "datetime_format", "impossible-date"),
        (ORDERED, "2026-01-01T24:00:00Z", "", "datetime_format", "hour-24"),
        (ORDERED, "21/05/2026", "", "datetime_format", "day-first"),
        (ORDERED, "2026-01-01T10:00:00+15:00", "", "datetime_format", "offset-15h"),
        (ORDERED, "", "", "datetime_format", "empty"),
        (["within_days"], ABSENT, "", "int_type", "missing"),
        (["within_days"], "30", "", "int_type", "string"),
        (["within_days"], 30.0, "", "int_type", "float"),
        (["within_days"], True, "", "int_type", "bool"),
        (["within_days"], 0, "", "days_range", "zero"),
        (["within_days"], -1, "", "days_range", "negative"),
        (["within_days"], MAX_DAYS + 1, "", "days_range", "over-max"),
    ],
    FieldType.BOOLEAN: [
        (["equals", "not_equals"], ABSENT, "", "bool_type", "missing"),
        (["equals", "not_equals"], "true", "", "bool_type", "string"),
        (["equals", "not_equals"], 1, "", "bool_type", "number"),
    ],
    FieldType.LIST: [
        (HAS, ABSENT, "", "array_type", "missing"),
        (HAS, "vip", "", "array_type", "scalar"),
        (HAS, [], "", "array_type", "empty-array"),
        (HAS, ["vip", ""], "[1]", "string_empty", "empty-element"),
        (HAS, ["vip", 5], "[1]", "string_type", "number-element"),
        (HAS, ["vip", "a\x00"], "[1]", "string_nul", "nul-element"),
        (HAS, ["vip", LONG], "[1]", "string_too_long", "long-element"),
        (HAS, ["vip"] * TOO_MANY, "", "array_too_long", "too-many"),
    ],
}
# is_null / is_not_null take no value, whatever the type: any non-null value is forbidden.
NULL_OPS = ["is_null", "is_not_null"]
for _problems in VALUE_PROBLEMS.values():
    for _value, _label in (("x", "string"), (0, "zero"), (False, "false"), ([], "array")):
        _problems.append((NULL_OPS, _value, "", "value_forbidden", f"with-{_label}"))

VALUE_CASES = [
    pytest.param(name, op, value, at, type_, id=f"{name}-{op}-{label}")
    for field_type, problems in VALUE_PROBLEMS.items()
    for name in FIELDS_BY_TYPE[field_type]
    for ops, value, at, type_, label in problems
    for op in ops
]


@pytest.mark.parametrize(("name", "operator", "value", "at", "type_"), VALUE_CASES)
def test_bad_field_value_is_reported_at_the_value(
    name: str, operator: str, value: Any, at: str, type_: str
) -> None:
    assert v2_errors(v2(field(name, operator, value))) == [
        ("rules_json.any[0].all[0].value" + at, type_)
    ]


# -- the structure of the tree ---------------------------------------------------------------
STRUCTURE = [
    pytest.param([GOOD], "rules_json", "object_type", id="top-is-array"),
    pytest.param("any", "rules_json", "object_type", id="top-is-string"),
    pytest.param(None, "rules_json", "object_type", id="top-is-null"),
    pytest.param({}, "rules_json", "node_shape", id="any-missing"),
    pytest.param({"any": []}, "rules_json.any", "array_type", id="any-empty"),
    pytest.param({"all": []}, "rules_json.all", "array_type", id="all-empty-at-the-top"),
    pytest.param({"any": {"all": [GOOD]}}, "rules_json.any", "array_type", id="any-object"),
    pytest.param({"any": [{}]}, "rules_json.any[0]", "condition_type", id="node-empty-object"),
    pytest.param({"any": [5]}, "rules_json.any[0]", "condition_type", id="group-is-number"),
    pytest.param({"any": [[GOOD]]}, "rules_json.any[0]", "condition_type", id="group-is-array"),
    pytest.param({"any": [{"all": []}]}, "rules_json.any[0].all", "array_type", id="all-empty"),
    pytest.param({"any": [{"all": GOOD}]}, "rules_json.any[0].all", "array_type", id="all-object"),
    pytest.param(
        {"any": [{"all": [GOOD]}], "all": [GOOD]},
        "rules_json",
        "node_shape",
        id="top-any-and-all",
    ),
    pytest.param(
        {"any": [{"all": [GOOD]}], "or": [GOOD]},
        "rules_json.or",
        "extra_forbidden",
        id="top-unknown-key",
    ),
    pytest.param({"not": GOOD}, "rules_json.not", "extra_forbidden", id="top-is-not"),
    pytest.param(
        {"any": [{"all": [GOOD]}, {"all": [GOOD], "any": [GOOD]}]},
        "rules_json.any[1]",
        "node_shape",
        id="node-with-any-and-all",
    ),
    # -- nested trees (docs/rules.md)
    pytest.param(
        {"all": [GOOD, {"any": [GOOD, {"not": GOOD, "kind": "field"}]}]},
        "rules_json.all[1].any[1].kind",
        "extra_forbidden",
        id="unknown-key-in-a-not",
    ),
    pytest.param(
        {"all": [{"any": [GOOD], "or": []}]},
        "rules_json.all[0].or",
        "extra_forbidden",
        id="unknown-key-in-an-any",
    ),
    pytest.param(
        {"all": [GOOD, {"any": [{"all": [GOOD], "any": [GOOD]}]}]},
        "rules_json.all[1].any[0]",
        "node_shape",
        id="nested-node-with-any-and-all",
    ),
    pytest.param(
        {"all": [{"not": GOOD, "any": [GOOD]}]},
        "rules_json.all[0]",
        "node_shape",
        id="node-with-not-and-any",
    ),
    pytest.param(
        {"any": [{"all": [{"not": [GOOD]}]}]},
        "rules_json.any[0].all[0].not",
        "not_type",
        id="not-holding-a-list",
    ),
    pytest.param(
        {"all": [{"not": 5}]}, "rules_json.all[0].not", "condition_type", id="not-holding-a-number"
    ),
    pytest.param(
        {"all": [{"not": {}}]}, "rules_json.all[0].not", "condition_type", id="not-holding-{}"
    ),
    pytest.param(
        {"all": [GOOD, {"any": [GOOD, {"all": []}]}]},
        "rules_json.all[1].any[1].all",
        "array_type",
        id="empty-nested-all",
    ),
    pytest.param(
        {"all": [{"not": {"any": []}}]},
        "rules_json.all[0].not.any",
        "array_type",
        id="empty-any-under-not",
    ),
    pytest.param(
        # depth: all 1, not 2, any 3, all 4, not 5, any 6, not 7
        {"all": [{"not": {"any": [{"all": [{"not": {"any": [{"not": GOOD}]}}]}]}}]},
        "rules_json.all[0].not.any[0].all[0].not.any[0]",
        "too_deep",
        id="too-deep",
    ),
    pytest.param(
        {"all": [{"not": {"any": [{"all": [{"not": {"any": [GOOD, {"not": GOOD}]}}]}]}}]},
        "rules_json.all[0].not.any[0].all[0].not.any[1]",
        "too_deep",
        id="too-deep-in-the-second-child",
    ),
    pytest.param(
        {"all": [GOOD, {"any": [GOOD, {"not": field("email", "equals", 5)}]}]},
        "rules_json.all[1].any[1].not.value",
        "string_type",
        id="condition-error-deep-inside",
    ),
    pytest.param(
        {"any": [GOOD, {"all": [GOOD, {"any": [{"not": field("nope", "is_null")}]}]}]},
        "rules_json.any[1].all[1].any[0].not.field",
        "unknown_field",
        id="unknown-field-deep-inside",
    ),
    pytest.param(
        {"all": [{"any": [GOOD] * (MAX_GROUPS + 1)}]},
        "rules_json.all[0].any",
        "too_many_items",
        id="too-many-items-in-a-nested-any",
    ),
    pytest.param(
        {"all": [{"not": {"all": [GOOD] * 40}}] * 5 + [GOOD]},
        "rules_json.all",
        "too_many_conditions",
        id="too-many-conditions-over-the-nested-tree",
    ),
    pytest.param(
        {"any": [{"all": [GOOD]}] * (MAX_GROUPS + 1)},
        "rules_json.any",
        "too_many_items",
        id="too-many-groups",
    ),
    pytest.param(
        {"any": [{"all": [GOOD]}, {"all": [GOOD] * (MAX_CONDITIONS_PER_GROUP + 1)}]},
        "rules_json.any[1].all",
        "too_many_items",
        id="too-many-conditions-in-a-group",
    ),
    pytest.param(
        {"any": [{"all": [GOOD] * 40}] * 5 + [{"all": [GOOD]}]},
        "rules_json.any",
        "too_many_conditions",
        id="too-many-conditions-in-all",
    ),
]


@pytest.mark.parametrize(("body", "loc", "type_"), STRUCTURE)
def test_bad_structure_is_reported_at_its_location(body: Any, loc: str, type_: str) -> None:
    assert v2_errors(body) == [(loc, type_)]


def test_custom_location_prefix_is_used() -> None:
    assert v2_errors({"any": []}, loc="body.rules_json") == [("body.rules_json.any", "array_type")]


def test_list_ids_that_are_not_the_accounts_are_reported_each() -> None:
    foreign = "9b2f5b8e-3f5d-4f0e-b7a0-6f1f0f4b7c10"
    body = v2(
        {"kind": "membership", "operator": "in", "list_ids": [str(LIST_A), foreign]},
        {"kind": "membership", "operator": "not_in", "list_ids": [foreign, str(LIST_B)]},
    )
    assert v2_errors(body, known_list_ids={LIST_A, LIST_B}) == [
        ("rules_json.any[0].all[0].list_ids[1]", "unknown_list"),
        ("rules_json.any[0].all[1].list_ids[0]", "unknown_list"),
    ]
    assert v2_errors(body, known_list_ids=set()) == [
        ("rules_json.any[0].all[0].list_ids[0]", "unknown_list"),
        ("rules_json.any[0].all[0].list_ids[1]", "unknown_list"),
        ("rules_json.any[0].all[1].list_ids[0]", "unknown_list"),
        ("rules_json.any[0].all[1].list_ids[1]", "unknown_list"),
    ]


def test_list_ids_are_not_checked_without_known_list_ids() -> None:
    foreign = "9b2f5b8e-3f5d-4f0e-b7a0-6f1f0f4b7c10"
    body = v2({"kind": "membership", "operator": "in", "list_ids": [foreign]})
    assert only(parse_v2_rules(body, REGISTRY)).list_ids == (UUID(foreign),)


def test_multiple_errors_are_all_reported_at_once() -> None:
    body = {
        "any": [
            {"all": [GOOD, field("email", "equals", 5), field("nope", "is_null")]},
            {"all": [activity("count_gte"), {"kind": "isp", "operator": "in", "values": []}]},
            {"all": [GOOD], "or": []},
            {"all": [field("tags", "has_any", ["a", ""]), 7]},
        ]
    }
    assert v2_errors(body) == [
        ("rules_json.any[0].all[1].value", "string_type"),
        ("rules_json.any[0].all[2].field", "unknown_field"),
        ("rules_json.any[1].all[0].value", "missing"),
        ("rules_json.any[1].all[1].values", "too_short"),
        ("rules_json.any[2].or", "extra_forbidden"),
        ("rules_json.any[3].all[0].value[1]", "string_empty"),
        ("rules_json.any[3].all[1]", "condition_type"),
    ]
    # The same in a nested tree: document order, structure and conditions together.
    nested = {"all": [{"not": body}, {"any": [{"not": [GOOD]}, field("email", "equals", 5)]}]}
    assert v2_errors(nested) == [
        ("rules_json.all[0].not.any[0].all[1].value", "string_type"),
        ("rules_json.all[0].not.any[0].all[2].field", "unknown_field"),
        ("rules_json.all[0].not.any[1].all[0].value", "missing"),
        ("rules_json.all[0].not.any[1].all[1].values", "too_short"),
        ("rules_json.all[0].not.any[2].or", "extra_forbidden"),
        ("rules_json.all[0].not.any[3].all[0].value[1]", "string_empty"),
        ("rules_json.all[0].not.any[3].all[1]", "condition_type"),
        ("rules_json.all[1].any[0].not", "not_type"),
        ("rules_json.all[1].any[1].value", "string_type"),
    ]


def test_errors_carry_a_readable_message() -> None:
    with pytest.raises(RulesInvalid) as info:
        parse_v2_rules(v2(field("email", "gt", "x")), REGISTRY)
    (error,) = info.value.errors
    assert "gt" in error.msg and "email" in error.msg and "text" in error.msg
    assert error.loc in str(info.value)


# == v2: what valid rules become ==============================================================
AT = "2026-05-21T11:30:00Z"
AT_UTC = datetime(2026, 5, 21, 11, 30, tzinfo=UTC)
FIELD_NODES = [
    # text: values kept as written (case is ignored when comparing, not when parsing)
    ("email", "equals", "Ann@Example.com", "Ann@Example.com"),
    ("email", "not_equals", "x", "x"),
    ("company", "contains", "50%_off\\", "50%_off\\"),
    ("company", "not_contains", " ", " "),
    ("name", "starts_with", "Dr.", "Dr."),
    ("country", "in", ["FR", "de"], ("FR", "de")),
    ("country", "not_in", ["FR"], ("FR",)),
    ("city", "is_null", ABSENT, None),
    ("city", "is_not_null", None, None),
    ("nickname", "equals", "x" * MAX_STRING_LENGTH, "x" * MAX_STRING_LENGTH),
    # number: Decimals with the JSON literal's digits
    ("opens_count", "equals", 3, Decimal(3)),
    ("opens_count", "not_equals", 0, Decimal(0)),
    ("score", "gt", 0.1, Decimal("0.1")),
    ("score", "gte", -2.5, Decimal("-2.5")),
    ("score", "lt", 10**30, Decimal(10**30)),
    ("score", "lte", 1e21, Decimal("1e21")),
    ("clicks_count", "in", [1, 2.5], (Decimal(1), Decimal("2.5"))),
    ("score", "not_in", [0], (Decimal(0),)),
    ("score", "is_null", None, None),
    ("clicks_count", "is_not_null", ABSENT, None),
    # datetime: aware UTC; bare date = midnight UTC; no offset = UTC; offsets converted
    ("created_at", "gt", AT, AT_UTC),
    ("created_at", "gte", "2026-05-21", datetime(2026, 5, 21, tzinfo=UTC)),
    ("updated_at", "lt", "2026-05-21T11:30:00", AT_UTC),
    ("updated_at", "lte", "2026-05-21T13:30:00+02:00", AT_UTC),
    ("birthday", "gt", "2026-05-21T06:30:00-05:00", AT_UTC),
    ("birthday", "gt", "2026-05-21T17:00+0530", AT_UTC),
    ("birthday", "gt", "2026-05-21 11:30", AT_UTC),
    ("birthday", "gt", "2026-05-21t11:30:00z", AT_UTC),
    ("birthday", "gt", "2026-05-21T11:30:00.25Z", AT_UTC + timedelta(milliseconds=250)),
    ("birthday", "gt", "2026-05-22T01:30:00+14:00", AT_UTC),
    ("last_open_at", "within_days", 30, 30),
    ("last_click_at", "within_days", 1, 1),
    ("birthday", "within_days", MAX_DAYS, MAX_DAYS),
    ("created_at", "in_calendar", {"unit": "week", "offset": 0}, CalendarPeriod("week", 0)),
    (
        "last_open_at",
        "in_calendar",
        {"unit": "year", "offset": -3650},
        CalendarPeriod("year", -3650),
    ),
    ("birthday", "anniversary_within_days", 0, 0),
    ("birthday", "anniversary_within_days", 366, 366),
    ("created_at", "is_null", ABSENT, None),
    ("last_open_at", "is_not_null", None, None),
    # boolean
    ("vip", "equals", True, True),
    ("vip", "not_equals", False, False),
    ("vip", "is_null", ABSENT, None),
    ("vip", "is_not_null", ABSENT, None),
    # list
    ("tags", "has_any", ["VIP"], ("VIP",)),
    ("tags", "has_all", ["a", "b"], ("a", "b")),
    ("hobbies", "has_none", ["chess"], ("chess",)),
    ("tags", "is_null", ABSENT, None),
    ("hobbies", "is_not_null", ABSENT, None),
]


@pytest.mark.parametrize(
    ("name", "operator", "value", "expected"),
    [pytest.param(*case, id=f"{case[0]}-{case[1]}-{i}") for i, case in enumerate(FIELD_NODES)],
)
def test_field_condition_parses_into_typed_node(
    name: str, operator: str, value: Any, expected: Any
) -> None:
    node = only(parse_v2_rules(v2(field(name, operator, value)), REGISTRY))
    assert isinstance(node, FieldCondition)
    assert (node.field.name, node.operator) == (name, operator)
    parsed: Any = node.value
    assert parsed == expected
    assert type(parsed) is type(expected)
    if isinstance(expected, datetime):
        assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)
    if isinstance(expected, tuple):
        assert all(type(v) is type(e) for v, e in zip(parsed, expected, strict=True))


def test_field_nodes_cover_every_operator_of_every_type() -> None:
    covered = {(REGISTRY.lookup(n).type, op) for n, op, _, _ in FIELD_NODES}  # type: ignore[union-attr]
    wanted = {(t, op) for t, ops in OPERATORS_BY_TYPE.items() for op in ops}
    assert covered == wanted


@pytest.mark.parametrize(
    ("name", "field_type", "source"),
    [
        ("email", FieldType.TEXT, FieldSource.COLUMN),
        ("tags", FieldType.LIST, FieldSource.COLUMN),
        ("updated_at", FieldType.DATETIME, FieldSource.COLUMN),
        ("opens_count", FieldType.NUMBER, FieldSource.DERIVED),
        ("last_click_at", FieldType.DATETIME, FieldSource.DERIVED),
        ("nickname", FieldType.TEXT, FieldSource.CUSTOM),
        ("score", FieldType.NUMBER, FieldSource.CUSTOM),
        ("birthday", FieldType.DATETIME, FieldSource.CUSTOM),
        ("vip", FieldType.BOOLEAN, FieldSource.CUSTOM),
        ("hobbies", FieldType.LIST, FieldSource.CUSTOM),
    ],
)
def test_field_spec_has_type_and_source(
    name: str, field_type: FieldType, source: FieldSource
) -> None:
    node = only(parse_v2_rules(v2(field(name, "is_null")), REGISTRY))
    assert (node.field.type, node.field.source) == (field_type, source)


def test_custom_field_is_known_only_when_declared() -> None:
    body = v2(field("plan", "equals", "pro"))
    assert v2_errors(body) == [("rules_json.any[0].all[0].field", "unknown_field")]
    declared = FieldRegistry.from_declarations({"plan": "text"})
    assert only(parse_v2_rules(body, declared)).value == "pro"


def test_custom_field_with_builtin_name_is_shadowed_by_the_builtin() -> None:
    registry = FieldRegistry.from_declarations({"email": "number", "tags": "boolean"})
    node = only(parse_v2_rules(v2(field("email", "contains", "@")), registry))
    assert (node.field.type, node.field.source) == (FieldType.TEXT, FieldSource.COLUMN)
    errors = errors_of(lambda: parse_v2_rules(v2(field("email", "gt", 5)), registry))
    assert errors == [("rules_json.any[0].all[0].operator", "operator_not_allowed")]


def test_custom_field_type_decides_operators_and_values() -> None:
    for data_type, op, value in [
        ("text", "starts_with", "a"),
        ("number", "gte", 1),
        ("datetime", "within_days", 7),
        ("boolean", "equals", False),
        ("list", "has_all", ["a"]),
    ]:
        registry = FieldRegistry.from_declarations({"custom": data_type})
        node = only(parse_v2_rules(v2(field("custom", op, value)), registry))
        assert node.field.type == FieldType(data_type)
        wrong = v2(field("custom", "contains" if data_type != "text" else "gt", "x"))
        with pytest.raises(RulesInvalid) as info:
            parse_v2_rules(wrong, registry)
        assert [(e.loc, e.type) for e in info.value.errors] == [
            ("rules_json.any[0].all[0].operator", "operator_not_allowed")
        ]


def test_custom_field_name_at_the_length_limit_is_accepted() -> None:
    name = "k" * MAX_FIELD_NAME_LENGTH
    registry = FieldRegistry.from_declarations({name: "text"})
    assert only(parse_v2_rules(v2(field(name, "is_null")), registry)).field.name == name


ACTIVITY_NODES = [
    (activity("ever"), ("activity", "open", "ever", None, None, (), ())),
    (activity("never", None), ("activity", "open", "never", None, None, (), ())),
    (activity("count_gte", 0), ("activity", "open", "count_gte", 0, None, (), ())),
    (activity("count_lte", 5), ("activity", "open", "count_lte", 5, None, (), ())),
    (
        activity("count_eq", 2**31 - 1, metric="click"),
        ("activity", "click", "count_eq", 2**31 - 1, None, (), ()),
    ),
    (
        activity("ever", days_window={"mode": "last", "days": 1}),
        ("activity", "open", "ever", None, DaysWindow("last", 1), (), ()),
    ),
    (
        activity("never", days_window={"mode": "more_than", "days": MAX_DAYS}),
        ("activity", "open", "never", None, DaysWindow("more_than", MAX_DAYS), (), ()),
    ),
    (
        activity("ever", days_window=None, include_campaign_ids=[CAMPAIGN]),
        ("activity", "open", "ever", None, None, (UUID(CAMPAIGN),), ()),
    ),
    (
        activity("ever", exclude_campaign_ids=[CAMPAIGN, OTHER_CAMPAIGN]),
        ("activity", "open", "ever", None, None, (), (UUID(CAMPAIGN), UUID(OTHER_CAMPAIGN))),
    ),
    (
        activity("ever", include_campaign_ids=[], exclude_campaign_ids=[CAMPAIGN]),
        ("activity", "open", "ever", None, None, (), (UUID(CAMPAIGN),)),
    ),
    (
        activity("ever", include_campaign_ids=None, exclude_campaign_ids=None),
        ("activity", "open", "ever", None, None, (), ()),
    ),
    (deliverability("ever"), ("deliverability", "bounce", "ever", None, None, (), ())),
    (
        deliverability("count_gte", 3, metric="complaint", days_window={"mode": "last", "days": 9}),
        ("deliverability", "complaint", "count_gte", 3, DaysWindow("last", 9), (), ()),
    ),
    (
        deliverability("count_eq", 0, metric="delivered"),
        ("deliverability", "delivered", "count_eq", 0, None, (), ()),
    ),
    (
        deliverability("count_lte", 1, metric="unsubscribe"),
        ("deliverability", "unsubscribe", "count_lte", 1, None, (), ()),
    ),
]


@pytest.mark.parametrize(("condition", "expected"), ACTIVITY_NODES)
def test_activity_condition_parses_into_typed_node(
    condition: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    node = only(parse_v2_rules(v2(condition), REGISTRY))
    assert isinstance(node, ActivityCondition)
    assert (
        node.kind,
        node.metric,
        node.operator,
        node.value,
        node.days_window,
        node.include_campaign_ids,
        node.exclude_campaign_ids,
    ) == expected


def test_membership_and_isp_parse_into_typed_nodes() -> None:
    tree = parse_v2_rules(
        v2(
            {"kind": "membership", "operator": "in", "list_ids": [str(LIST_A), str(LIST_B)]},
            {"kind": "membership", "operator": "not_in", "list_ids": [str(LIST_B)]},
            {"kind": "isp", "operator": "in", "values": [1, 2]},
            {"kind": "isp", "operator": "not_in", "values": [-(2**31), 2**31 - 1]},
        ),
        REGISTRY,
        known_list_ids={LIST_A, LIST_B},
    )
    assert tree.flat_groups() == (
        (
            MembershipCondition("in", (LIST_A, LIST_B)),
            MembershipCondition("not_in", (LIST_B,)),
            IspCondition("in", (1, 2)),
            IspCondition("not_in", (-(2**31), 2**31 - 1)),
        ),
    )
    assert tree.list_ids() == {LIST_A, LIST_B}


def test_limits_are_inclusive() -> None:
    one = {"kind": "isp", "operator": "in", "values": list(range(MAX_ARRAY_ITEMS))}
    per_group = MAX_CONDITIONS // MAX_CONDITIONS_PER_GROUP
    at_limits = [
        {"any": [{"all": [GOOD]}] * MAX_GROUPS},
        {"any": [{"all": [GOOD] * MAX_CONDITIONS_PER_GROUP}]},
        {"any": [{"all": [GOOD] * MAX_CONDITIONS_PER_GROUP}] * per_group},
        v2(one),
        v2(field("tags", "has_any", ["t"] * MAX_ARRAY_ITEMS)),
        v2(field("email", "in", ["e" * MAX_STRING_LENGTH] * 3)),
        v2({"kind": "membership", "operator": "in", "list_ids": [str(LIST_A)] * MAX_ARRAY_ITEMS}),
        v2(activity("ever", include_campaign_ids=[CAMPAIGN] * MAX_ARRAY_ITEMS)),
    ]
    for body in at_limits:
        parse_v2_rules(body, REGISTRY)
    assert sum(map(len, parse_v2_rules(at_limits[2], REGISTRY).flat_groups())) == MAX_CONDITIONS


def test_groups_and_conditions_keep_their_order() -> None:
    tree = parse_v2_rules(
        {
            "any": [
                {"all": [field("email", "is_null"), field("city", "is_null")]},
                {"all": [{"kind": "isp", "operator": "in", "values": [3]}]},
            ]
        },
        REGISTRY,
    )
    assert tree.flat_groups() == (
        (
            FieldCondition(BUILTIN_FIELDS["email"], "is_null", None),
            FieldCondition(BUILTIN_FIELDS["city"], "is_null", None),
        ),
        (IspCondition("in", (3,)),),
    )


def test_clock_dependence_is_detected() -> None:
    def depends(condition: dict[str, Any]) -> bool:
        return parse_v2_rules(v2(GOOD, condition), REGISTRY).depends_on_clock

    assert depends(field("created_at", "within_days", 7))
    assert depends(activity("ever", days_window={"mode": "more_than", "days": 7}))
    assert depends(deliverability("ever", days_window={"mode": "last", "days": 7}))
    assert not depends(field("created_at", "gt", "2026-01-01"))
    assert not depends(activity("ever"))


def test_local_calendar_rules_are_detected() -> None:
    """Calendar periods and anniversaries change at local midnight: the scheduler refreshes
    those segments then (and they are clock-dependent too)."""

    def tree(condition: dict[str, Any]) -> Any:
        return parse_v2_rules(v2(GOOD, condition), REGISTRY)

    calendar = [
        field("created_at", "in_calendar", {"unit": "month", "offset": -1}),
        field("birthday", "anniversary_within_days", 7),
        activity("ever", days_window={"mode": "calendar", "unit": "week", "offset": 0}),
    ]
    for condition in calendar:
        assert tree(condition).follows_local_calendar
        assert tree(condition).depends_on_clock
    rolling = field("created_at", "within_days", 7)
    assert not tree(rolling).follows_local_calendar
    assert tree(
        activity("ever", days_window={"mode": "calendar", "unit": "day", "offset": 0})
    ).conditions()[1].days_window == CalendarPeriod("day", 0)


# -- the product brief's own examples ----------------------------------------------------------
def test_brief_create_segment_example() -> None:
    rules_json = {
        "any": [
            {
                "all": [
                    {
                        "kind": "field",
                        "field": "status",
                        "operator": "equals",
                        "value": "subscribed",
                    },
                    {
                        "kind": "activity",
                        "metric": "open",
                        "operator": "count_gte",
                        "value": 1,
                        "days_window": {"mode": "last", "days": 30},
                    },
                ]
            }
        ]
    }
    (group,) = parse_v2_rules(rules_json, REGISTRY).flat_groups()
    status, opened = group
    assert isinstance(status, FieldCondition) and status.value == "subscribed"
    assert opened == ActivityCondition(
        "activity", "open", "count_gte", 1, DaysWindow("last", 30), (), ()
    )


def test_brief_activity_example_with_empty_campaign_lists_means_no_filter() -> None:
    condition = {
        "kind": "activity",
        "metric": "open",
        "operator": "count_gte",
        "value": 1,
        "days_window": {"mode": "last", "days": 30},
        "include_campaign_ids": [],
        "exclude_campaign_ids": [],
    }
    node = only(parse_v2_rules(v2(condition), REGISTRY))
    assert node.include_campaign_ids == () and node.exclude_campaign_ids == ()


def test_brief_membership_deliverability_and_isp_examples() -> None:
    tree = parse_v2_rules(
        {
            "any": [
                {"all": [{"kind": "membership", "operator": "in", "list_ids": [str(LIST_A)]}]},
                {
                    "all": [
                        {
                            "kind": "deliverability",
                            "metric": "bounce",
                            "operator": "count_gte",
                            "value": 1,
                            "days_window": {"mode": "last", "days": 90},
                        }
                    ]
                },
                {"all": [{"kind": "isp", "operator": "in", "values": [1, 2]}]},
            ]
        },
        REGISTRY,
        known_list_ids={LIST_A},
    )
    assert tree.flat_groups() == (
        (MembershipCondition("in", (LIST_A,)),),
        (
            ActivityCondition(
                "deliverability", "bounce", "count_gte", 1, DaysWindow("last", 90), (), ()
            ),
        ),
        (IspCondition("in", (1, 2)),),
    )


# == v1: matchType + filters ==================================================================
def v1(match_type: str, *filters: Any) -> dict[str, Any]:
    return {"matchType": match_type, "filters": list(filters)}


def flt(name: str, operator: Any, value: Any = ABSENT, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"field": name, "operator": operator, **extra}
    if value is not ABSENT:
        out["value"] = value
    return out


V1_GOOD = flt("status", "eq", "subscribed")


def test_v1_brief_examples_parse() -> None:
    engaged = parse_v1_rules(
        v1("all", flt("opens_count", "gte", 3), flt("last_open_at", "within_days", 90)), REGISTRY
    )
    (group,) = engaged.flat_groups()
    assert [(c.field.name, c.operator, c.value) for c in group] == [  # type: ignore[union-attr]
        ("opens_count", "gte", Decimal(3)),
        ("last_open_at", "within_days", 90),
    ]
    churned = parse_v1_rules(v1("all", flt("last_open_at", "not_exists", None)), REGISTRY)
    assert only(churned).operator == "is_null"


def test_v1_match_type_all_is_one_group() -> None:
    tree = parse_v1_rules(
        v1("all", V1_GOOD, flt("country", "neq", "FR"), flt("score", "lt", 2)), REGISTRY
    )
    assert [len(g) for g in tree.flat_groups()] == [3]


def test_v1_match_type_any_is_one_group_per_filter() -> None:
    tree = parse_v1_rules(
        v1("any", V1_GOOD, flt("country", "neq", "FR"), flt("score", "lt", 2)), REGISTRY
    )
    assert [len(g) for g in tree.flat_groups()] == [1, 1, 1]
    assert [g[0].operator for g in tree.flat_groups()] == ["equals", "not_equals", "lt"]


@pytest.mark.parametrize(
    ("v1_operator", "name", "value", "canonical", "expected"),
    [
        ("eq", "email", "a@b.c", "equals", "a@b.c"),
        ("neq", "score", 1, "not_equals", Decimal(1)),
        ("gt", "created_at", "2026-05-21", "gt", datetime(2026, 5, 21, tzinfo=UTC)),
        ("gte", "opens_count", 3, "gte", Decimal(3)),
        ("lt", "birthday", AT, "lt", AT_UTC),
        ("lte", "clicks_count", 0, "lte", Decimal(0)),
        ("contains", "company", "Inc", "contains", "Inc"),
        ("within_days", "created_at", 7, "within_days", 7),
        ("exists", "city", ABSENT, "is_not_null", None),
        ("exists", "last_open_at", None, "is_not_null", None),
        ("not_exists", "last_open_at", None, "is_null", None),
        ("not_exists", "tags", ABSENT, "is_null", None),
        ("eq", "vip", True, "equals", True),
    ],
)
def test_v1_operators_map_to_canonical(
    v1_operator: str, name: str, value: Any, canonical: str, expected: Any
) -> None:
    node = only(parse_v1_rules(v1("all", flt(name, v1_operator, value)), REGISTRY))
    assert (node.field.name, node.operator, node.value) == (name, canonical, expected)


V1_INVALID = [
    pytest.param(flt("email", "equals", "x"), ".operator", "unknown_operator", id="canonical-op"),
    pytest.param(flt("email", "in", ["x"]), ".operator", "unknown_operator", id="in"),
    pytest.param(flt("tags", "has_any", ["x"]), ".operator", "unknown_operator", id="has_any"),
    pytest.param(flt("email", "is_null"), ".operator", "unknown_operator", id="is_null"),
    pytest.param(flt("email", 3, "x"), ".operator", "string_type", id="operator-number"),
    pytest.param({"field": "email", "value": "x"}, ".operator", "missing", id="operator-missing"),
    pytest.param(flt("email", "gt", "x"), ".operator", "operator_not_allowed", id="gt-on-text"),
    pytest.param(
        flt("score", "contains", "1"), ".operator", "operator_not_allowed", id="contains-number"
    ),
    pytest.param(
        flt("email", "within_days", 3), ".operator", "operator_not_allowed", id="within-on-text"
    ),
    pytest.param(flt("tags", "eq", "vip"), ".operator", "operator_not_allowed", id="eq-on-list"),
    pytest.param(flt("nope", "eq", "x"), ".field", "unknown_field", id="unknown-field"),
    pytest.param({"operator": "eq", "value": "x"}, ".field", "missing", id="field-missing"),
    pytest.param(flt("email", "eq", 5), ".value", "string_type", id="text-number"),
    pytest.param(flt("email", "eq", ""), ".value", "string_empty", id="text-empty"),
    pytest.param(flt("email", "eq"), ".value", "string_type", id="text-missing"),
    pytest.param(flt("score", "gt", "5"), ".value", "number_type", id="number-string"),
    pytest.param(flt("created_at", "lt", "soon"), ".value", "datetime_format", id="bad-date"),
    pytest.param(flt("created_at", "within_days", "90"), ".value", "int_type", id="days-str"),
    pytest.param(flt("created_at", "within_days", 0), ".value", "days_range", id="days-zero"),
    pytest.param(flt("city", "exists", "x"), ".value", "value_forbidden", id="exists-value"),
    pytest.param(flt("city", "not_exists", 0), ".value", "value_forbidden", id="not-exists-0"),
    pytest.param(flt("email", "eq", "x", kind="field"), ".kind", "extra_forbidden", id="kind"),
    pytest.param(flt("email", "eq", "x", note="n"), ".note", "extra_forbidden", id="extra-key"),
    pytest.param("status eq x", "", "object_type", id="not-object"),
    pytest.param(None, "", "object_type", id="null"),
]


@pytest.mark.parametrize(("bad", "where", "type_"), V1_INVALID)
def test_v1_invalid_filter_is_reported_at_its_location(bad: Any, where: str, type_: str) -> None:
    for match_type in ("all", "any"):
        assert v1_errors(v1(match_type, V1_GOOD, bad)) == [(f"filters[1]{where}", type_)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {**v1("all", V1_GOOD), "name": "x"}, [("name", "extra_forbidden")], id="unknown-key"
        ),
        pytest.param(
            {"filters": [V1_GOOD]}, [("matchType", "match_type")], id="match-type-missing"
        ),
        pytest.param(v1("some", V1_GOOD), [("matchType", "match_type")], id="match-type-bad"),
        pytest.param(v1("ALL", V1_GOOD), [("matchType", "match_type")], id="match-type-case"),
        pytest.param({"matchType": "all"}, [("filters", "array_type")], id="filters-missing"),
        pytest.param(v1("any"), [("filters", "array_type")], id="filters-empty"),
        pytest.param(
            {"matchType": "all", "filters": V1_GOOD},
            [("filters", "array_type")],
            id="filters-object",
        ),
        pytest.param(
            v1("all", *[V1_GOOD] * (MAX_V1_FILTERS + 1)),
            [("filters", "too_many_items")],
            id="too-many-filters",
        ),
        pytest.param([V1_GOOD], [("body", "object_type")], id="body-array"),
    ],
)
def test_v1_invalid_top_level_is_reported(body: Any, expected: list[tuple[str, str]]) -> None:
    assert v1_errors(body) == expected


def test_v1_filters_at_the_limit_are_accepted() -> None:
    tree = parse_v1_rules(v1("any", *[V1_GOOD] * MAX_V1_FILTERS), REGISTRY)
    assert len(tree.flat_groups()) == MAX_V1_FILTERS


def test_v1_reports_every_bad_filter_at_once() -> None:
    body = v1("any", flt("email", "in", ["x"]), V1_GOOD, flt("nope", "eq", 1), 5)
    assert v1_errors(body) == [
        ("filters[0].operator", "unknown_operator"),
        ("filters[2].field", "unknown_field"),
        ("filters[3]", "object_type"),
    ]


def test_v1_error_message_names_the_v1_operator() -> None:
    with pytest.raises(RulesInvalid) as info:
        parse_v1_rules(v1("all", flt("email", "gte", "x")), REGISTRY)
    (error,) = info.value.errors
    assert "'gte'" in error.msg


# == simple: AND-ed rules =====================================================================
def test_simple_brief_examples_parse() -> None:
    enterprise = parse_simple_rules(
        [
            {"field": "status", "operator": "equals", "value": "active"},
            {"field": "company", "operator": "contains", "value": "Inc"},
        ],
        REGISTRY,
    )
    (group,) = enterprise.flat_groups()
    assert [(c.field.name, c.operator, c.value) for c in group] == [  # type: ignore[union-attr]
        ("status", "equals", "active"),
        ("company", "contains", "Inc"),
    ]
    signups = parse_simple_rules(
        [{"field": "created_at", "operator": "after", "value": "2026-01-01"}], REGISTRY
    )
    node = only(signups)
    assert (node.operator, node.value) == ("gt", datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("operator", "name", "value", "canonical"),
    [
        ("equals", "email", "a", "equals"),
        ("not_equals", "country", "FR", "not_equals"),
        ("contains", "company", "Inc", "contains"),
        ("not_contains", "company", "Ltd", "not_contains"),
        ("starts_with", "name", "Dr", "starts_with"),
        ("before", "created_at", "2026-01-01", "lt"),
        ("after", "birthday", "2000-01-01T00:00:00+01:00", "gt"),
        ("equals", "score", 5, "equals"),
        ("not_equals", "vip", True, "not_equals"),
    ],
)
def test_simple_operators_map_to_canonical(
    operator: str, name: str, value: Any, canonical: str
) -> None:
    node = only(parse_simple_rules([flt(name, operator, value)], REGISTRY))
    assert (node.field.name, node.operator) == (name, canonical)


def test_simple_rules_are_one_and_group() -> None:
    rules = [
        flt("status", "equals", "x"),
        flt("city", "contains", "y"),
        flt("tags", "after", "2026-01-01"),
    ]
    errors = simple_errors(rules)
    assert errors == [("rules[2].operator", "operator_not_allowed")]
    tree = parse_simple_rules(rules[:2], REGISTRY)
    assert [len(g) for g in tree.flat_groups()] == [2]


SIMPLE_GOOD = flt("status", "equals", "active")
SIMPLE_INVALID = [
    pytest.param(flt("email", "in", ["x"]), ".operator", "unknown_operator", id="in"),
    pytest.param(flt("email", "eq", "x"), ".operator", "unknown_operator", id="v1-eq"),
    pytest.param(flt("score", "gt", 1), ".operator", "unknown_operator", id="gt"),
    pytest.param(flt("email", "is_null"), ".operator", "unknown_operator", id="is_null"),
    pytest.param({"field": "email", "value": "x"}, ".operator", "missing", id="operator-missing"),
    pytest.param(flt("email", None, "x"), ".operator", "string_type", id="operator-null"),
    pytest.param(
        flt("email", "before", "x"), ".operator", "operator_not_allowed", id="before-on-text"
    ),
    pytest.param(
        flt("score", "contains", "1"), ".operator", "operator_not_allowed", id="contains-number"
    ),
    pytest.param(
        flt("tags", "equals", "vip"), ".operator", "operator_not_allowed", id="equals-on-list"
    ),
    pytest.param(flt("nope", "equals", "x"), ".field", "unknown_field", id="unknown-field"),
    pytest.param({"operator": "equals", "value": "x"}, ".field", "missing", id="field-missing"),
    pytest.param(flt("email", "equals", ""), ".value", "string_empty", id="text-empty"),
    pytest.param(flt("email", "equals", 5), ".value", "string_type", id="text-number"),
    pytest.param(flt("email", "contains"), ".value", "string_type", id="text-missing"),
    pytest.param(flt("email", "equals", LONG), ".value", "string_too_long", id="text-long"),
    pytest.param(flt("created_at", "after", "soon"), ".value", "datetime_format", id="bad-date"),
    pytest.param(flt("score", "equals", "5"), ".value", "number_type", id="number-string"),
    pytest.param(flt("email", "equals", "x", kind="field"), ".kind", "extra_forbidden", id="kind"),
    pytest.param(flt("email", "equals", "x", id=1), ".id", "extra_forbidden", id="extra-key"),
    pytest.param(["status", "equals", "x"], "", "object_type", id="rule-array"),
    pytest.param(7, "", "object_type", id="rule-number"),
]


@pytest.mark.parametrize(("bad", "where", "type_"), SIMPLE_INVALID)
def test_simple_invalid_rule_is_reported_at_its_location(bad: Any, where: str, type_: str) -> None:
    assert simple_errors([SIMPLE_GOOD, bad]) == [(f"rules[1]{where}", type_)]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param([], [("rules", "array_type")], id="empty"),
        pytest.param(None, [("rules", "array_type")], id="null"),
        pytest.param(SIMPLE_GOOD, [("rules", "array_type")], id="object"),
        pytest.param(
            [SIMPLE_GOOD] * (MAX_SIMPLE_RULES + 1), [("rules", "too_many_items")], id="too-many"
        ),
    ],
)
def test_simple_invalid_rules_array_is_reported(
    rules: Any, expected: list[tuple[str, str]]
) -> None:
    assert simple_errors(rules) == expected


def test_simple_rules_at_the_limit_are_accepted() -> None:
    tree = parse_simple_rules([SIMPLE_GOOD] * MAX_SIMPLE_RULES, REGISTRY)
    assert [len(g) for g in tree.flat_groups()] == [MAX_SIMPLE_RULES]


def test_simple_reports_every_bad_rule_at_once() -> None:
    rules = [flt("email", "in", ["x"]), SIMPLE_GOOD, flt("email", "equals", ""), flt("x", "a", 1)]
    assert simple_errors(rules) == [
        ("rules[0].operator", "unknown_operator"),
        ("rules[2].value", "string_empty"),
        ("rules[3].operator", "unknown_operator"),
    ]


def test_simple_location_prefix_is_used() -> None:
    errors = errors_of(
        lambda: parse_simple_rules([flt("email", "equals", "")], REGISTRY, loc="body")
    )
    assert errors == [("body.rules[0].value", "string_empty")]


# == suspected product bugs (see the report) ==================================================
@pytest.mark.parametrize(
    "condition",
    [
        pytest.param(activity("sometimes"), id="activity"),
        pytest.param(deliverability("never"), id="deliverability-never"),
    ],
)
def test_unknown_activity_operator_is_reported_at_operator(condition: Any) -> None:
    """pydantic reports a Literal union per member (`operator.literal['ever','never']`, ...):
    the location must be the exact `...operator`, once."""
    errors = v2_errors(v2(condition))
    assert [loc for loc, _ in errors] == ["rules_json.any[0].all[0].operator"]


@pytest.mark.parametrize(
    "value",
    ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "0001-01-01T00:30+01:00"],
)
def test_datetime_value_out_of_range_is_a_rule_error(value: str) -> None:
    """Converting to UTC can leave datetime's range; that must be a 400, not an OverflowError."""
    assert v2_errors(v2(field("created_at", "gt", value))) == [
        ("rules_json.any[0].all[0].value", "datetime_format")
    ]


def test_rules_larger_than_max_rules_bytes_are_rejected() -> None:
    """limits.MAX_RULES_BYTES (256 KiB) is declared but enforced nowhere: this body obeys every
    other limit and is about 1 MB of JSON."""
    big = field("email", "in", ["e" * MAX_STRING_LENGTH] * MAX_ARRAY_ITEMS)
    assert len(json.dumps(v2(big))) > MAX_RULES_BYTES
    with pytest.raises(RulesInvalid) as info:
        parse_v2_rules(v2(big), REGISTRY)
    assert [e.loc for e in info.value.errors] == ["rules_json"]


def test_unknown_top_level_key_is_reported_with_the_other_errors() -> None:
    """Errors are collected so the caller sees them all at once; an unknown top-level key
    (not a size problem) should not hide the errors inside the groups."""
    body = {"any": [{"all": [field("email", "equals", "")]}], "extra": True}
    assert v2_errors(body) == [
        ("rules_json.extra", "extra_forbidden"),
        ("rules_json.any[0].all[0].value", "string_empty"),
    ]


# == errors name the valid choices (issue 12 item 8) ==========================================
TEXT_OPERATORS = (
    "contains, equals, in, is_not_null, is_null, not_contains, not_equals, not_in, starts_with"
)
NOT_DECLARED = "not a contact field and not a custom field declared for this account"


def messages_of(parse: Callable[[], RuleTree]) -> list[tuple[str, str, str]]:
    with pytest.raises(RulesInvalid) as info:
        parse()
    return [(e.loc, e.type, e.msg) for e in info.value.errors]


@pytest.mark.parametrize(
    ("condition", "where", "type_", "msg"),
    [
        pytest.param(
            field("email", "like", "x"),
            ".operator",
            "unknown_operator",
            f"unknown operator 'like' for field 'email' of type text; expected one of "
            f"{TEXT_OPERATORS}",
            id="unknown-operator-text",
        ),
        pytest.param(
            field("score", "between", 1),
            ".operator",
            "unknown_operator",
            "unknown operator 'between' for field 'score' of type number; expected one of "
            "equals, gt, gte, in, is_not_null, is_null, lt, lte, not_equals, not_in",
            id="unknown-operator-custom-number",
        ),
        pytest.param(
            field("email", "gt", "x"),
            ".operator",
            "operator_not_allowed",
            f"operator 'gt' is not allowed for field 'email' of type text; expected one of "
            f"{TEXT_OPERATORS}",
            id="operator-not-allowed",
        ),
        pytest.param(
            {"kind": "activty", "metric": "open", "operator": "ever"},
            ".kind",
            "unknown_kind",
            "unknown kind 'activty'; expected one of field, activity, deliverability, "
            "membership, isp, segment",
            id="unknown-kind",
        ),
        pytest.param(
            field("emial", "equals", "x"),
            ".field",
            "unknown_field",
            f"unknown field 'emial': {NOT_DECLARED}; did you mean 'email'?",
            id="misspelt-built-in",
        ),
        pytest.param(
            field("scor", "gt", 1),
            ".field",
            "unknown_field",
            f"unknown field 'scor': {NOT_DECLARED}; did you mean 'score'?",
            id="misspelt-custom",
        ),
        pytest.param(
            field("last_opened_at", "is_null"),
            ".field",
            "unknown_field",
            f"unknown field 'last_opened_at': {NOT_DECLARED}; did you mean one of "
            "'last_open_at', 'last_name'?",
            id="several-close",
        ),
    ],
)
def test_v2_errors_name_the_valid_choices(
    condition: dict[str, Any], where: str, type_: str, msg: str
) -> None:
    body = {"any": [{"all": [GOOD]}, {"all": [GOOD, GOOD, condition]}]}
    assert messages_of(lambda: parse_v2_rules(body, REGISTRY)) == [(BAD_AT + where, type_, msg)]


def test_an_unknown_field_with_nothing_close_lists_the_built_in_fields() -> None:
    ((loc, type_, msg),) = messages_of(
        lambda: parse_v2_rules(v2(field("zzz", "is_null")), REGISTRY)
    )
    assert (loc, type_) == ("rules_json.any[0].all[0].field", "unknown_field")
    assert msg == (
        f"unknown field 'zzz': {NOT_DECLARED}; the built-in fields are "
        f"{', '.join(BUILTIN_FIELDS)}; a custom field must be declared before rules use it"
    )


def test_v1_and_simple_name_the_choices_in_their_own_operator_names() -> None:
    """The field and operator checks are shared with v2; only the operator names differ."""
    v1_body = v1("all", V1_GOOD, flt("vip", "gt", 1), flt("first_nme", "eq", "x"))
    assert messages_of(lambda: parse_v1_rules(v1_body, REGISTRY)) == [
        (
            "filters[1].operator",
            "operator_not_allowed",
            "operator 'gt' is not allowed for field 'vip' of type boolean; expected one of "
            "eq, neq, exists, not_exists",
        ),
        (
            "filters[2].field",
            "unknown_field",
            f"unknown field 'first_nme': {NOT_DECLARED}; did you mean one of 'first_name', "
            "'last_name'?",
        ),
    ]
    rules = [flt("email", "before", "x"), flt("tags", "equals", "x"), flt("city", "like", "x")]
    assert messages_of(lambda: parse_simple_rules(rules, REGISTRY)) == [
        (
            "rules[0].operator",
            "operator_not_allowed",
            "operator 'before' is not allowed for field 'email' of type text; expected one of "
            "equals, not_equals, contains, not_contains, starts_with",
        ),
        (
            "rules[1].operator",
            "operator_not_allowed",
            "operator 'equals' is not allowed for field 'tags' of type list; no operator of "
            "this dialect applies to a list field (v2 rules have some)",
        ),
        (
            "rules[2].operator",
            "unknown_operator",
            "unknown operator 'like'; expected one of equals, not_equals, contains, "
            "not_contains, starts_with, before, after",
        ),
    ]


def test_the_simple_apis_documented_operators_are_the_ones_it_reads() -> None:
    assert list(get_args(simple.Operator)) == list(simple.OPERATORS)
