"""The flat items of the v1 and simple dialects: `{"field", "operator", "value"}`, each a field
condition with the dialect's own operator names (its `spelling`: dialect name -> canonical).

Read into typed conditions for parsing, into canonical JSON for showing in another dialect,
and written back from canonical JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from worker.rules.choices import one_of, show
from worker.rules.conditions import Context, Errors, read_field_condition, spelt
from worker.rules.errors import join_loc
from worker.rules.shapes import ConditionJson, FieldShape
from worker.rules.structure import reject_unknown_keys
from worker.rules.tree import Condition

ITEM_KEYS = {"field", "operator", "value"}


def read_items(
    items: list[Any],
    key: str,
    spelling: Mapping[str, str],
    ctx: Context,
    errors: Errors,
    loc: str,
) -> list[Condition]:
    """The typed conditions of `items` (found at `loc`.`key`); problems go to `errors`."""
    out: list[Condition] = []
    for index, item in enumerate(items):
        item_loc = join_loc(loc, key, index)
        if not isinstance(item, Mapping):
            errors.add(item_loc, "must be an object with field, operator and value", "object_type")
            continue
        if set(item) - ITEM_KEYS:
            reject_unknown_keys(item, ITEM_KEYS, item_loc, errors)
            continue
        operator = item.get("operator")
        if isinstance(operator, str) and operator not in spelling:
            errors.add(
                join_loc(item_loc, "operator"),
                f"unknown operator {show(operator)}; {one_of(spelling)}",
                "unknown_operator",
            )
            continue
        if isinstance(operator, str):
            item = {**item, "operator": spelling[operator]}
        try:
            shape = FieldShape.model_validate({**item, "kind": "field"})
        except ValidationError as exc:
            errors.add_pydantic(item_loc, exc)
            continue
        condition = read_field_condition(shape, item_loc, ctx, errors, spelling)
        if condition is not None:
            out.append(condition)
    return out


def canonical_items(items: Any, spelling: Mapping[str, str]) -> list[ConditionJson]:
    """Stored items as canonical field conditions, leniently: what is not an object is left
    out, and an operator the dialect lacks is kept as written."""
    out = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        operator = item.get("operator")
        condition: ConditionJson = {
            "kind": "field",
            "field": item.get("field"),
            "operator": spelling.get(operator, operator) if isinstance(operator, str) else None,
        }
        if item.get("value") is not None:
            condition["value"] = item["value"]
        out.append(condition)
    return out


def item_of(condition: ConditionJson, spelling: Mapping[str, str]) -> dict[str, Any]:
    """A canonical condition as an item: a field condition keeps its canonical operator where
    the dialect has no name for it; a condition of another kind becomes
    `{"field": "_<kind>", "operator": <operator>, "value": {<the rest>}}`."""
    operator = condition.get("operator")
    if condition.get("kind") == "field":
        shown = spelt(operator, spelling) if isinstance(operator, str) else operator
        return {"field": condition.get("field"), "operator": shown, "value": condition.get("value")}
    rest = {k: v for k, v in condition.items() if k not in ("kind", "operator")}
    return {"field": f"_{condition.get('kind')}", "operator": operator, "value": rest}


def tree_item(node: Mapping[str, Any], spelling: Mapping[str, str]) -> dict[str, Any]:
    """A node of a nested v2 tree as an item, in the same way item_of shows a condition the
    dialect cannot say: `{"field": "_any"|"_all", "operator": "any"|"all", "value": [items]}`
    and `{"field": "_not", "operator": "not", "value": item}`; conditions as item_of."""
    for key in ("any", "all"):
        if isinstance(node.get(key), list):
            children = [tree_item(c, spelling) for c in node[key] if isinstance(c, Mapping)]
            return {"field": f"_{key}", "operator": key, "value": children}
    if isinstance(node.get("not"), Mapping):
        return {"field": "_not", "operator": "not", "value": tree_item(node["not"], spelling)}
    return item_of(dict(node), spelling)


def shown_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A v1 filter or simple rule for output. Rows written directly by another system are
    shown as they are, with `field` and `operator` as strings (or null)."""
    field, operator = raw.get("field"), raw.get("operator")
    return {
        "field": None if field is None else str(field),
        "operator": None if operator is None else str(operator),
        "value": raw.get("value"),
    }
