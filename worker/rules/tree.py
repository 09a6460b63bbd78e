"""The canonical rule tree, typed and validated: what the compiler consumes.

Built only by the dialect parsers (worker.rules.v2, v1, simple), so every value here is
already checked: text values are non-empty, datetimes are aware UTC, numbers are Decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from worker.rules.fields import FieldSpec

Scalar = str | Decimal | datetime | bool | int
FieldValue = Scalar | tuple[str, ...] | tuple[Decimal, ...] | None


@dataclass(frozen=True)
class DaysWindow:
    mode: Literal["last", "more_than"]
    days: int


@dataclass(frozen=True)
class FieldCondition:
    field: FieldSpec
    operator: str
    value: FieldValue  # `within_days` holds an int of days


@dataclass(frozen=True)
class ActivityCondition:
    """Both `activity` (open, click) and `deliverability` (bounce, ...): counts of events."""

    kind: Literal["activity", "deliverability"]
    metric: str  # the events.type counted
    operator: Literal["ever", "never", "count_gte", "count_lte", "count_eq"]
    value: int | None
    days_window: DaysWindow | None
    include_campaign_ids: tuple[UUID, ...]
    exclude_campaign_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class MembershipCondition:
    operator: Literal["in", "not_in"]
    list_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class IspCondition:
    operator: Literal["in", "not_in"]
    values: tuple[int, ...]


@dataclass(frozen=True)
class SegmentCondition:
    """Membership of other segments, read from their materialised members (docs/rules.md)."""

    operator: Literal["in", "not_in"]
    segment_ids: tuple[UUID, ...]


Condition = (
    FieldCondition | ActivityCondition | MembershipCondition | IspCondition | SegmentCondition
)


@dataclass(frozen=True)
class RuleTree:
    """OR of groups, each an AND of conditions; both non-empty."""

    groups: tuple[tuple[Condition, ...], ...]

    def conditions(self) -> list[Condition]:
        return [c for group in self.groups for c in group]

    def list_ids(self) -> set[UUID]:
        """Every list a membership condition names (they must be the account's)."""
        return {
            list_id
            for c in self.conditions()
            if isinstance(c, MembershipCondition)
            for list_id in c.list_ids
        }

    def segment_ids(self) -> set[UUID]:
        """Every segment a `segment` condition names (the segments this one references)."""
        return {
            segment_id
            for c in self.conditions()
            if isinstance(c, SegmentCondition)
            for segment_id in c.segment_ids
        }

    @property
    def depends_on_clock(self) -> bool:
        """True when membership drifts with time alone, so the segment needs refreshing."""
        for c in self.conditions():
            if isinstance(c, ActivityCondition) and c.days_window is not None:
                return True
            if isinstance(c, FieldCondition) and c.operator == "within_days":
                return True
        return False
