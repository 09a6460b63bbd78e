"""The v1 dialect (docs/rules.md), read-only over HTTP: `{"matchType": "all"|"any",
"filters": [{"field", "operator", "value"}, ...]}`, field conditions only, with v1's operator
names. `all` is one group; `any` is one group per filter.

Shown in v1, rules of another dialect keep their meaning (worker.rules.items for single
conditions): one group is `matchType: "all"`; several groups are `"any"`, each group of more
than one condition becoming one filter `{"field": "_all", "operator": "all", "value":
[filters]}`. A nested v2 tree (docs/rules.md) is shown the same way, its inner `any`, `all`
and `not` nodes as filters `{"field": "_any"|"_all"|"_not", ...}` (worker.rules.items).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.rules.conditions import Context, Errors
from worker.rules.errors import join_loc
from worker.rules.fields import FieldRegistry
from worker.rules.items import canonical_items, item_of, read_items, tree_item
from worker.rules.limits import MAX_V1_FILTERS
from worker.rules.shapes import Groups
from worker.rules.structure import check_size, object_list, reject_unknown_keys
from worker.rules.tree import RuleTree

# v1 name -> canonical name
OPERATORS: Mapping[str, str] = {
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

V1Rules = tuple[str, list[Any]]  # (matchType, filters)


def parse(raw: Any, registry: FieldRegistry, *, loc: str = "") -> RuleTree:
    check_size(raw, loc)
    errors = Errors()
    if not isinstance(raw, Mapping):
        errors.add(loc or "body", "must be an object with matchType and filters", "object_type")
        errors.raise_if_any()
    reject_unknown_keys(raw, {"matchType", "filters"}, loc, errors)
    match_type = raw.get("matchType")
    if match_type not in ("all", "any"):
        errors.add(join_loc(loc, "matchType"), "must be 'all' or 'any'", "match_type")
    filters = object_list(raw, "filters", loc, MAX_V1_FILTERS, errors)
    errors.raise_if_any()
    assert filters is not None
    conditions = read_items(filters, "filters", OPERATORS, Context(registry), errors, loc)
    errors.raise_if_any()
    groups = (tuple(conditions),) if match_type == "all" else tuple((c,) for c in conditions)
    return RuleTree.of_groups(groups)


def read_groups(rules: Any) -> Groups:
    """Stored rules as canonical groups, leniently (worker.rules.items)."""
    if not isinstance(rules, Mapping):
        return []
    conditions = canonical_items(rules.get("filters"), OPERATORS)
    return [conditions] if rules.get("matchType") == "all" else [[c] for c in conditions]


def as_written(rules: Any) -> V1Rules | None:
    """Stored rules shown as they were written, when they have this dialect's outer shape."""
    if not isinstance(rules, Mapping):
        return None
    filters = rules.get("filters")
    return str(rules.get("matchType", "all")), filters if isinstance(filters, list) else []


def render(groups: Groups) -> V1Rules:
    if len(groups) <= 1:
        return "all", [item_of(c, OPERATORS) for group in groups for c in group]
    return "any", [
        item_of(group[0], OPERATORS)
        if len(group) == 1
        else {"field": "_all", "operator": "all", "value": [item_of(c, OPERATORS) for c in group]}
        for group in groups
    ]


def render_nested(rules: Mapping[str, Any]) -> V1Rules:
    """A nested v2 tree: its top-level `any` or `all` as matchType, its nodes as filters."""
    match_type = "all" if isinstance(rules.get("all"), list) else "any"
    nodes = rules.get(match_type)
    return match_type, [tree_item(n, OPERATORS) for n in nodes or () if isinstance(n, Mapping)]
