"""One condition: its JSON checked against its kind's shape and the account's fields, then
turned into a typed node of the canonical tree. Every problem is reported with its location."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from pydantic import ValidationError

from worker.rules.choices import one_of, show
from worker.rules.errors import RuleError, RulesInvalid, join_loc
from worker.rules.fields import (
    ALL_FIELD_OPERATORS,
    OPERATORS_BY_TYPE,
    FieldRegistry,
    FieldSource,
    FieldType,
)
from worker.rules.references import SegmentGraph
from worker.rules.shapes import (
    SHAPES,
    ActivityShape,
    DaysWindowShape,
    DeliverabilityShape,
    FieldShape,
    IspShape,
    MembershipShape,
    SegmentShape,
)
from worker.rules.tree import (
    ActivityCondition,
    CalendarPeriod,
    Condition,
    DaysWindow,
    FieldCondition,
    IspCondition,
    MembershipCondition,
    SegmentCondition,
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
    # The account's segments and their references, when the caller has looked them up;
    # None skips the checks of `segment` conditions' ids (stored rules were checked).
    segments: SegmentGraph | None = None


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
            f"unknown kind {show(kind)}; {one_of(SHAPES)}",
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
        case SegmentShape():
            return _segment(shape, loc, ctx, errors)
    raise AssertionError(f"no handler for {type(shape).__name__}")  # pragma: no cover


def read_field_condition(
    shape: FieldShape,
    loc: str,
    ctx: Context,
    errors: Errors,
    spelling: Mapping[str, str] | None = None,
) -> FieldCondition | None:
    """`spelling` maps the dialect's operator names to canonical ones (None: canonical), so
    that errors name the operators as the user writes them."""
    spec = ctx.registry.lookup(shape.field)
    if spec is None:
        errors.add(join_loc(loc, "field"), ctx.registry.unknown(shape.field), "unknown_field")
        return None
    shown = spelt(shape.operator, spelling)
    if shape.operator not in ALL_FIELD_OPERATORS:
        errors.add(
            join_loc(loc, "operator"),
            f"unknown operator {show(shown)} for field {show(spec.name)} of type {spec.type}; "
            f"{_operators_for(spec.type, spelling)}",
            "unknown_operator",
        )
        return None
    if shape.operator not in OPERATORS_BY_TYPE[spec.type]:
        errors.add(
            join_loc(loc, "operator"),
            f"operator {show(shown)} is not allowed for field {show(spec.name)} "
            f"of type {spec.type}; {_operators_for(spec.type, spelling)}",
            "operator_not_allowed",
        )
        return None
    if shape.operator == "anniversary_within_days" and spec.source is FieldSource.DERIVED:
        # The anniversary of a latest event is not a date anyone celebrates, and it would
        # mean aggregating every event of every contact at each build.
        errors.add(
            join_loc(loc, "operator"),
            f"operator {show(shown)} is not allowed for field {show(spec.name)}: it applies "
            "to created_at, updated_at and custom datetime fields; use in_calendar or "
            "within_days for recent activity",
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
    window = _window(shape.days_window, join_loc(loc, "days_window"), errors)
    if window is False:
        return None
    return ActivityCondition(
        kind=shape.kind,
        metric=shape.metric,
        operator=shape.operator,
        value=shape.value,
        days_window=window,
        include_campaign_ids=include,
        exclude_campaign_ids=exclude,
    )


def _window(
    shape: DaysWindowShape | None, loc: str, errors: Errors
) -> DaysWindow | CalendarPeriod | Literal[False] | None:
    """The window, None without one, or False after reporting what is missing or extra:
    `last`/`more_than` take `days`; `calendar` takes `unit` and `offset`."""
    if shape is None:
        return None
    calendar = shape.mode == "calendar"
    needed, forbidden = (
        (("unit", "offset"), ("days",)) if calendar else (("days",), ("unit", "offset"))
    )
    ok = True
    for key in needed:
        if getattr(shape, key) is None:
            errors.add(join_loc(loc, key), f"is required for mode {shape.mode!r}", "missing")
            ok = False
    for key in forbidden:
        if getattr(shape, key) is not None:
            errors.add(
                join_loc(loc, key),
                f"must be omitted for mode {shape.mode!r}; "
                + (
                    "mode 'calendar' takes unit and offset"
                    if not calendar
                    else "modes 'last' and 'more_than' take days"
                ),
                "value_forbidden",
            )
            ok = False
    if not ok:
        return False
    if calendar:
        assert shape.unit is not None and shape.offset is not None
        return CalendarPeriod(shape.unit, shape.offset)
    assert shape.days is not None and shape.mode != "calendar"
    return DaysWindow(shape.mode, shape.days)


def _membership(
    shape: MembershipShape, loc: str, ctx: Context, errors: Errors
) -> MembershipCondition | None:
    foreign = check_list_ids(shape.list_ids, join_loc(loc, "list_ids"), ctx, errors)
    return None if foreign else MembershipCondition(shape.operator, tuple(shape.list_ids))


def _segment(
    shape: SegmentShape, loc: str, ctx: Context, errors: Errors
) -> SegmentCondition | None:
    graph = ctx.segments
    problems = [] if graph is None else [graph.problem(s) for s in shape.segment_ids]
    for index, problem in enumerate(problems):
        if problem is not None:
            errors.add(join_loc(loc, "segment_ids", index), problem.msg, problem.type)
    if any(problems):
        return None
    return SegmentCondition(shape.operator, tuple(shape.segment_ids))


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


def spelt(operator: str, spelling: Mapping[str, str] | None) -> str:
    """The dialect's name for a canonical operator (itself when the dialect has none)."""
    if spelling is None:
        return operator
    return next((name for name, canonical in spelling.items() if canonical == operator), operator)


def _operators_for(field_type: FieldType, spelling: Mapping[str, str] | None) -> str:
    """The operators a field of this type takes, as the dialect names them."""
    allowed = OPERATORS_BY_TYPE[field_type]
    if spelling is None:
        return one_of(sorted(allowed))
    names = [name for name, canonical in spelling.items() if canonical in allowed]
    if not names:
        return f"no operator of this dialect applies to a {field_type} field (v2 rules have some)"
    return one_of(names)
