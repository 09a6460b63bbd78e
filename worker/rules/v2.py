"""The v2 dialect, `rules_json` (docs/rules.md): `{"any": [{"all": [condition, ...]}, ...]}`,
groups OR-ed, conditions AND-ed, every condition kind. It is the canonical form itself, so
rendering into it only wraps the groups.

Errors are located in the input as written: `rules_json.any[0].all[2].value`. Sizes are
checked before contents, so oversized input is rejected before any per-condition work.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, RootModel

from worker.rules.conditions import Context, Errors, read_condition
from worker.rules.errors import RuleError, join_loc
from worker.rules.fields import FieldRegistry
from worker.rules.limits import MAX_CONDITIONS, MAX_CONDITIONS_PER_GROUP, MAX_DEPTH, MAX_GROUPS
from worker.rules.references import SegmentGraph
from worker.rules.shapes import ConditionShape, Groups
from worker.rules.structure import check_size, object_list, reject_unknown_keys
from worker.rules.tree import AllNode, AnyNode, Node, NotNode, RuleTree


# The documented shape of v2 rules (the HTTP API's OpenAPI document). `parse` validates
# them, with the account's fields and exact locations. Docstrings here are API descriptions.
class AnyGroup(BaseModel):
    """At least one of the nodes matches (OR)."""

    model_config = ConfigDict(extra="forbid")
    any: Annotated[list[RuleNode], Field(min_length=1, max_length=MAX_GROUPS)]


class AllGroup(BaseModel):
    """Every node matches (AND)."""

    model_config = ConfigDict(extra="forbid")
    all: Annotated[list[RuleNode], Field(min_length=1, max_length=MAX_CONDITIONS_PER_GROUP)]


class NotGroup(BaseModel):
    """The node does not match: exactly the contacts of the universe it does not match."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    not_: RuleNode = Field(alias="not")


RuleNode = ConditionShape | AnyGroup | AllGroup | NotGroup


class RulesJson(RootModel[AnyGroup | AllGroup]):
    """`{"any": [node, ...]}` or `{"all": [node, ...]}`; a node is a condition, or an `any`,
    `all` or `not` of nodes, nested at most 6 deep (each `any`/`all`/`not` counts one, the top
    level is 1). Lists are non-empty. `{"not": node}` matches exactly the contacts of the
    universe that the node does not match (docs/rules.md, "Nesting and not").

    The first release's shape, groups OR-ed and conditions AND-ed:
    `{"any": [{"all": [{"kind": "field", "field": "country", "operator": "equals",
    "value": "FR"}, {"kind": "activity", "metric": "open", "operator": "ever"}]}]}`

    Opened in 30 days or clicked in 90, and not tagged churn-risk:
    `{"all": [{"any": [{"kind": "activity", "metric": "open", "operator": "ever",
    "days_window": {"mode": "last", "days": 30}}, {"kind": "activity", "metric": "click",
    "operator": "ever", "days_window": {"mode": "last", "days": 90}}]}, {"not": {"kind":
    "field", "field": "tags", "operator": "has_any", "value": ["churn-risk"]}}]}`"""


def parse(
    raw: Any,
    registry: FieldRegistry,
    *,
    known_list_ids: Collection[UUID] | None = None,
    segments: SegmentGraph | None = None,
    loc: str = "rules_json",
) -> RuleTree:
    """Two passes: the structure (the shape of every `any`/`all`/`not` node, depth, list
    sizes), then, when the number of conditions is within the limit, the conditions, so
    oversized input is rejected before any per-condition work. Errors are reported in the
    order of the document, structure and conditions together."""
    check_size(raw, loc)
    errors = Errors()
    if not isinstance(raw, Mapping):
        errors.add(loc or "body", "must be an object with 'any' or 'all'", "object_type")
        errors.raise_if_any()
    if "not" in raw and not (set(raw) & {"any", "all"}):
        errors.add(
            join_loc(loc, "not"),
            "the top level must be 'any' or 'all'; put the 'not' inside one: "
            '{"all": [{"not": ...}]}',
            "extra_forbidden",
        )
        errors.raise_if_any()
    skeleton = _structure(raw, loc, 1, top=True)
    conditions = sum(1 for _ in _leaves(skeleton))
    if conditions > MAX_CONDITIONS:
        errors.add(
            join_loc(loc, skeleton.key),
            f"has {conditions} conditions in all; at most {MAX_CONDITIONS} are allowed",
            "too_many_conditions",
        )
        errors.raise_if_any()
    root = _typed(skeleton, Context(registry, known_list_ids, segments), errors)
    errors.raise_if_any()
    assert isinstance(root, AnyNode | AllNode)
    return RuleTree(root)


@dataclass
class _Leaf:
    """A condition, read in the second pass (None: not an object, `problems` says why)."""

    raw: Mapping[str, Any] | None
    loc: str
    problems: list[RuleError]


@dataclass
class _Group:
    """An `any`, `all` or `not` node, with the problems of its own shape."""

    key: str
    children: list[_Group | _Leaf]
    problems: list[RuleError]


_GROUP_KEYS = ("any", "all", "not")
_MAX_ITEMS = {"any": MAX_GROUPS, "all": MAX_CONDITIONS_PER_GROUP}


def _structure(raw: Mapping[str, Any], loc: str, depth: int, *, top: bool = False) -> _Group:
    """The group node `raw` (one of any/all/not; at the top, one of any/all). Children that
    are not group nodes are leaves. A node too deep or too wide has no children read."""
    errors = Errors()
    keys = [k for k in _GROUP_KEYS if k in raw]
    shape = "'any' or 'all'" if top else "one of 'any', 'all' or 'not'"
    if len(keys) != 1:
        found = f", not {' and '.join(keys)} together" if keys else ""
        errors.add(loc or "body", f"must have exactly {shape}{found}", "node_shape")
        return _Group("any", [], errors.items)
    (key,) = keys
    group = _Group(key, [], errors.items)
    reject_unknown_keys(raw, {key}, loc, errors)
    if depth > MAX_DEPTH:
        errors.add(
            loc or "body",
            f"is nested {depth} deep; at most {MAX_DEPTH} levels of any/all/not are allowed",
            "too_deep",
        )
        return group
    key_loc = join_loc(loc, key)
    if key == "not":
        if isinstance(raw["not"], list):
            errors.add(key_loc, "must be one node (an object), not an array", "not_type")
        else:
            group.children.append(_node(raw["not"], key_loc, depth))
        return group
    items = object_list(raw, key, loc, _MAX_ITEMS[key], errors)
    group.children.extend(_node(x, join_loc(key_loc, i), depth) for i, x in enumerate(items or ()))
    return group


def _node(raw: Any, loc: str, parent_depth: int) -> _Group | _Leaf:
    if not isinstance(raw, Mapping) or not raw:
        msg = "must be an object: a condition with a 'kind', or one of 'any', 'all' or 'not'"
        return _Leaf(None, loc, [RuleError(loc, msg, "condition_type")])
    if any(k in raw for k in _GROUP_KEYS):
        return _structure(raw, loc, parent_depth + 1)
    return _Leaf(raw, loc, [])


def _leaves(group: _Group) -> Iterator[_Leaf]:
    for child in group.children:
        if isinstance(child, _Leaf):
            yield child
        else:
            yield from _leaves(child)


def _typed(node: _Group | _Leaf, ctx: Context, errors: Errors) -> Node | None:
    """The typed node, or None with its errors (and its children's) recorded."""
    errors.items.extend(node.problems)
    if isinstance(node, _Leaf):
        return None if node.raw is None else read_condition(node.raw, node.loc, ctx, errors)
    children = [_typed(child, ctx, errors) for child in node.children]
    kept = tuple(c for c in children if c is not None)
    if node.problems or not kept or len(kept) != len(children):
        return None  # an error is recorded; the tree is not used
    if node.key == "not":
        return NotNode(kept[0])
    return AnyNode(kept) if node.key == "any" else AllNode(kept)


def read_groups(rules: Any) -> Groups:
    """Stored rules as canonical groups when they are flat (see `flat_json`); nested rules
    have none (`is_nested`: they are shown through render_nested). They were validated when
    written; anything malformed (written directly by another system) is left out."""
    return flat_json(rules) or []


def flat_json(rules: Any) -> Groups | None:
    """Rules as an OR of AND-groups of condition objects when they are written that way: the
    first release's `{"any": [{"all": [...]}, ...]}`, a single `all` or `any` of conditions,
    or a mix of both under `any`. None for anything nested deeper or with a `not`."""
    if not isinstance(rules, Mapping):
        return None
    if isinstance(rules.get("all"), list):
        conditions = [c for c in rules["all"] if isinstance(c, dict)]
        return None if any(map(_is_group_node, conditions)) else [conditions]
    if not isinstance(rules.get("any"), list):
        return None
    groups: Groups = []
    for child in rules["any"]:
        if not isinstance(child, dict):
            continue
        if "all" in child:
            inner = flat_json(child)
            if inner is None:
                return None
            groups.extend(inner)
        elif _is_group_node(child):
            return None
        else:
            groups.append([child])
    return groups


def is_nested(rules: Any) -> bool:
    """True for stored rules with a top-level `any` or `all` list but no flat reading (see
    flat_json); malformed rules are not nested, they read as no groups."""
    return (
        isinstance(rules, Mapping)
        and any(isinstance(rules.get(key), list) for key in ("any", "all"))
        and flat_json(rules) is None
    )


def _is_group_node(node: Mapping[str, Any]) -> bool:
    return any(key in node for key in _GROUP_KEYS)


def as_written(rules: Any) -> dict[str, Any] | None:
    """Stored rules shown as they were written, when they have this dialect's outer shape."""
    return rules if isinstance(rules, dict) else None


def render_nested(rules: Mapping[str, Any]) -> dict[str, Any]:
    return dict(rules)


def render(groups: Groups) -> dict[str, Any]:
    return {"any": [{"all": group} for group in groups]}
