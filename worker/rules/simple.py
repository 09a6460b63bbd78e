"""The simple API's dialect (docs/rules.md): a `rules` array of `{"field", "operator",
"value"}` items, all AND-ed (one group), field conditions only, with the simple API's
operator names.

Shown in the simple API, rules of another dialect keep their meaning (worker.rules.items for
single conditions): several groups become one rule `{"field": "_any", "operator": "any",
"value": [[rules of group 1], [rules of group 2], ...]}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from worker.rules.conditions import Context, Errors
from worker.rules.errors import join_loc
from worker.rules.fields import FieldRegistry
from worker.rules.items import canonical_items, item_of, read_items, tree_item
from worker.rules.limits import MAX_SIMPLE_RULES
from worker.rules.shapes import Groups
from worker.rules.structure import check_size, object_list
from worker.rules.tree import RuleTree

# The names the simple API takes, for its documented model: the keys of OPERATORS (a test
# checks they agree).
Operator = Literal[
    "equals", "not_equals", "contains", "not_contains", "starts_with", "before", "after"
]
# simple name -> canonical name
OPERATORS: Mapping[str, str] = {
    "equals": "equals",
    "not_equals": "not_equals",
    "contains": "contains",
    "not_contains": "not_contains",
    "starts_with": "starts_with",
    "before": "lt",
    "after": "gt",
}


# One rule as the simple API takes it, for its OpenAPI document; `parse` validates, with the
# account's fields and exact locations.
class SimpleRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str
    operator: Operator
    value: Any = None


def parse(raw: Any, registry: FieldRegistry, *, loc: str = "") -> RuleTree:
    check_size(raw, join_loc(loc, "rules"))
    errors = Errors()
    rules = object_list({"rules": raw}, "rules", loc, MAX_SIMPLE_RULES, errors)
    errors.raise_if_any()
    assert rules is not None
    conditions = read_items(rules, "rules", OPERATORS, Context(registry), errors, loc)
    errors.raise_if_any()
    return RuleTree.of_groups((tuple(conditions),))


def read_groups(rules: Any) -> Groups:
    """Stored rules as canonical groups, leniently (worker.rules.items)."""
    return [canonical_items(rules, OPERATORS)]


def as_written(rules: Any) -> list[Any] | None:
    """Stored rules shown as they were written, when they have this dialect's outer shape."""
    return rules if isinstance(rules, list) else None


def render(groups: Groups) -> list[Any]:
    if len(groups) <= 1:
        return [item_of(c, OPERATORS) for group in groups for c in group]
    return [
        {
            "field": "_any",
            "operator": "any",
            "value": [[item_of(c, OPERATORS) for c in group] for group in groups],
        }
    ]


def render_nested(rules: Mapping[str, Any]) -> list[Any]:
    """A nested v2 tree: a top-level `all` as its nodes (rules are AND-ed), a top-level `any`
    as one `_any` rule; inner nodes as worker.rules.items shows them."""
    if isinstance(rules.get("all"), list):
        return [tree_item(n, OPERATORS) for n in rules["all"] if isinstance(n, Mapping)]
    return [tree_item(rules, OPERATORS)]
