"""The planner pass: the rule tree -> the plan, the form that translation reads.

Every rewrite here changes how PostgreSQL is asked, never which contacts match; each exists
because the planner runs the rewritten form faster (the reasons are on each function, the
figures in docs/benchmarks.md, "Why the compiler writes SQL this way"):
- conditions on events (activity, deliverability, derived fields) become `EventTest`s: a
  semi-join on the contact's events of a type, or an anti-join where contacts without such
  events match;
- counts of 0 and 1 become plain existence tests (no aggregation); `count_gte 0` and null
  tests of a count become constants;
- a latest-event field (`last_open_at`) becomes existence tests the time index answers;
- OR-ed groups that are each one "has such an event" test with the same filters merge into
  one test of several event types.
The plan's nodes are in worker.compiler.nodes; translation (worker.compiler.translate) binds
their values.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal
from typing import assert_never

from worker.compiler.nodes import (
    NOW,
    AllOf,
    CampaignIn,
    CampaignNotIn,
    EventFilter,
    EventTest,
    Group,
    Having,
    Node,
    OccurredAt,
    PeriodEdge,
    Plan,
    Truth,
    Value,
)
from worker.compiler.operators import COUNT_OPERATORS, COUNT_TESTS, DERIVED, LATEST
from worker.rules.fields import FieldSource
from worker.rules.tree import (
    ActivityCondition,
    CalendarPeriod,
    Condition,
    FieldCondition,
    IspCondition,
    MembershipCondition,
    RuleTree,
    SegmentCondition,
)


def plan(rules: RuleTree, now: datetime) -> Plan:
    rest, merged = _merge_single_event_groups(rules.groups, now)
    groups = [Group((test,), joins=True) for test in merged]
    for conditions in rest:
        nodes = tuple(node(c, now) for c in conditions)
        groups.append(Group(nodes, joins=not all(map(_on_the_row, nodes))))
    return Plan(tuple(groups))


def node(c: Condition, now: datetime) -> Node:
    match c:
        case FieldCondition() if c.field.source is FieldSource.DERIVED:
            return _derived(c, now)
        case ActivityCondition():
            return _activity(c, now)
        case FieldCondition() | IspCondition() | MembershipCondition() | SegmentCondition():
            return c
    assert_never(c)


def _on_the_row(n: Node) -> bool:
    """True for nodes on the contact row alone (no join to events or lists)."""
    return isinstance(n, FieldCondition | IspCondition)


# -- event conditions -------------------------------------------------------------------------
def _activity(c: ActivityCondition, now: datetime) -> EventTest | Truth:
    if c.operator == "count_gte" and c.value == 0:
        return Truth(True)  # every contact has at least zero events
    filters: list[EventFilter] = []
    if isinstance(c.days_window, CalendarPeriod):
        filters.extend(_in_period(c.days_window))
    elif c.days_window is not None:
        cutoff = now - timedelta(days=c.days_window.days)
        filters.append(OccurredAt(">=" if c.days_window.mode == "last" else "<", cutoff))
    if c.include_campaign_ids:
        filters.append(CampaignIn(c.include_campaign_ids))
    if c.exclude_campaign_ids:
        filters.append(CampaignNotIn(c.exclude_campaign_ids))
    return _count(c.metric, tuple(filters), c.operator, c.value)


def _count(
    event_type: str, filters: tuple[EventFilter, ...], operator: str, value: int | None
) -> EventTest:
    """ever / never / count_gte / count_lte / count_eq, with counts of 0 and 1 reduced to
    plain existence tests: no aggregation, and the index on (type, time) answers them."""
    n = value or 0
    if operator == "ever" or (operator == "count_gte" and n == 1):
        return EventTest(event_type, filters, None, matches_none=False)
    if operator == "never" or (operator in ("count_eq", "count_lte") and n == 0):
        return EventTest(event_type, filters, None, matches_none=True)
    having = Having("count(*)", COUNT_OPERATORS[operator], Value(n, "bigint"))
    return EventTest(event_type, filters, having, matches_none=operator == "count_lte")


def _derived(c: FieldCondition, now: datetime) -> Node:
    event_type, aggregate = DERIVED[c.field.name]
    if c.operator in ("is_null", "is_not_null"):
        if aggregate == "count(*)":  # a count is never null
            return Truth(c.operator == "is_not_null")
        return EventTest(event_type, (), None, matches_none=c.operator == "is_null")
    if c.field.name in LATEST:
        return _latest(event_type, c, now)
    having = Having(aggregate, c.operator, Value.of(c.field.type, c.value))
    zero_matches = COUNT_TESTS[c.operator](Decimal(0), c.value)
    return EventTest(event_type, (), having, matches_none=zero_matches)


def _latest(event_type: str, c: FieldCondition, now: datetime) -> Node:
    """last_open_at / last_click_at: the latest event. A contact without events has none,
    so only is_null (handled by the caller) matches it. Bounds on the latest event become
    filters on occurred_at where they can, so the time index skips older events instead of
    aggregating all of them (docs/benchmarks.md, "Why the compiler writes SQL this way")."""
    if c.operator == "within_days":
        # The latest event is in [now - days, now] <=> there is an event in that range and
        # none after now: two existence tests, no aggregation.
        assert isinstance(c.value, int)
        since = now - timedelta(days=c.value)
        in_range = (OccurredAt(">=", since), OccurredAt("<=", NOW))
        in_future = (OccurredAt(">", NOW),)
        return AllOf(
            (
                EventTest(event_type, in_range, None, matches_none=False),
                EventTest(event_type, in_future, None, matches_none=True),
            )
        )
    if c.operator == "in_calendar":
        # The latest event is in the period <=> there is an event in it and none after it.
        assert isinstance(c.value, CalendarPeriod)
        after = (OccurredAt(">=", PeriodEdge(c.value, end=True)),)
        return AllOf(
            (
                EventTest(event_type, _in_period(c.value), None, matches_none=False),
                EventTest(event_type, after, None, matches_none=True),
            )
        )
    if c.operator in ("gt", "gte"):
        assert isinstance(c.value, datetime)
        bound = OccurredAt(">" if c.operator == "gt" else ">=", c.value)
        return EventTest(event_type, (bound,), None, matches_none=False)
    having = Having("max(e.occurred_at)", c.operator, Value.of(c.field.type, c.value))
    return EventTest(event_type, (), having, matches_none=False)


def _in_period(period: CalendarPeriod) -> tuple[OccurredAt, OccurredAt]:
    """Events in a local calendar period: two bounds the (type, time) index answers."""
    return OccurredAt(">=", PeriodEdge(period, end=False)), OccurredAt(
        "<", PeriodEdge(period, end=True)
    )


# -- merging groups ---------------------------------------------------------------------------
def _merge_single_event_groups(
    groups: tuple[tuple[Condition, ...], ...], now: datetime
) -> tuple[list[tuple[Condition, ...]], list[EventTest]]:
    """OR-ed groups that are each one "has such an event" test with the same window and
    campaign filters ("bounced OR complained") read the events once, with `type = ANY`,
    instead of once per group: one scan of the events index instead of one per UNION branch
    (docs/benchmarks.md, "Why the compiler writes SQL this way"). Returns the groups left as
    they are, then the merged tests."""
    alike: dict[tuple[object, ...], list[ActivityCondition]] = {}
    rest: list[tuple[Condition, ...]] = []
    for group in groups:
        (c,) = group if len(group) == 1 else (None,)
        if isinstance(c, ActivityCondition) and (
            c.operator == "ever" or (c.operator == "count_gte" and c.value == 1)
        ):
            key = (c.days_window, c.include_campaign_ids, c.exclude_campaign_ids)
            alike.setdefault(key, []).append(c)
        else:
            rest.append(group)
    merged = []
    for conditions in alike.values():
        if len(conditions) == 1:
            rest.append((conditions[0],))
            continue
        test = _activity(conditions[0], now)
        assert isinstance(test, EventTest)
        metrics = tuple(sorted({c.metric for c in conditions}))
        merged.append(dataclasses.replace(test, event_type=metrics))
    return rest, merged
