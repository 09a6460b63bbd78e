"""The SQL vocabulary of the compiler: the whitelisted identifiers and the operator templates,
by field type. Identifiers reach SQL text only from these tables, never from a rule; values
only through placeholders ({v}), which worker.compiler.params makes."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from worker.rules.fields import BUILTIN_FIELDS, FieldSource, FieldType

# Whitelists: the only identifiers that reach SQL text. Column names come from the field
# registry's fixed table of contact columns, never from the rule; tags has its own reader.
COLUMNS = {
    name: f"c.{name}"
    for name, spec in BUILTIN_FIELDS.items()
    if spec.source is FieldSource.COLUMN and name != "tags"
}
CUSTOM_READERS = {
    FieldType.TEXT: "segments_jsonb_text",
    FieldType.NUMBER: "segments_jsonb_number",
    FieldType.DATETIME: "segments_jsonb_timestamptz",
    FieldType.BOOLEAN: "segments_jsonb_boolean",
    FieldType.LIST: "segments_jsonb_list",
}
PG_TYPES = {
    FieldType.TEXT: "text",
    FieldType.NUMBER: "numeric",
    FieldType.DATETIME: "timestamptz",
    FieldType.BOOLEAN: "boolean",
    FieldType.LIST: "text",
}
# Derived fields: (event type, aggregate over the contact's events of that type).
DERIVED = {
    "opens_count": ("open", "count(*)"),
    "clicks_count": ("click", "count(*)"),
    "last_open_at": ("open", "max(e.occurred_at)"),
    "last_click_at": ("click", "max(e.occurred_at)"),
}

# Row predicates by operator; {x} is the field's value expression, {v} the value's parameter,
# {lv} the value (an array) lower-cased as the source lower-cases it (worker.compiler.sources:
# over all contacts a plain call, which custom plans fold to a constant the planner can see,
# docs/benchmarks.md, "Why the compiler writes SQL this way"; over candidates once per
# statement).
# Text and list values compare lower-cased; '' and the empty list are null (docs/rules.md),
# and the negative operators match null. {lx} is the text lower-cased and {lxe} the same with
# null read as '', as the source lower-cases them (over all contacts a call the indexes on
# lower-cased columns match; over candidates once per candidate).
_TEXT_OPS = {
    "equals": "{lx} = lower({v})",
    "not_equals": "{lxe} <> lower({v})",
    "contains": "strpos({lx}, lower({v})) > 0",
    "not_contains": "strpos({lxe}, lower({v})) = 0",
    "starts_with": "starts_with({lx}, lower({v}))",
    "in": "{lx} = ANY({lv})",
    "not_in": "{lxe} <> ALL({lv})",
    "is_null": "coalesce({x}, '') = ''",
    "is_not_null": "{x} <> ''",
}
_ORDERED_OPS = {"gt": "{x} > {v}", "gte": "{x} >= {v}", "lt": "{x} < {v}", "lte": "{x} <= {v}"}
_NULL_OPS = {"is_null": "{x} IS NULL", "is_not_null": "{x} IS NOT NULL"}
_EQUALITY_OPS = {"equals": "{x} = {v}", "not_equals": "{x} IS DISTINCT FROM {v}"}
_NUMBER_OPS = {
    **_EQUALITY_OPS,
    **_ORDERED_OPS,
    **_NULL_OPS,
    "in": "{x} = ANY({v})",
    "not_in": "NOT coalesce({x} = ANY({v}), false)",
}
_DATETIME_OPS = {**_ORDERED_OPS, **_NULL_OPS, "within_days": "{x} BETWEEN {v}"}
_BOOLEAN_OPS = {**_EQUALITY_OPS, **_NULL_OPS}
# {x} of a list is its lower-cased elements, never null ('{}' when empty or missing).
_LIST_OPS = {
    "has_any": "{x} && {lv}",
    "has_all": "{x} @> {lv}",
    "has_none": "NOT ({x} && {lv})",
    "is_null": "cardinality({x}) = 0",
    "is_not_null": "cardinality({x}) > 0",
}
ROW_OPERATORS = {
    FieldType.TEXT: _TEXT_OPS,
    FieldType.NUMBER: _NUMBER_OPS,
    FieldType.DATETIME: _DATETIME_OPS,
    FieldType.BOOLEAN: _BOOLEAN_OPS,
    FieldType.LIST: _LIST_OPS,
}

# Aggregate predicates of derived fields; {x} is the aggregate (never null), {v} the value.
AGGREGATE_OPS = {
    **_ORDERED_OPS,
    "equals": "{x} = {v}",
    "not_equals": "{x} <> {v}",
    "in": "{x} = ANY({v})",
    "not_in": "{x} <> ALL({v})",
    "within_days": "{x} BETWEEN {v}",
}
# The derived fields that are a contact's latest event of a type (rewritten by the planner).
LATEST = {name for name, (_, aggregate) in DERIVED.items() if aggregate.startswith("max")}
# The counting operators of activity conditions, as the AGGREGATE_OPS of count(*) they mean.
COUNT_OPERATORS = {"count_gte": "gte", "count_lte": "lte", "count_eq": "equals"}
COUNT_TESTS: dict[str, Callable[[Decimal, Any], bool]] = {
    # Does a count of 0 satisfy the operator? Decides whether contacts without events match.
    "equals": lambda n, v: n == v,
    "not_equals": lambda n, v: n != v,
    "gt": lambda n, v: n > v,
    "gte": lambda n, v: n >= v,
    "lt": lambda n, v: n < v,
    "lte": lambda n, v: n <= v,
    "in": lambda n, v: n in v,
    "not_in": lambda n, v: n not in v,
}
