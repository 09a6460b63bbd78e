"""The plan: the intermediate form between the planner pass (worker.compiler.plan) and
translation (worker.compiler.translate). An OR of groups, each an AND of nodes; a node is a
condition on the contact row, a list test, an event test, a constant, or (from nested rules)
an AND, OR or NOT of nodes. It holds values, not
placeholders: translation binds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Literal
from uuid import UUID

from worker.compiler.operators import PG_TYPES
from worker.rules.fields import FieldType
from worker.rules.tree import (
    CalendarPeriod,
    FieldCondition,
    FieldValue,
    IspCondition,
    MembershipCondition,
    SegmentCondition,
)


class Now(Enum):
    """The query's `now`, one placeholder however often a query uses it."""

    NOW = "now"


NOW = Now.NOW


@dataclass(frozen=True)
class Value:
    """A value to bind, with the PostgreSQL type of its placeholder."""

    value: Any
    pg_type: str

    @classmethod
    def of(cls, field_type: FieldType, value: FieldValue) -> Value:
        """A field's value, typed for the field (a tuple becomes an array)."""
        pg_type = PG_TYPES[field_type]
        if isinstance(value, tuple):
            return cls(list(value), pg_type + "[]")
        return cls(value, pg_type)


@dataclass(frozen=True)
class PeriodEdge:
    """The first instant of a local calendar period (`end`: of the one after it), resolved
    at translation for the query's now and timezone (worker.compiler.calendar)."""

    period: CalendarPeriod
    end: bool


# -- filters on the events of an EventTest ----------------------------------------------------
@dataclass(frozen=True)
class OccurredAt:
    """`e.occurred_at <op> at`."""

    op: Literal[">=", ">", "<=", "<"]
    at: datetime | Now | PeriodEdge


@dataclass(frozen=True)
class CampaignIn:
    ids: tuple[UUID, ...]


@dataclass(frozen=True)
class CampaignNotIn:
    """Events of none of these campaigns; events without a campaign pass."""

    ids: tuple[UUID, ...]


EventFilter = OccurredAt | CampaignIn | CampaignNotIn


@dataclass(frozen=True)
class Having:
    """A test of the aggregate of a contact's events: AGGREGATE_OPS[operator] of it."""

    aggregate: str  # from the whitelist (DERIVED): count(*), max(e.occurred_at)
    operator: str
    value: Value
    negated: bool = False  # NOT of the test (the aggregate of a contact with events is not null)


# -- the nodes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EventTest:
    """A test over a contact's events of one type: the contact has an event passing `filters`
    (having None), or its events' aggregate passes `having`. `matches_none` says whether a
    contact with no such events matches; those are found with an anti-join."""

    event_type: str | tuple[str, ...]  # several: any of these types (merged groups)
    filters: tuple[EventFilter, ...]
    having: Having | None
    matches_none: bool


@dataclass(frozen=True)
class AnyEvent:
    """The contact has an event passing one of `tests` (each an existence test: having None,
    matches_none False), read in one scan of the events; `matches_none`: the complement, the
    contact has none (an anti-join)."""

    tests: tuple[EventTest, ...]
    matches_none: bool


@dataclass(frozen=True)
class Truth:
    """A condition that holds for every contact, or for none."""

    value: bool


@dataclass(frozen=True)
class AllOf:
    """Every node holds (the parts of one rewritten condition)."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one node holds (an `any` nested inside a group)."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """The node does not hold. The planner pushes `not` down to the conditions and complements
    those it can (worker.compiler.plan), so this is left only around conditions on the contact
    row that have no complementing operator (`gt`, `starts_with`, `has_all`, ...)."""

    node: Node


# Field conditions here are on the contact row (columns and custom fields); derived fields
# are rewritten to event tests. Segment conditions read the referenced segments' members.
Node = (
    FieldCondition
    | IspCondition
    | MembershipCondition
    | SegmentCondition
    | EventTest
    | AnyEvent
    | Truth
    | AllOf
    | AnyOf
    | Not
)


@dataclass(frozen=True)
class Group:
    """An AND of nodes. A group that `joins` (reads events or lists) is a UNION branch of its
    own; groups on the contact row alone share one branch."""

    nodes: tuple[Node, ...]
    joins: bool


@dataclass(frozen=True)
class Plan:
    """The OR of the groups, in the order translation binds their values. `disjoint`: no
    contact is in two groups (then their union needs no de-duplication)."""

    groups: tuple[Group, ...]
    disjoint: bool = False
