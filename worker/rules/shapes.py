"""The JSON shape of each condition kind, as pydantic models (unknown keys are errors).

These check structure only; what a field condition's value must be depends on the field's
type, which only the account's registry knows (worker.rules.conditions). The one union of
the kinds, `ConditionShape`, also documents the v2 rules in the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from worker.rules.limits import (
    MAX_ARRAY_ITEMS,
    MAX_DAYS,
    MAX_FIELD_NAME_LENGTH,
    MAX_PERIODS_BACK,
    MAX_SEGMENT_IDS,
)

Days = Annotated[StrictInt, Field(ge=1, le=MAX_DAYS)]
CampaignIds = Annotated[list[UUID], Field(max_length=MAX_ARRAY_ITEMS)]
# Counts and ISP ids are compared with PostgreSQL int4/int8; keep them in range.
Count = Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]
IspId = Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Unit = Literal["day", "week", "month", "year"]
PeriodOffset = Annotated[StrictInt, Field(ge=-MAX_PERIODS_BACK, le=0)]


class CalendarPeriodShape(_Shape):
    """A calendar period in the segment's timezone: `offset` 0 is the current one, -1 the
    previous one (docs/rules.md, timezones)."""

    unit: Unit
    offset: PeriodOffset


class DaysWindowShape(_Shape):
    """`last`/`more_than` take `days` (rolling 24-hour days); `calendar` takes `unit` and
    `offset` (a local calendar period). Which keys each mode needs is checked in
    worker.rules.conditions, so an error names the key."""

    mode: Literal["last", "more_than", "calendar"]
    days: Days | None = None
    unit: Unit | None = None
    offset: PeriodOffset | None = None


class FieldShape(_Shape):
    kind: Literal["field"]
    field: Annotated[StrictStr, Field(min_length=1, max_length=MAX_FIELD_NAME_LENGTH)]
    operator: Annotated[StrictStr, Field(max_length=MAX_FIELD_NAME_LENGTH)]
    value: Any = None


class ActivityShape(_Shape):
    kind: Literal["activity"]
    metric: Literal["open", "click"]
    # One Literal, not a union of them: pydantic then reports one error at `operator`.
    operator: Literal["ever", "never", "count_gte", "count_lte", "count_eq"]
    value: Count | None = None
    days_window: DaysWindowShape | None = None
    # The product brief's own example sends both as []: empty means "no filter".
    include_campaign_ids: CampaignIds | None = None
    exclude_campaign_ids: CampaignIds | None = None


class DeliverabilityShape(_Shape):
    kind: Literal["deliverability"]
    metric: Literal["bounce", "complaint", "delivered", "unsubscribe"]
    operator: Literal["ever", "count_gte", "count_lte", "count_eq"]
    value: Count | None = None
    days_window: DaysWindowShape | None = None


class MembershipShape(_Shape):
    kind: Literal["membership"]
    operator: Literal["in", "not_in"]
    list_ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_ARRAY_ITEMS)]


class IspShape(_Shape):
    kind: Literal["isp"]
    operator: Literal["in", "not_in"]
    values: Annotated[list[IspId], Field(min_length=1, max_length=MAX_ARRAY_ITEMS)]


class SegmentShape(_Shape):
    """Membership of other segments of the account (docs/rules.md, "segment"): `in` = a member
    of at least one of them, `not_in` = of none."""

    kind: Literal["segment"]
    operator: Literal["in", "not_in"]
    segment_ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_SEGMENT_IDS)]


AnyShape = (
    FieldShape | ActivityShape | DeliverabilityShape | MembershipShape | IspShape | SegmentShape
)
ConditionShape = Annotated[AnyShape, Field(discriminator="kind")]


def _kind(shape: type[_Shape]) -> str:
    (kind,) = get_args(shape.model_fields["kind"].annotation)
    return str(kind)


# kind -> its shape, in the union's order (which error messages list).
SHAPES: dict[str, type[_Shape]] = {_kind(shape): shape for shape in get_args(AnyShape)}

# Rules as canonical JSON: OR of groups, each an AND of condition objects. Rendering between
# dialects goes through this form (worker.rules.dialects).
ConditionJson = dict[str, Any]
Groups = list[list[ConditionJson]]
