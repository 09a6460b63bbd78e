"""The three dialects (DESIGN.md 4.1, 4.4), each parsed into the canonical RuleTree.

Locations in errors follow the dialect's own input: `rules_json.any[0].all[2].value` (v2),
`filters[1].operator` (v1), `rules[0].value` (simple). Sizes are checked before contents, so
oversized input is rejected before any per-condition work.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, Literal
from uuid import UUID

from pydantic import ValidationError

from worker.rules.conditions import Context, Errors, read_condition, read_field_condition
from worker.rules.errors import RuleError, RulesInvalid, join_loc
from worker.rules.fields import FieldRegistry
from worker.rules.limits import (
    MAX_CONDITIONS,
    MAX_CONDITIONS_PER_GROUP,
    MAX_GROUPS,
    MAX_RULES_BYTES,
    MAX_SIMPLE_RULES,
    MAX_V1_FILTERS,
)
from worker.rules.shapes import FieldShape
from worker.rules.tree import Condition, RuleTree

Dialect = Literal["v2", "v1", "simple"]

V1_OPERATORS = {
    "eq": "equals",
    "neq": "not_equals",
    "gt": "gt",
    "gte": "gte",
    "lt": "lt",
    "lte": "lte",
    "contains": "contains",
    "within_days": "within_days",
    "exists": "is_not_null",
    "not_exists": "is_null",
}
SIMPLE_OPERATORS = {
    "equals": "equals",
    "not_equals": "not_equals",
    "contains": "contains",
    "not_contains": "not_contains",
    "starts_with": "starts_with",
    "before": "lt",
    "after": "gt",
}
_DIALECT_KEYS = {"field", "operator", "value"}


def parse_v2_rules(
    raw: Any,
    registry: FieldRegistry,
    *,
    known_list_ids: Collection[UUID] | None = None,
    loc: str = "rules_json",
) -> RuleTree:
    errors = Errors()
    ctx = Context(registry, known_list_ids)
    check_size(raw, loc)
    if isinstance(raw, Mapping):
        _reject_unknown_keys(raw, {"any"}, loc, errors)
    groups_raw = _object_list(raw, "any", loc, MAX_GROUPS, errors)
    if groups_raw is None or _too_many_conditions(groups_raw, loc, errors):
        errors.raise_if_any()  # nothing more can be checked, or it would be too much work
    assert groups_raw is not None
    groups = []
    for g, group_raw in enumerate(groups_raw):
        group_loc = join_loc(loc, "any", g)
        if isinstance(group_raw, Mapping):
            _reject_unknown_keys(group_raw, {"all"}, group_loc, errors)
        conditions_raw = _object_list(group_raw, "all", group_loc, MAX_CONDITIONS_PER_GROUP, errors)
        conditions = [
            read_condition(c, join_loc(group_loc, "all", i), ctx, errors)
            for i, c in enumerate(conditions_raw or ())
        ]
        groups.append(tuple(c for c in conditions if c is not None))
    errors.raise_if_any()
    return RuleTree(tuple(groups))


def parse_v1_rules(raw: Any, registry: FieldRegistry, *, loc: str = "") -> RuleTree:
    """`{"matchType": "all"|"any", "filters": [...]}`: all = one group, any = one per filter."""
    check_size(raw, loc)
    errors = Errors()
    if not isinstance(raw, Mapping):
        errors.add(loc or "body", "must be an object with matchType and filters", "object_type")
        errors.raise_if_any()
    _reject_unknown_keys(raw, {"matchType", "filters"}, loc, errors)
    match_type = raw.get("matchType")
    if match_type not in ("all", "any"):
        errors.add(join_loc(loc, "matchType"), "must be 'all' or 'any'", "match_type")
    filters = _object_list(raw, "filters", loc, MAX_V1_FILTERS, errors)
    errors.raise_if_any()
    assert filters is not None
    conditions = _dialect_conditions(
        filters, "filters", V1_OPERATORS, Context(registry), errors, loc
    )
    errors.raise_if_any()
    groups = (tuple(conditions),) if match_type == "all" else tuple((c,) for c in conditions)
    return RuleTree(groups)


def parse_simple_rules(raw: Any, registry: FieldRegistry, *, loc: str = "") -> RuleTree:
    """The simple API's `rules` array: one group, all rules AND-ed."""
    check_size(raw, join_loc(loc, "rules"))
    errors = Errors()
    rules = _object_list({"rules": raw}, "rules", loc, MAX_SIMPLE_RULES, errors)
    errors.raise_if_any()
    assert rules is not None
    conditions = _dialect_conditions(
        rules, "rules", SIMPLE_OPERATORS, Context(registry), errors, loc
    )
    errors.raise_if_any()
    return RuleTree((tuple(conditions),))


def parse_rules(dialect: Dialect, raw: Any, registry: FieldRegistry) -> RuleTree:
    """Rules as stored with a segment, in the dialect they were written in."""
    if dialect == "v2":
        return parse_v2_rules(raw, registry)
    if dialect == "v1":
        return parse_v1_rules(raw, registry)
    return parse_simple_rules(raw, registry, loc="")


def _dialect_conditions(
    items: list[Any],
    key: str,
    operators: Mapping[str, str],
    ctx: Context,
    errors: Errors,
    loc: str,
) -> list[Condition]:
    """v1 filters and simple rules: `{field, operator, value}` with the dialect's operators."""
    out: list[Condition] = []
    for index, item in enumerate(items):
        item_loc = join_loc(loc, key, index)
        if not isinstance(item, Mapping):
            errors.add(item_loc, "must be an object with field, operator and value", "object_type")
            continue
        if set(item) - _DIALECT_KEYS:
            _reject_unknown_keys(item, _DIALECT_KEYS, item_loc, errors)
            continue
        operator = item.get("operator")
        if isinstance(operator, str) and operator not in operators:
            errors.add(
                join_loc(item_loc, "operator"),
                f"unknown operator {operator!r}; expected one of {', '.join(operators)}",
                "unknown_operator",
            )
            continue
        if isinstance(operator, str):
            item = {**item, "operator": operators[operator]}
        canonical = {**item, "kind": "field"}
        try:
            shape = FieldShape.model_validate(canonical)
        except ValidationError as exc:
            errors.add_pydantic(item_loc, exc)
            continue
        condition = read_field_condition(shape, item_loc, ctx, errors, shown_operator=operator)
        if condition is not None:
            out.append(condition)
    return out


def _object_list(raw: Any, key: str, loc: str, max_items: int, errors: Errors) -> list[Any] | None:
    """raw[key] as a non-empty list of at most max_items, or None with the error recorded."""
    if not isinstance(raw, Mapping):
        errors.add(loc or "body", f"must be an object with {key!r}", "object_type")
        return None
    items = raw.get(key)
    key_loc = join_loc(loc, key)
    if not isinstance(items, list) or not items:
        errors.add(key_loc, "must be a non-empty array", "array_type")
        return None
    if len(items) > max_items:
        errors.add(key_loc, f"must have at most {max_items} items", "too_many_items")
        return None
    return items


def _reject_unknown_keys(
    raw: Mapping[str, Any], allowed: set[str], loc: str, errors: Errors
) -> None:
    for extra in sorted(set(raw) - allowed, key=str):
        errors.add(join_loc(loc, str(extra)), "unknown key", "extra_forbidden")


def check_size(raw: Any, loc: str) -> None:
    """Reject rules over MAX_RULES_BYTES of JSON before anything else looks at them: the count
    limits alone allow huge arrays of long strings."""
    try:
        size = len(json.dumps(raw, separators=(",", ":")).encode())
    except (TypeError, ValueError, UnicodeEncodeError):
        return  # not JSON-shaped or has lone surrogates: the checks that follow report it
    if size > MAX_RULES_BYTES:
        raise RulesInvalid(
            [
                RuleError(
                    loc or "body",
                    f"is {size} bytes of JSON; at most {MAX_RULES_BYTES} are allowed",
                    "rules_too_large",
                )
            ]
        )


def _too_many_conditions(groups: list[Any], loc: str, errors: Errors) -> bool:
    total = sum(
        len(g.get("all") or ())
        for g in groups
        if isinstance(g, Mapping) and isinstance(g.get("all"), list)
    )
    if total > MAX_CONDITIONS:
        errors.add(
            join_loc(loc, "any"),
            f"has {total} conditions in all; at most {MAX_CONDITIONS} are allowed",
            "too_many_conditions",
        )
        return True
    return False
