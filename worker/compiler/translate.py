"""Translation: a plan (worker.compiler.nodes) -> SQL text, one method per node kind.

Values are bound through the source's Params as the nodes are translated, and rows are read
through the source (all contacts or candidates: worker.compiler.sources); identifiers come
only from the whitelists of worker.compiler.operators.

Shape of the SQL. Each group becomes one `SELECT c.id FROM <source> c WHERE ...` branch and the
OR of groups is their UNION: event and membership tests then stay semi-joins and anti-joins
the planner can hash, instead of per-row subplans under an OR (docs/benchmarks.md, "Why the
compiler writes SQL this way"). Groups on the contact row alone share one branch with a plain
OR. Nodes nested under an OR or a NOT (from nested rules) test each contact with correlated
subqueries, which are indexed lookups whatever the size of the other side (an `IN (subquery)`
under an OR is hashed only while the subquery's result fits in work_mem). Under a NOT, a
condition is made two-valued (`coalesce(..., false)`: a comparison with a null is null in
SQL, and NOT null is null, not true); elsewhere a null and false both exclude the contact, so
conditions keep their plain form, which the planner can match to indexes. Every branch and
subquery is scoped to the account (`account_id = $1`), so nothing of another account is read
and the query routes to one shard on Citus.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import assert_never

from worker.compiler.calendar import anniversary_days, period_bounds
from worker.compiler.nodes import (
    AllOf,
    AnyEvent,
    AnyOf,
    CampaignIn,
    CampaignNotIn,
    EventFilter,
    EventTest,
    Group,
    Having,
    Node,
    Not,
    Now,
    OccurredAt,
    PeriodEdge,
    Plan,
    Truth,
    Value,
)
from worker.compiler.operators import AGGREGATE_OPS, COLUMNS, ROW_OPERATORS
from worker.compiler.query import SegmentQuery
from worker.compiler.sources import Source
from worker.rules.fields import FieldSource, FieldSpec
from worker.rules.tree import (
    CALENDAR_OPERATORS,
    CalendarPeriod,
    FieldCondition,
    IspCondition,
    MembershipCondition,
    SegmentCondition,
)


class Translator:
    """Translates one query; its values join the source's (a statement's queries share it)."""

    def __init__(self, query: SegmentQuery, source: Source) -> None:
        self.query = query
        self.source = source
        self.params = source.params
        self._now: str | None = None
        self._universe: list[str] | None = None

    @property
    def now(self) -> str:
        """The placeholder of `now`, added on first use (an unused parameter has no type)."""
        if self._now is None:
            self._now = self.params.add(self.query.now, "timestamptz")
        return self._now

    # -- the statement --------------------------------------------------------------------
    def select(self, planned: Plan, count: bool) -> str:
        """The SELECT of the matching contacts' ids, or of their count."""
        branches = self.branches(planned)
        if count and len(branches) == 1:
            return self.branch(branches[0], "count(*)")
        union = ("\nUNION ALL\n" if planned.disjoint else "\nUNION\n").join(
            self.branch(b, "c.id") for b in branches
        )
        return f"SELECT count(*) FROM (\n{union}\n) matched" if count else union

    def verdict(self, planned: Plan) -> str:
        """Whether the row `c` matches, as one boolean expression: the OR of the branches'
        ANDs. Null where the SELECT's WHERE would be null, so `IS TRUE` of it is the same
        verdict as the row being selected (a null branch never outweighs a true one, as in
        a UNION). The source scopes `c` to the account already."""
        branches = self.branches(planned)
        if not branches:
            return "FALSE"
        return " OR ".join("(" + " AND ".join(b or ["TRUE"]) + ")" for b in branches)

    def branches(self, planned: Plan) -> list[list[str]]:
        """The predicates of each UNION branch: the row-only groups OR-ed into one branch,
        every group that joins a branch of its own. Groups are translated in the plan's order,
        which is the order their values are bound. A branch starts with the universe test,
        unless one of its own conditions implies it."""
        row_groups: list[list[str]] = []
        join_groups: list[list[str]] = []
        for group in planned.groups:
            universe = [] if self.implies_universe(group) else self.universe()
            predicates = [self.node(n) for n in group.nodes]
            if group.joins:
                join_groups.append(universe + predicates)
            else:
                row_groups.append(predicates)
        if len(row_groups) > 1:
            ored = " OR ".join("(" + " AND ".join(p) + ")" for p in row_groups)
            row_groups = [[f"({ored})"]]
        return [self.universe() + p for p in row_groups] + join_groups

    def universe(self) -> list[str]:
        """The universe test (none without lists), bound on first use: a placeholder no
        branch reads would have no type."""
        if self._universe is None:
            lists = self.query.list_ids
            self._universe = [self.source.in_lists(lists)] if lists else []
        return self._universe

    def implies_universe(self, group: Group) -> bool:
        """The group requires membership of some of the segment's own lists ("on list A" in a
        segment of lists A and B): the universe test would repeat it, and the planner would
        read the lists' members twice (docs/benchmarks.md, "Why the compiler writes SQL this
        way")."""
        lists = set(self.query.list_ids)
        return any(
            isinstance(n, MembershipCondition) and n.operator == "in" and set(n.list_ids) <= lists
            for n in group.nodes
        )

    def branch(self, predicates: list[str], select: str) -> str:
        where = [f"c.account_id = {self.source.account}", *predicates]
        return f"SELECT {select}\nFROM {self.source.table} c\nWHERE " + "\n  AND ".join(where)

    # -- nodes ----------------------------------------------------------------------------
    def node(self, node: Node, nested: bool = False) -> str:
        """`nested`: under an OR or a NOT, not directly in a branch's AND."""
        match node:
            case FieldCondition():
                return self.field(node)
            case IspCondition():
                return self.isp(node)
            case MembershipCondition():
                return self.membership(node, nested)
            case SegmentCondition():
                return self.segment(node)
            case EventTest():
                return self.events(node, nested)
            case AnyEvent():
                return self.any_event(node, nested)
            case Truth():
                return "TRUE" if node.value else "FALSE"
            case AllOf() | AnyOf() | Not():
                return self.group(node, nested)
        assert_never(node)

    def group(self, node: AllOf | AnyOf | Not, nested: bool) -> str:
        """AND, OR and NOT of nodes. What is under an OR or a NOT is `nested`; a NOT is
        two-valued (a null inside reads as false, so the NOT of it is true)."""
        match node:
            case AllOf() if nested:
                return "(" + " AND ".join(self.node(n, nested) for n in node.nodes) + ")"
            case AllOf():
                return "\n  AND ".join(self.node(n) for n in node.nodes)
            case AnyOf():
                return "(" + "\n    OR ".join(self.node(n, nested=True) for n in node.nodes) + ")"
            case Not():
                return f"NOT coalesce({self.node(node.node, nested=True)}, false)"
        assert_never(node)

    def field(self, c: FieldCondition) -> str:
        """A column or custom field (the planner turns derived fields into event tests)."""
        if c.operator in CALENDAR_OPERATORS:
            return self.calendar_field(c)
        template = ROW_OPERATORS[c.field.type][c.operator]
        x, v = self.field_expr(c.field), self.field_value(c)
        # Lower-cased only where the operator reads it (a column per candidate otherwise).
        lx, lxe = self.source.lowered_text(x) if "{lx" in template else ("", "")
        return template.format(x=x, v=v, lv=self.source.lowered(v), lx=lx, lxe=lxe)

    def field_expr(self, spec: FieldSpec) -> str:
        return self.source.field(spec)

    def field_value(self, c: FieldCondition) -> str:
        """The value's placeholder(s), typed for the field; '' for operators without one."""
        if c.value is None:
            return ""
        if c.operator == "within_days":
            assert isinstance(c.value, int)
            since = self.params.add(self.query.now - timedelta(days=c.value), "timestamptz")
            return f"{since} AND {self.now}"
        return self.bind(Value.of(c.field.type, c.value))

    def calendar_field(self, c: FieldCondition) -> str:
        """in_calendar / anniversary_within_days on a column or custom datetime field, with
        the period's bounds and the anniversary days computed for the query's now and
        timezone (worker.compiler.calendar). Two-valued: a null value is false.

        Instants compare with bound instants (`x >= $s AND x < $e`, which an index on the
        column serves). A custom field stored as a bare date (`YYYY-MM-DD`, 10 characters) is
        a calendar date (docs/rules.md, timezones): it reads as midnight UTC of that date, so it is
        compared with the period's local dates as midnights UTC; its anniversary is its own
        month and day. Only the anniversary of an instant needs the timezone per row."""
        if c.field.source is FieldSource.CUSTOM:
            key = self.params.add(c.field.name, "text")
            x = f"segments_jsonb_timestamptz(c.attributes -> {key})"
            is_date = f"length(c.attributes ->> {key}) = 10"
        else:
            x, is_date = COLUMNS[c.field.name], None
        if c.operator == "in_calendar":
            assert isinstance(c.value, CalendarPeriod)
            bounds = period_bounds(c.value, self.query.local_now)
            instants = self.between(x, bounds.start, bounds.end)
            if is_date is None:
                return f"({x} IS NOT NULL AND {instants})"
            dates = self.between(x, _utc_midnight(bounds.first_day), _utc_midnight(bounds.end_day))
            return f"coalesce(CASE WHEN {is_date} THEN {dates} ELSE {instants} END, false)"
        assert isinstance(c.value, int)
        days = self.params.add(anniversary_days(self.query.local_now, c.value), "text[]")
        zone = self.params.add(self.query.timezone, "text")
        month_day = f"to_char({x} AT TIME ZONE {zone}, 'MM-DD')"
        if is_date is None:  # a column: not null, its month and day are never null
            return f"({x} IS NOT NULL AND {month_day} = ANY({days}))"
        raw = f"c.attributes ->> {key}"
        month_day = f"CASE WHEN {is_date} THEN substr({raw}, 6, 5) ELSE {month_day} END"
        return f"coalesce({x} IS NOT NULL AND {month_day} = ANY({days}), false)"

    def between(self, x: str, start: datetime, end: datetime) -> str:
        """`start <= x < end`, the form a btree index on x serves."""
        s, e = self.params.add(start, "timestamptz"), self.params.add(end, "timestamptz")
        return f"{x} >= {s} AND {x} < {e}"

    def isp(self, c: IspCondition) -> str:
        values = self.params.add(list(c.values), "int[]")
        if c.operator == "in":
            return f"c.isp_id = ANY({values})"
        return f"(c.isp_id IS NULL OR c.isp_id <> ALL({values}))"

    def membership(self, c: MembershipCondition, nested: bool) -> str:
        if c.operator == "in":
            return self.source.in_lists(c.list_ids, correlated=nested)
        return self.source.not_in_lists(c.list_ids)

    def segment(self, c: SegmentCondition) -> str:
        """Membership of other segments, as materialised (docs/rules.md, "segment"): changes
        of theirs flow on to this one (worker/propagation.py)."""
        if c.operator == "in":
            return self.source.in_segments(c.segment_ids)
        return self.source.not_in_segments(c.segment_ids)

    def events(self, test: EventTest, nested: bool) -> str:
        if isinstance(test.event_type, str) and all(
            isinstance(f, OccurredAt) for f in test.filters
        ):
            times = self.source.event_times(test.event_type)
            if times is not None:
                return self.events_of_row(test, times)
        # The filters' and the aggregate's values are bound before the event type's.
        filters = [self.event_filter(f) for f in test.filters]
        having = None if test.having is None else self.having(test.having)
        where = [
            f"e.account_id = {self.source.account}",
            self.event_type(test.event_type),
            *filters,
            *self.source.event_filters(),
        ]
        if test.matches_none and having is not None:
            having = f"NOT ({having})"
        events = "SELECT e.contact_id FROM events e\n    WHERE " + " AND ".join(where)
        if having is not None:
            events += f"\n    GROUP BY e.contact_id HAVING {having}"
        return self.joined(events, test.matches_none, nested)

    def events_of_row(self, test: EventTest, times: str) -> str:
        """`test` on the contact's event times of its type, an array of `c` in ascending
        order: the same verdicts as the events subqueries, with no lookup of the events per
        test. The times within the filters' bounds are counted by binary search
        (`within`); other filters unnest the times as rows `e(occurred_at)`, which the
        filters and the aggregate (count(*), max of the times) read as they read events."""
        having = test.having
        bounds = self.within(test.filters, times)
        if bounds is not None:
            last, count = bounds
            if having is None:
                test_sql = None
            elif having.aggregate == "count(*)":
                test_sql = self.having(having, count)
            else:  # max(e.occurred_at): the last time within the bounds
                test_sql = self.having(having, f"{times}[{last}]")
            return _events_verdict(count, test_sql, test.matches_none)
        # Other bounds: the times as rows, counted and aggregated in one subquery.
        where = " AND ".join(self.event_filter(f) for f in test.filters)
        test_sql = None if having is None else self.having(having)
        verdict = _events_verdict("count(*)", test_sql, test.matches_none)
        return f"(SELECT {verdict} FROM unnest({times}) AS e(occurred_at) WHERE {where})"

    def within(self, filters: tuple[EventFilter, ...], times: str) -> tuple[str, str] | None:
        """For filters of at most one lower and one upper time bound: the index of the last
        time within them and how many there are (the times being sorted, `width_bucket` is
        how many are at most a value; timestamps are whole microseconds, so "less than t"
        is "at most t less 1 µs"). None for other filters."""
        lower = [f for f in filters if isinstance(f, OccurredAt) and f.op in (">=", ">")]
        upper = [f for f in filters if isinstance(f, OccurredAt) and f.op in ("<=", "<")]
        if len(lower) > 1 or len(upper) > 1 or len(lower) + len(upper) != len(filters):
            return None

        def at_most(bound: OccurredAt, strict: bool) -> str:
            at = self.instant(bound.at)
            value = f"{at} - interval '1 microsecond'" if strict else at
            return f"width_bucket({value}, {times})"

        last = at_most(upper[0], upper[0].op == "<") if upper else f"cardinality({times})"
        below = at_most(lower[0], lower[0].op == ">=") if lower else "0"
        return last, f"({last} - {below})"

    def any_event(self, node: AnyEvent, nested: bool) -> str:
        """Events passing one of the tests, in one scan: `(type AND filters) OR ...`."""
        alternatives = []
        for test in node.tests:
            assert test.having is None and not test.matches_none
            filters = [self.event_filter(f) for f in test.filters]
            alternatives.append(" AND ".join([self.event_type(test.event_type), *filters]))
        where = [
            f"e.account_id = {self.source.account}",
            "(" + "\n      OR ".join(f"({a})" for a in alternatives) + ")",
            *self.source.event_filters(),
        ]
        events = "SELECT e.contact_id FROM events e\n    WHERE " + " AND ".join(where)
        return self.joined(events, node.matches_none, nested)

    def joined(self, events: str, matches_none: bool, nested: bool) -> str:
        """`c` against the contact ids `events` selects: a semi-join (a correlated lookup when
        nested), or for `matches_none` an anti-join."""
        if nested and not matches_none:
            return f"EXISTS (SELECT 1 FROM ({events}) x WHERE x.contact_id = c.id)"
        if not matches_none:
            return f"c.id IN ({events})"
        # Contacts without qualifying events match: an anti-join against those that fail.
        return f"NOT EXISTS (SELECT 1 FROM ({events}) x WHERE x.contact_id = c.id)"

    def event_count(self, event_type: str, filters: tuple[EventFilter, ...]) -> str:
        """The number of the contact `c`'s events of a type that pass `filters`, as a scalar
        subquery (what `segments explain` shows for an activity condition)."""
        where = [
            f"e.account_id = {self.source.account}",
            "e.contact_id = c.id",
            self.event_type(event_type),
            *(self.event_filter(f) for f in filters),
        ]
        return "(SELECT count(*) FROM events e WHERE " + " AND ".join(where) + ")"

    def event_type(self, event_type: str | tuple[str, ...]) -> str:
        if isinstance(event_type, tuple):
            return f"e.type = ANY({self.params.add(list(event_type), 'text[]')})"
        return f"e.type = {self.params.add(event_type, 'text')}"

    def event_filter(self, f: EventFilter) -> str:
        match f:
            case OccurredAt():
                return f"e.occurred_at {f.op} {self.instant(f.at)}"
            case CampaignIn():
                return f"e.campaign_id = ANY({self.params.add(list(f.ids), 'uuid[]')})"
            case CampaignNotIn():
                ids = self.params.add(list(f.ids), "uuid[]")
                return f"(e.campaign_id IS NULL OR e.campaign_id <> ALL({ids}))"
        assert_never(f)

    def instant(self, at: datetime | Now | PeriodEdge) -> str:
        if isinstance(at, Now):
            return self.now
        if isinstance(at, PeriodEdge):
            bounds = period_bounds(at.period, self.query.local_now)
            at = bounds.end if at.end else bounds.start
        return self.params.add(at, "timestamptz")

    def having(self, h: Having, aggregate: str | None = None) -> str:
        """The test of `h`, on its aggregate or on `aggregate` (the same value computed
        otherwise)."""
        x = h.aggregate if aggregate is None else aggregate
        test = AGGREGATE_OPS[h.operator].format(x=x, v=self.bind(h.value))
        return f"NOT ({test})" if h.negated else test

    def bind(self, value: Value) -> str:
        return self.params.add(value.value, value.pg_type)


def _events_verdict(count: str, test: str | None, matches_none: bool) -> str:
    """The verdict of an event test from the number of the contact's events passing its
    filters and the test of their aggregate (None: existence): a contact with none has no
    aggregate, and matches only if the test matches contacts without events."""
    if test is None:
        return f"({count} <= 0)" if matches_none else f"({count} > 0)"
    if matches_none:
        return f"({count} <= 0 OR {test})"
    return f"({count} > 0 AND {test})"


def _utc_midnight(day: date) -> datetime:
    """A date as a bare-date value reads (midnight UTC): docs/rules.md."""
    return datetime.combine(day, time(0), tzinfo=UTC)
