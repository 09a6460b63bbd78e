"""One condition: its JSON checked against its kind's shape and the account's fields, then
turned into a typed node of the canonical tree. Every problem is reported with its location."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from worker.rules.errors import RuleError, RulesInvalid, join_loc
from worker.rules.fields import ALL_FIELD_OPERATORS, OPERATORS_BY_TYPE, FieldRegistry
from worker.rules.shapes import (
    SHAPES,
    ActivityShape,
    DaysWindowShape,
    DeliverabilityShape,
    FieldShape,
    IspShape,
    MembershipShape,
)
from worker.rules.tree import (
    ActivityCondition,
    Condition,
    DaysWindow,
    FieldCondition,
    IspCondition,
    MembershipCondition,
)
from worker.rules.values_check import ValueProblem, value_reader

_FRIENDLY_PYDANTIC = {
    "extra_forbidden": "unknown key",
    "missing": "is required",
}


@dataclass
class Errors:
    """Collects every problem in one input so the caller sees them all at once."""

    items: list[RuleError] = field(default_factory=list)

    def add(self, loc: str, msg: str, type_: str) -> None:
        self.items.append(RuleError(loc, msg, type_))

    def add_pydantic(self, loc: str, exc: ValidationError) -> None:
        for e in exc.errors(include_url=False):
            self.add(
                join_loc(loc, *e["loc"]), _FRIENDLY_PYDANTIC.get(e["type"], e["msg"]), e["type"]
            )

    def raise_if_any(self) -> None:
        if self.items:
            raise RulesInvalid(self.items)


@dataclass(frozen=True)
class Context:
    registry: FieldRegistry
    # The account's list ids, when the caller has looked them up; None skips the check.
    known_list_ids: Collection[UUID] | None = None


def read_condition(raw: Any, loc: str, ctx: Context, errors: Errors) -> Condition | None:
    if not isinstance(raw, Mapping):
        errors.add(loc, "must be an object with a 'kind'", "condition_type")
        return None
    kind = raw.get("kind")
    if kind is None:
        errors.add(join_loc(loc, "kind"), "is required", "missing")
        return None
    if not isinstance(kind, str) or kind not in SHAPES:
        errors.add(
            join_loc(loc, "kind"),
            f"unknown kind {_show(kind)}; expected one of {', '.join(SHAPES)}",
            "unknown_kind",
        )
        return None
    try:
        shape = SHAPES[kind].model_validate(raw)
    except ValidationError as exc:
        errors.add_pydantic(loc, exc)
        return None
    return _typed(shape, loc, ctx, errors)


def _typed(shape: Any, loc: str, ctx: Context, errors: Errors) -> Condition | None:
    match shape:
        case FieldShape():
            return read_field_condition(shape, loc, ctx, errors)
        case ActivityShape() | DeliverabilityShape():
            return _activity(shape, loc, errors)
        case MembershipShape():
            return _membership(shape, loc, ctx, errors)
        case IspShape():
            return IspCondition(shape.operator, tuple(shape.values))
    raise AssertionError(f"no handler for {type(shape).__name__}")  # pragma: no cover


def read_field_condition(
    shape: FieldShape, loc: str, ctx: Context, errors: Errors, shown_operator: str | None = None
) -> FieldCondition | None:
    shown = shown_operator or shape.operator
    spec = ctx.registry.lookup(shape.field)
    if spec is None:
        errors.add(
            join_loc(loc, "field"),
            f"unknown field {_show(shape.field)}: not a contact field and not a custom field "
            "declared for this account",
            "unknown_field",
        )
        return None
    if shape.operator not in ALL_FIELD_OPERATORS:
        errors.add(
            join_loc(loc, "operator"), f"unknown operator {_show(shown)}", "unknown_operator"
        )
        return None
    if shape.operator not in OPERATORS_BY_TYPE[spec.type]:
        errors.add(
            join_loc(loc, "operator"),
            f"operator {_show(shown)} is not allowed for field {_show(spec.name)} "
            f"of type {spec.type}",
            "operator_not_allowed",
        )
        return None
    try:
        value = value_reader(spec.type, shape.operator)(shape.value)
    except ValueProblem as problem:
        value_loc = join_loc(loc, "value")
        if problem.index is not None:
            value_loc = join_loc(value_loc, problem.index)
        errors.add(value_loc, problem.msg, problem.type)
        return None
    return FieldCondition(spec, shape.operator, value)


def _activity(
    shape: ActivityShape | DeliverabilityShape, loc: str, errors: Errors
) -> ActivityCondition | None:
    counted = shape.operator.startswith("count_")
    if counted and shape.value is None:
        errors.add(join_loc(loc, "value"), f"is required for {shape.operator}", "missing")
        return None
    if not counted and shape.value is not None:
        errors.add(
            join_loc(loc, "value"), f"must be omitted for {shape.operator}", "value_forbidden"
        )
        return None
    include: tuple[UUID, ...] = ()
    exclude: tuple[UUID, ...] = ()
    if isinstance(shape, ActivityShape):
        include = tuple(shape.include_campaign_ids or ())
        exclude = tuple(shape.exclude_campaign_ids or ())
        if include and exclude:
            errors.add(
                join_loc(loc, "exclude_campaign_ids"),
                "cannot be used together with include_campaign_ids",
                "campaign_filters_conflict",
            )
            return None
    return ActivityCondition(
        kind=shape.kind,
        metric=shape.metric,
        operator=shape.operator,
        value=shape.value,
        days_window=_window(shape.days_window),
        include_campaign_ids=include,
        exclude_campaign_ids=exclude,
    )


def _window(shape: DaysWindowShape | None) -> DaysWindow | None:
    return None if shape is None else DaysWindow(shape.mode, shape.days)


def _membership(
    shape: MembershipShape, loc: str, ctx: Context, errors: Errors
) -> MembershipCondition | None:
    foreign = check_list_ids(shape.list_ids, join_loc(loc, "list_ids"), ctx, errors)
    return None if foreign else MembershipCondition(shape.operator, tuple(shape.list_ids))


def check_list_ids(ids: list[UUID], loc: str, ctx: Context, errors: Errors) -> bool:
    """Report ids that are not the account's lists; True if there were any."""
    if ctx.known_list_ids is None:
        return False
    found = False
    for index, list_id in enumerate(ids):
        if list_id not in ctx.known_list_ids:
            errors.add(
                join_loc(loc, index),
                f"list {list_id} is not a list of this account",
                "unknown_list",
            )
            found = True
    return found


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
