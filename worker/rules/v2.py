"""The v2 dialect, `rules_json` (docs/rules.md): `{"any": [{"all": [condition, ...]}, ...]}`,
groups OR-ed, conditions AND-ed, every condition kind. It is the canonical form itself, so
rendering into it only wraps the groups.

Errors are located in the input as written: `rules_json.any[0].all[2].value`. Sizes are
checked before contents, so oversized input is rejected before any per-condition work.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from worker.rules.conditions import Context, Errors, read_condition
from worker.rules.errors import join_loc
from worker.rules.fields import FieldRegistry
from worker.rules.limits import MAX_CONDITIONS, MAX_CONDITIONS_PER_GROUP, MAX_GROUPS
from worker.rules.references import SegmentGraph
from worker.rules.shapes import ConditionShape, Groups
from worker.rules.structure import check_size, object_list, reject_unknown_keys
from worker.rules.tree import RuleTree


# The documented shape of v2 rules (the HTTP API's OpenAPI document). `parse` validates
# them, with the account's fields and exact locations. Docstrings here are API descriptions.
class RuleGroup(BaseModel):
    """Conditions AND-ed."""

    model_config = ConfigDict(extra="forbid")
    all: Annotated[list[ConditionShape], Field(min_length=1, max_length=MAX_CONDITIONS_PER_GROUP)]


class RulesJson(BaseModel):
    """Groups OR-ed (docs/rules.md). Documentation only: worker.rules validates."""

    model_config = ConfigDict(extra="forbid")
    any: Annotated[list[RuleGroup], Field(min_length=1, max_length=MAX_GROUPS)]


def parse(
    raw: Any,
    registry: FieldRegistry,
    *,
    known_list_ids: Collection[UUID] | None = None,
    segments: SegmentGraph | None = None,
    loc: str = "rules_json",
) -> RuleTree:
    errors = Errors()
    ctx = Context(registry, known_list_ids, segments)
    check_size(raw, loc)
    if isinstance(raw, Mapping):
        reject_unknown_keys(raw, {"any"}, loc, errors)
    groups_raw = object_list(raw, "any", loc, MAX_GROUPS, errors)
    if groups_raw is None or _too_many_conditions(groups_raw, loc, errors):
        errors.raise_if_any()  # nothing more can be checked, or it would be too much work
    assert groups_raw is not None
    groups = []
    for g, group_raw in enumerate(groups_raw):
        group_loc = join_loc(loc, "any", g)
        if isinstance(group_raw, Mapping):
            reject_unknown_keys(group_raw, {"all"}, group_loc, errors)
        conditions_raw = object_list(group_raw, "all", group_loc, MAX_CONDITIONS_PER_GROUP, errors)
        conditions = [
            read_condition(c, join_loc(group_loc, "all", i), ctx, errors)
            for i, c in enumerate(conditions_raw or ())
        ]
        groups.append(tuple(c for c in conditions if c is not None))
    errors.raise_if_any()
    return RuleTree(tuple(groups))


def read_groups(rules: Any) -> Groups:
    """Stored rules as canonical groups. They were validated when written; anything malformed
    (written directly by another system) is left out."""
    if not isinstance(rules, Mapping):
        return []
    return [
        [c for c in g["all"] if isinstance(c, dict)]
        for g in rules.get("any") or ()
        if isinstance(g, Mapping) and isinstance(g.get("all"), list)
    ]


def as_written(rules: Any) -> dict[str, Any] | None:
    """Stored rules shown as they were written, when they have this dialect's outer shape."""
    return rules if isinstance(rules, dict) else None


def render(groups: Groups) -> dict[str, Any]:
    return {"any": [{"all": group} for group in groups]}


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
