"""The canonical rule tree, typed and validated: what the compiler consumes.

Built only by the dialect parsers (worker.rules.v2, v1, simple), so every value here is
already checked: text values are non-empty, datetimes are aware UTC, numbers are Decimals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from worker.rules.fields import FieldSpec

PeriodUnit = Literal["day", "week", "month", "year"]


@dataclass(frozen=True)
class CalendarPeriod:
    """A calendar period local to the segment's timezone (docs/rules.md): the `unit` period
    `offset` periods from the current one (offset <= 0; 0 is the whole current period)."""

    unit: PeriodUnit
    offset: int


Scalar = str | Decimal | datetime | bool | int
FieldValue = Scalar | tuple[str, ...] | tuple[Decimal, ...] | CalendarPeriod | None

# Datetime operators whose meaning follows the local calendar: their segments are refreshed
# after each local midnight (worker.scheduler).
CALENDAR_OPERATORS = frozenset({"in_calendar", "anniversary_within_days"})


@dataclass(frozen=True)
class DaysWindow:
    """A rolling window: events in the last `days` 24-hour days, or before them."""

    mode: Literal["last", "more_than"]
    days: int


@dataclass(frozen=True)
class FieldCondition:
    field: FieldSpec
    operator: str
    # `within_days` and `anniversary_within_days` hold an int of days, `in_calendar` a
    # CalendarPeriod.
    value: FieldValue


@dataclass(frozen=True)
class ActivityCondition:
    """Both `activity` (open, click) and `deliverability` (bounce, ...): counts of events."""

    kind: Literal["activity", "deliverability"]
    metric: str  # the events.type counted
    operator: Literal["ever", "never", "count_gte", "count_lte", "count_eq"]
    value: int | None
    days_window: DaysWindow | CalendarPeriod | None
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
class AnyNode:
    """At least one child matches (`{"any": [...]}`); never empty."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class AllNode:
    """Every child matches (`{"all": [...]}`); never empty."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class NotNode:
    """The child does not match (`{"not": node}`): the exact complement within the universe,
    since every condition is true or false for a contact, never unknown (docs/rules.md)."""

    node: Node


Node = Condition | AnyNode | AllNode | NotNode
Groups = tuple[tuple[Condition, ...], ...]


@dataclass(frozen=True)
class RuleTree:
    """The rules: a top-level `any` or `all` of nodes, nested at most MAX_DEPTH deep."""

    root: AnyNode | AllNode

    @classmethod
    def of_groups(cls, groups: Groups) -> RuleTree:
        """The first release's shape: an OR of groups, each an AND of conditions."""
        return cls(AnyNode(tuple(AllNode(group) for group in groups)))

    def flat_groups(self) -> Groups | None:
        """The tree as an OR of AND-groups of conditions when it is written that way (the
        first release's shape, a single `all` or `any` of conditions); None when nested."""
        return flat_groups(self.root)

    def conditions(self) -> list[Condition]:
        return list(_conditions(self.root))

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
        return self.follows_local_calendar

    @property
    def follows_local_calendar(self) -> bool:
        """True when membership changes at local period boundaries (calendar periods and
        anniversaries), so the segment is refreshed after each local midnight."""
        for c in self.conditions():
            if isinstance(c, ActivityCondition) and isinstance(c.days_window, CalendarPeriod):
                return True
            if isinstance(c, FieldCondition) and c.operator in CALENDAR_OPERATORS:
                return True
        return False


def flat_groups(node: Node) -> Groups | None:
    """See RuleTree.flat_groups."""
    if isinstance(node, AllNode):
        conditions = tuple(c for c in node.nodes if not isinstance(c, _GROUPING))
        return (conditions,) if len(conditions) == len(node.nodes) else None
    if isinstance(node, AnyNode):
        groups: list[tuple[Condition, ...]] = []
        for child in node.nodes:
            if isinstance(child, AllNode):
                inner = flat_groups(child)
                if inner is None:
                    return None
                groups.extend(inner)
            elif isinstance(child, _GROUPING):
                return None
            else:
                groups.append((child,))
        return tuple(groups)
    return None


_GROUPING = (AnyNode, AllNode, NotNode)


def _conditions(node: Node) -> Iterator[Condition]:
    if isinstance(node, AnyNode | AllNode):
        for child in node.nodes:
            yield from _conditions(child)
    elif isinstance(node, NotNode):
        yield from _conditions(node.node)
    else:
        yield node
