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
  one test of several event types;
- nested rules (docs/rules.md): `not` is pushed down to the conditions (De Morgan) and a
  condition under it becomes its complement where one exists (`equals` <-> `not_equals`,
  `ever` <-> `never`, `in` <-> `not_in`, an event test's anti-join <-> semi-join), so a
  negated event or list test is still a join the planner can hash; then the tree is read as
  an OR of groups (UNION branches, as for flat rules) of AND-ed nodes, deeper `any`s staying
  OR nodes inside their group.
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
    AnyOf,
    CampaignIn,
    CampaignNotIn,
    EventFilter,
    EventTest,
    Group,
    Having,
    Node,
    Not,
    OccurredAt,
    PeriodEdge,
    Plan,
    Truth,
    Value,
)
from worker.compiler.operators import COUNT_OPERATORS, COUNT_TESTS, DERIVED, LATEST
from worker.rules.fields import OPERATORS_BY_TYPE, FieldSource
from worker.rules.tree import (
    ActivityCondition,
    AllNode,
    AnyNode,
    CalendarPeriod,
    Condition,
    FieldCondition,
    IspCondition,
    MembershipCondition,
    NotNode,
    RuleTree,
    SegmentCondition,
)
from worker.rules.tree import Node as TreeNode


def plan(rules: RuleTree, now: datetime) -> Plan:
    disjuncts = _distributed(_disjuncts(_pushed_down(rules.root)))
    rest, merged = _merge_single_event_groups(disjuncts, now)
    groups = [Group((test,), joins=True) for test in merged]
    for conditions in rest:
        nodes = tuple(_planned(c, now) for c in conditions)
        groups.append(Group(nodes, joins=not all(map(_on_the_row, nodes))))
    return Plan(tuple(groups))


# -- nested rules -----------------------------------------------------------------------------
# Complementing operators: for every contact exactly one of the pair holds, nulls included
# (docs/rules.md: the negative operators match a null), so `not` of one is the other.
_COMPLEMENTS = {
    "equals": "not_equals",
    "contains": "not_contains",
    "in": "not_in",
    "is_null": "is_not_null",
    "has_any": "has_none",
}
_COMPLEMENTS |= {b: a for a, b in _COMPLEMENTS.items()}


def _pushed_down(n: TreeNode, negated: bool = False) -> TreeNode:
    """The tree with every `not` moved down to the conditions: De Morgan through any/all, a
    double `not` dropped, a negated condition complemented where it can be (else left under a
    NotNode, which the planner negates after rewriting the condition)."""
    match n:
        case AnyNode() | AllNode():
            children = tuple(_pushed_down(child, negated) for child in n.nodes)
            return (AllNode if isinstance(n, AnyNode) == negated else AnyNode)(children)
        case NotNode():
            return _pushed_down(n.node, not negated)
    return _complement(n) if negated else n


def _complement(c: Condition) -> TreeNode:
    match c:
        case FieldCondition():
            other = _COMPLEMENTS.get(c.operator)
            if other in OPERATORS_BY_TYPE[c.field.type]:
                return dataclasses.replace(c, operator=other)
        case MembershipCondition() | IspCondition():
            return dataclasses.replace(c, operator="not_in" if c.operator == "in" else "in")
        case ActivityCondition():
            if c.operator in ("ever", "never"):
                return dataclasses.replace(c, operator="never" if c.operator == "ever" else "ever")
            if c.operator == "count_gte" and c.value:  # count >= n <=> not count <= n - 1
                return dataclasses.replace(c, operator="count_lte", value=c.value - 1)
            if c.operator == "count_lte" and c.value is not None:
                return dataclasses.replace(c, operator="count_gte", value=c.value + 1)
    return NotNode(c)


def _disjuncts(n: TreeNode) -> list[tuple[TreeNode, ...]]:
    """The tree as an OR of AND-groups: the top-level `any`s flattened into groups (each a
    UNION branch), each group's `all`s flattened into its nodes."""
    if isinstance(n, AnyNode):
        return [group for child in n.nodes for group in _disjuncts(child)]
    return [tuple(_conjuncts(n))]


# The most UNION branches distributing AND over a nested OR may produce (each re-reads the
# contacts the branch's row conditions select, so past a few the correlated form is cheaper).
MAX_BRANCHES = 4


def _distributed(groups: list[tuple[TreeNode, ...]]) -> list[tuple[TreeNode, ...]]:
    """A group holding an `any` that joins (reads events or lists), e.g. "(opened OR clicked)
    AND NOT tagged", becomes one group per alternative ("opened AND NOT tagged" UNION
    "clicked AND NOT tagged"): each alternative is then a semi-join the planner can hash,
    where under an OR it would be a lookup per contact. Same contacts (AND distributes over
    OR); done while the plan stays within MAX_BRANCHES."""
    done: list[tuple[TreeNode, ...]] = []
    todo = list(reversed(groups))
    while todo:
        group = todo.pop()
        at = next((i for i, n in enumerate(group) if isinstance(n, AnyNode) and _joins(n)), None)
        if at is None:
            done.append(group)
            continue
        alternatives = _disjuncts(group[at])
        if len(done) + len(todo) + len(alternatives) > MAX_BRANCHES:
            done.append(group)
            continue
        todo.extend(
            group[:at] + alternative + group[at + 1 :] for alternative in reversed(alternatives)
        )
    return done


def _joins(n: TreeNode) -> bool:
    match n:
        case AnyNode() | AllNode():
            return any(map(_joins, n.nodes))
        case NotNode():
            return _joins(n.node)
        case FieldCondition():
            return n.field.source is FieldSource.DERIVED
        case IspCondition():
            return False
    return True


def _conjuncts(n: TreeNode) -> list[TreeNode]:
    if isinstance(n, AllNode) or (isinstance(n, AnyNode) and len(n.nodes) == 1):
        return [c for child in n.nodes for c in _conjuncts(child)]
    return [n]


def _planned(n: TreeNode, now: datetime) -> Node:
    match n:
        case AnyNode() if len(n.nodes) == 1:
            return _planned(n.nodes[0], now)
        case AnyNode():
            return AnyOf(tuple(_planned(child, now) for child in n.nodes))
        case AllNode():
            return AllOf(tuple(_planned(child, now) for child in _conjuncts(n)))
        case NotNode():
            return _negated(_planned(n.node, now))
    return node(n, now)


def _negated(n: Node) -> Node:
    """The complement of a planned node: event tests flip between semi-join and anti-join
    (a contact either has qualifying events and passes the aggregate test, or has none)."""
    match n:
        case EventTest():
            having = n.having and dataclasses.replace(n.having, negated=not n.having.negated)
            return dataclasses.replace(n, having=having, matches_none=not n.matches_none)
        case Truth():
            return Truth(not n.value)
        case AllOf():
            return AnyOf(tuple(map(_negated, n.nodes)))
        case AnyOf():
            return AllOf(tuple(map(_negated, n.nodes)))
        case Not():
            return n.node
    return Not(n)


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
    match n:
        case AllOf() | AnyOf():
            return all(map(_on_the_row, n.nodes))
        case Not():
            return _on_the_row(n.node)
    return isinstance(n, FieldCondition | IspCondition)


# -- event conditions -------------------------------------------------------------------------
def _activity(c: ActivityCondition, now: datetime) -> EventTest | Truth:
    if c.operator == "count_gte" and c.value == 0:
        return Truth(True)  # every contact has at least zero events
    return _count(c.metric, event_filters(c, now), c.operator, c.value)


def event_filters(c: ActivityCondition, now: datetime) -> tuple[EventFilter, ...]:
    """The filters on the events an activity or deliverability condition counts: its window
    and its campaigns (also what `segments explain` counts, worker.compiler.forms)."""
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
    return tuple(filters)


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
    groups: list[tuple[TreeNode, ...]], now: datetime
) -> tuple[list[tuple[TreeNode, ...]], list[EventTest]]:
    """OR-ed groups that are each one "has such an event" test with the same window and
    campaign filters ("bounced OR complained") read the events once, with `type = ANY`,
    instead of once per group: one scan of the events index instead of one per UNION branch
    (docs/benchmarks.md, "Why the compiler writes SQL this way"). Returns the groups left as
    they are, then the merged tests."""
    alike: dict[tuple[object, ...], list[ActivityCondition]] = {}
    rest: list[tuple[TreeNode, ...]] = []
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
