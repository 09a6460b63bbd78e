"""Showing a segment's rules in each API's dialect, whatever dialect they were written in.

Pure functions over the rules as stored (`segments.dialect`, `segments.rules`). Rules shown in
their own dialect are returned exactly as written. Otherwise they go through the canonical
form (OR of AND-groups of conditions) and back out, and where the target dialect cannot say
something the closest faithful form is used, never a different meaning (README: HTTP API,
Rules across the three APIs):

- a field condition whose operator the dialect lacks keeps its canonical operator name
  (`{"field": "tags", "operator": "has_any", "value": ["vip"]}`);
- a condition of another kind becomes `{"field": "_<kind>", "operator": <operator>,
  "value": {<the rest of the condition>}}`, e.g. `{"field": "_activity", "operator":
  "count_gte", "value": {"metric": "open", "value": 1, "days_window": {...}}}`;
- v1, several groups of which some have several conditions: `matchType` "any", and each
  such group is one filter `{"field": "_all", "operator": "all", "value": [filters]}`;
- simple (rules are AND-ed), several groups: one rule `{"field": "_any", "operator": "any",
  "value": [[rules of group 1], [rules of group 2], ...]}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.rules.parse import SIMPLE_OPERATORS, V1_OPERATORS

Condition = dict[str, Any]
Groups = list[list[Condition]]

_TO_V1 = {canonical: v1 for v1, canonical in V1_OPERATORS.items()}
_TO_SIMPLE = {canonical: simple for simple, canonical in SIMPLE_OPERATORS.items()}


def v2_rules(dialect: str, rules: Any) -> dict[str, Any]:
    if dialect == "v2" and isinstance(rules, dict):
        return rules
    return {"any": [{"all": group} for group in canonical_groups(dialect, rules)]}


def v1_rules(dialect: str, rules: Any) -> tuple[str, list[Any]]:
    """(matchType, filters)."""
    if dialect == "v1" and isinstance(rules, Mapping):
        filters = rules.get("filters")
        return str(rules.get("matchType", "all")), filters if isinstance(filters, list) else []
    groups = canonical_groups(dialect, rules)
    if len(groups) <= 1:
        return "all", [_v1_filter(c) for group in groups for c in group]
    return "any", [
        _v1_filter(group[0])
        if len(group) == 1
        else {"field": "_all", "operator": "all", "value": [_v1_filter(c) for c in group]}
        for group in groups
    ]


def simple_rules(dialect: str, rules: Any) -> list[Any]:
    if dialect == "simple" and isinstance(rules, list):
        return rules
    groups = canonical_groups(dialect, rules)
    if len(groups) <= 1:
        return [_simple_rule(c) for group in groups for c in group]
    value = [[_simple_rule(c) for c in group] for group in groups]
    return [{"field": "_any", "operator": "any", "value": value}]


def canonical_groups(dialect: str, rules: Any) -> Groups:
    """The rules as canonical groups of condition objects. Stored rules were validated when
    written; anything malformed (written directly by another system) shows as no groups."""
    groups: Groups = []
    if dialect == "v2" and isinstance(rules, Mapping):
        groups = [
            [c for c in g["all"] if isinstance(c, dict)]
            for g in rules.get("any") or ()
            if isinstance(g, Mapping) and isinstance(g.get("all"), list)
        ]
    elif dialect == "v1" and isinstance(rules, Mapping):
        conditions = _field_conditions(rules.get("filters"), V1_OPERATORS)
        groups = [conditions] if rules.get("matchType") == "all" else [[c] for c in conditions]
    elif dialect == "simple":
        groups = [_field_conditions(rules, SIMPLE_OPERATORS)]
    return [group for group in groups if group]


def _field_conditions(items: Any, operators: Mapping[str, str]) -> list[Condition]:
    out = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        operator = item.get("operator")
        condition: Condition = {
            "kind": "field",
            "field": item.get("field"),
            "operator": operators.get(operator, operator) if isinstance(operator, str) else None,
        }
        if item.get("value") is not None:
            condition["value"] = item["value"]
        out.append(condition)
    return out


def _v1_filter(condition: Condition) -> dict[str, Any]:
    return _dialect_item(condition, _TO_V1)


def _simple_rule(condition: Condition) -> dict[str, Any]:
    return _dialect_item(condition, _TO_SIMPLE)


def _dialect_item(condition: Condition, operators: Mapping[str, str]) -> dict[str, Any]:
    operator = condition.get("operator")
    if condition.get("kind") == "field":
        shown = operators.get(operator, operator) if isinstance(operator, str) else operator
        return {"field": condition.get("field"), "operator": shown, "value": condition.get("value")}
    rest = {k: v for k, v in condition.items() if k not in ("kind", "operator")}
    return {"field": f"_{condition.get('kind')}", "operator": operator, "value": rest}


def shown_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A v1 filter or simple rule for output. Rows written directly by another system are
    shown as they are, with `field` and `operator` as strings (or null)."""
    field, operator = raw.get("field"), raw.get("operator")
    return {
        "field": None if field is None else str(field),
        "operator": None if operator is None else str(operator),
        "value": raw.get("value"),
    }
