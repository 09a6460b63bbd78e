"""Canonical rule tree -> parameterised SQL. Pure: no IO, no clock (`now` is an input).

Three forms of one segment's query (DESIGN.md 4.3 is the meaning of every piece):
- `count`: how many contacts match;
- `member_ids`: the ids of the contacts that match (materialisation);
- `matching_among`: which of the given candidate ids match (incremental updates); the
  candidates are read once into a CTE, with their list ids, which any number of segments'
  queries then share (`compile_matching_among_each`, one statement per change batch).

Shape of the SQL. Each AND-group becomes one `SELECT c.id FROM contacts c WHERE ...` branch and
the OR of groups is their UNION: event and membership conditions then stay semi-joins and
anti-joins the planner can hash, instead of per-row subplans under an OR. Groups made only of
row predicates share one branch with a plain OR. Every branch and subquery is scoped to the
account (`account_id = $1`), so nothing of another account is read and the query routes to
one shard on Citus. Every user value is a bind parameter; identifiers come only from the
whitelists of worker/sql_operators.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from worker.rules.fields import FieldSource, FieldSpec
from worker.rules.tree import (
    ActivityCondition,
    Condition,
    FieldCondition,
    IspCondition,
    MembershipCondition,
    RuleTree,
)
from worker.sql_operators import (
    AGGREGATE_OPS,
    COLUMNS,
    COUNT_TESTS,
    CUSTOM_READERS,
    DERIVED,
    LATEST,
    PG_TYPES,
    ROW_OPERATORS,
)


@dataclass(frozen=True)
class SegmentQuery:
    account_id: UUID
    rules: RuleTree
    # The universe: contacts on at least one of these lists; empty means all of the account's.
    list_ids: tuple[UUID, ...]
    now: datetime


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    params: tuple[Any, ...]


@dataclass
class Params:
    """The only maker of placeholders: every value goes through add()."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any, pg_type: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{pg_type}"


@dataclass(frozen=True)
class _EventTest:
    """A test over a contact's events of one type: the contact has an event passing `where`
    (having None), or its events' aggregate passes `having`. `matches_none` says whether a
    contact with no such events matches; those are found with an anti-join."""

    event_type: str | tuple[str, ...]  # several: any of these types
    where: tuple[str, ...]
    having: str | None
    matches_none: bool


@dataclass(frozen=True)
class _Scope:
    """What every query compiled into one statement shares: the parameter list, the account
    ($1) and the candidate ids ($2, when there are candidates)."""

    params: Params
    account: str
    # With candidates, queries read them from the CHANGED_CONTACTS CTE (rows with their list
    # ids) instead of looking them up in contacts and contact_list_members once per query.
    candidates: str | None

    @classmethod
    def new(cls, account_id: UUID, candidates: Sequence[UUID] | None) -> _Scope:
        params = Params()
        account = params.add(account_id, "uuid")
        among = None if candidates is None else params.add(list(candidates), "uuid[]")
        return cls(params, account, among)


@dataclass(frozen=True)
class _Lists:
    """The placeholder of a set of lists: a uuid[] array, or one uuid (see _Compiler.lists)."""

    placeholder: str
    single: bool

    def has_list_id(self) -> str:
        """`m.list_id` is one of the lists."""
        if self.single:
            return f"m.list_id = {self.placeholder}"
        return f"m.list_id = ANY({self.placeholder})"


class _Compiler:
    def __init__(self, query: SegmentQuery, scope: _Scope) -> None:
        self.query = query
        self.params = scope.params
        self.account = scope.account
        self.candidates = scope.candidates
        self._now: str | None = None
        self.universe = self.lists(query.list_ids) if query.list_ids else None

    @property
    def now(self) -> str:
        """The placeholder of `now`, added on first use (an unused parameter has no type)."""
        if self._now is None:
            self._now = self.params.add(self.query.now, "timestamptz")
        return self._now

    # -- the query ------------------------------------------------------------------------
    def branches(self) -> list[list[str]]:
        """The predicates of each UNION branch: row-only groups OR-ed into one branch, every
        group with an event or membership condition a branch of its own."""
        row_groups: list[list[str]] = []
        join_groups: list[list[str]] = []
        groups, merged = _merge_single_event_groups(self.query.rules.groups)
        for metrics, sample in merged:
            test = self.activity_test(sample)
            assert isinstance(test, _EventTest)
            join_groups.append([self.event_test(dataclasses.replace(test, event_type=metrics))])
        for group in groups:
            predicates = [self.condition(c) for c in group]
            (row_groups if all(map(_is_row_predicate, group)) else join_groups).append(predicates)
        if len(row_groups) > 1:
            ored = " OR ".join("(" + " AND ".join(p) + ")" for p in row_groups)
            row_groups = [[f"({ored})"]]
        return row_groups + join_groups

    def branch(self, predicates: list[str], select: str) -> str:
        where = [f"c.account_id = {self.account}"]
        if self.universe:
            where.append(self.list_member_in(self.universe))
        where.extend(predicates)
        source = CHANGED_CONTACTS if self.candidates else "contacts"
        return f"SELECT {select}\nFROM {source} c\nWHERE " + "\n  AND ".join(where)

    # -- conditions -----------------------------------------------------------------------
    def condition(self, c: Condition) -> str:
        match c:
            case FieldCondition() if c.field.source is FieldSource.DERIVED:
                if c.operator == "within_days" and c.field.name in LATEST:
                    assert isinstance(c.value, int)
                    return self.latest_within_days(DERIVED[c.field.name][0], c.value)
                return self.event_test(self.derived_test(c))
            case FieldCondition():
                return self.field_predicate(c)
            case ActivityCondition():
                return self.event_test(self.activity_test(c))
            case MembershipCondition():
                return self.membership(c)
            case IspCondition():
                return self.isp(c)
        raise AssertionError(f"no handler for {type(c).__name__}")  # pragma: no cover

    def field_predicate(self, c: FieldCondition) -> str:
        template = ROW_OPERATORS[c.field.type][c.operator]
        return template.format(x=self.field_expr(c.field), v=self.value(c))

    def field_expr(self, spec: FieldSpec) -> str:
        if spec.source is FieldSource.CUSTOM:
            key = self.params.add(spec.name, "text")
            return f"{CUSTOM_READERS[spec.type]}(c.attributes -> {key})"
        if spec.name == "tags":
            return "segments_lower_array(c.tags)"
        return COLUMNS[spec.name]

    def value(self, c: FieldCondition) -> str:
        """The value's placeholder(s), typed for the field; '' for operators without one."""
        if c.value is None:
            return ""
        if c.operator == "within_days":
            assert isinstance(c.value, int)
            since = self.params.add(self.query.now - timedelta(days=c.value), "timestamptz")
            return f"{since} AND {self.now}"
        pg_type = PG_TYPES[c.field.type]
        if isinstance(c.value, tuple):
            return self.params.add(list(c.value), pg_type + "[]")
        return self.params.add(c.value, pg_type)

    def isp(self, c: IspCondition) -> str:
        values = self.params.add(list(c.values), "int[]")
        if c.operator == "in":
            return f"c.isp_id = ANY({values})"
        return f"(c.isp_id IS NULL OR c.isp_id <> ALL({values}))"

    def membership(self, c: MembershipCondition) -> str:
        lists = self.lists(c.list_ids)
        if c.operator == "in":
            return self.list_member_in(lists)
        if self.candidates:
            return f"NOT (c.list_ids && {lists.placeholder})"
        return (
            "NOT EXISTS (SELECT 1 FROM contact_list_members m\n"
            f"    WHERE m.account_id = {self.account} AND m.contact_id = c.id"
            f" AND {lists.has_list_id()})"
        )

    def lists(self, list_ids: Sequence[UUID]) -> _Lists:
        """The placeholder of a set of lists: an array, or the one list's id where a list
        table is read. Compared with `=`, one list lets the planner prove from the primary
        key (list_id, contact_id) that each contact appears once, and join the members
        directly, hashing the smaller side (1.15x on (g), docs/benchmarks.md). Against a
        candidate's `list_ids` it stays an array."""
        if len(list_ids) == 1 and not self.candidates:
            return _Lists(self.params.add(list_ids[0], "uuid"), single=True)
        return _Lists(self.params.add(list(list_ids), "uuid[]"), single=False)

    def list_member_in(self, lists: _Lists) -> str:
        if self.candidates:
            return f"c.list_ids && {lists.placeholder}"
        return (
            "c.id IN (SELECT m.contact_id FROM contact_list_members m\n"
            f"    WHERE m.account_id = {self.account} AND {lists.has_list_id()})"
        )

    # -- event conditions -----------------------------------------------------------------
    def activity_test(self, c: ActivityCondition) -> _EventTest | bool:
        if c.operator == "count_gte" and c.value == 0:
            return True  # every contact has at least zero events
        where = []
        if c.days_window is not None:
            cutoff = self.params.add(
                self.query.now - timedelta(days=c.days_window.days), "timestamptz"
            )
            op = ">=" if c.days_window.mode == "last" else "<"
            where.append(f"e.occurred_at {op} {cutoff}")
        if c.include_campaign_ids:
            ids = self.params.add(list(c.include_campaign_ids), "uuid[]")
            where.append(f"e.campaign_id = ANY({ids})")
        if c.exclude_campaign_ids:
            ids = self.params.add(list(c.exclude_campaign_ids), "uuid[]")
            where.append(f"(e.campaign_id IS NULL OR e.campaign_id <> ALL({ids}))")
        return self.count_test(c.metric, tuple(where), c.operator, c.value)

    def count_test(
        self, event_type: str, where: tuple[str, ...], operator: str, value: int | None
    ) -> _EventTest | bool:
        """ever / never / count_gte / count_lte / count_eq, with counts of 0 and 1 reduced to
        plain existence tests (cheaper: no aggregation)."""
        n = value or 0
        if operator == "ever" or (operator == "count_gte" and n == 1):
            return _EventTest(event_type, where, None, matches_none=False)
        if operator == "never" or (operator in ("count_eq", "count_lte") and n == 0):
            return _EventTest(event_type, where, None, matches_none=True)
        count = self.params.add(n, "bigint")
        sql_op = {"count_gte": ">=", "count_lte": "<=", "count_eq": "="}[operator]
        return _EventTest(
            event_type, where, f"count(*) {sql_op} {count}", matches_none=operator == "count_lte"
        )

    def derived_test(self, c: FieldCondition) -> _EventTest | bool:
        event_type, aggregate = DERIVED[c.field.name]
        if c.operator in ("is_null", "is_not_null"):
            if aggregate == "count(*)":  # a count is never null
                return c.operator == "is_not_null"
            return _EventTest(event_type, (), None, matches_none=c.operator == "is_null")
        if aggregate != "count(*)":
            return self.latest_test(event_type, c)
        having = AGGREGATE_OPS[c.operator].format(x=aggregate, v=self.value(c))
        zero_matches = COUNT_TESTS[c.operator](Decimal(0), c.value)
        return _EventTest(event_type, (), having, matches_none=zero_matches)

    def latest_within_days(self, event_type: str, days: int) -> str:
        """The latest event is in [now - days, now] <=> there is an event in that range and
        none after now: two existence tests the time index answers, no aggregation."""
        since = self.params.add(self.query.now - timedelta(days=days), "timestamptz")
        in_range = (f"e.occurred_at >= {since}", f"e.occurred_at <= {self.now}")
        in_future = (f"e.occurred_at > {self.now}",)
        return (
            f"{self.event_test(_EventTest(event_type, in_range, None, matches_none=False))}"
            f"\n  AND {self.event_test(_EventTest(event_type, in_future, None, matches_none=True))}"
        )

    def latest_test(self, event_type: str, c: FieldCondition) -> _EventTest:
        """last_open_at / last_click_at: the latest event. A contact without events has none,
        so only is_null (handled by the caller) matches it. Lower bounds become a filter on
        occurred_at, so the time index skips older events instead of aggregating them all."""
        if c.operator in ("gt", "gte"):
            bound = self.value(c)
            op = ">" if c.operator == "gt" else ">="
            return _EventTest(event_type, (f"e.occurred_at {op} {bound}",), None, False)
        having = AGGREGATE_OPS[c.operator].format(x="max(e.occurred_at)", v=self.value(c))
        return _EventTest(event_type, (), having, matches_none=False)

    def event_test(self, test: _EventTest | bool) -> str:
        if isinstance(test, bool):
            return "TRUE" if test else "FALSE"
        if isinstance(test.event_type, tuple):
            types = self.params.add(list(test.event_type), "text[]")
            type_test = f"e.type = ANY({types})"
        else:
            type_test = f"e.type = {self.params.add(test.event_type, 'text')}"
        where = [f"e.account_id = {self.account}", type_test, *test.where]
        if self.candidates:
            where.append(f"e.contact_id = ANY({self.candidates})")
        having = test.having
        if test.matches_none and having is not None:
            having = f"NOT ({having})"
        if having is None:
            events = "SELECT e.contact_id FROM events e\n    WHERE " + " AND ".join(where)
        else:
            events = (
                "SELECT e.contact_id FROM events e\n    WHERE "
                + " AND ".join(where)
                + f"\n    GROUP BY e.contact_id HAVING {having}"
            )
        if not test.matches_none:
            return f"c.id IN ({events})"
        # Contacts without qualifying events match: an anti-join against those that fail.
        return f"NOT EXISTS (SELECT 1 FROM ({events}) x WHERE x.contact_id = c.id)"


def _merge_single_event_groups(
    groups: tuple[tuple[Condition, ...], ...],
) -> tuple[list[tuple[Condition, ...]], list[tuple[tuple[str, ...], ActivityCondition]]]:
    """OR-ed groups that are each one "has such an event" test with the same window and
    campaign filters ("bounced OR complained") read the events once, with `type = ANY`,
    instead of once per group (measured 1.8x faster at 10M events, docs/benchmarks.md)."""
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
        else:
            metrics = tuple(sorted({c.metric for c in conditions}))
            merged.append((metrics, conditions[0]))
    return rest, merged


def _is_row_predicate(c: Condition) -> bool:
    """True for conditions on the contact row alone (no join to events or lists)."""
    if isinstance(c, FieldCondition):
        return c.field.source is not FieldSource.DERIVED
    return isinstance(c, IspCondition)


def _select(query: SegmentQuery, scope: _Scope, count: bool) -> str:
    compiler = _Compiler(query, scope)
    branches = compiler.branches()
    if count and len(branches) == 1:
        return compiler.branch(branches[0], "count(*)")
    union = "\nUNION\n".join(compiler.branch(b, "c.id") for b in branches)
    return f"SELECT count(*) FROM (\n{union}\n) matched" if count else union


def _compile(query: SegmentQuery, count: bool) -> CompiledQuery:
    scope = _Scope.new(query.account_id, None)
    sql = _select(query, scope, count)
    return CompiledQuery(sql, tuple(scope.params.values))


def compile_count(query: SegmentQuery) -> CompiledQuery:
    """SELECT count(*) of the matching contacts."""
    return _compile(query, count=True)


def compile_member_ids(query: SegmentQuery) -> CompiledQuery:
    """SELECT of the matching contact ids (one row each)."""
    return _compile(query, count=False)


def compile_matching_among(query: SegmentQuery, candidates: Sequence[UUID]) -> CompiledQuery:
    """SELECT of those of `candidates` that match: compile_matching_among_each of one query
    (the form incremental updates run), as one statement."""
    among = compile_matching_among_each([query], candidates)
    return CompiledQuery(f"WITH {among.with_clause}\n{among.selects[0]}", among.params)


# The CTE that compile_matching_among_each's SELECTs read the candidates from: each
# candidate's contact row once, with the ids of the lists it is on, so list conditions become
# array tests on the row instead of one lookup per contact, list and query.
CHANGED_CONTACTS = "changed_contacts"


@dataclass(frozen=True)
class CompiledAmong:
    """`matching_among` of several segments of one account over one parameter list: $1 is
    the account, $2 the candidate ids; `selects[i]` is the SELECT of `queries[i]`, and they
    all read the CTE `with_clause` (text to put after WITH)."""

    with_clause: str
    selects: tuple[str, ...]
    params: tuple[Any, ...]
    candidates: str


def compile_matching_among_each(
    queries: Sequence[SegmentQuery], candidates: Sequence[UUID]
) -> CompiledAmong:
    """Which of `candidates` match, for each query; one statement can run them all."""
    accounts = {q.account_id for q in queries}
    if len(accounts) != 1:
        raise ValueError("the queries of one statement must share one account")
    scope = _Scope.new(accounts.pop(), candidates)
    selects = tuple(_select(q, scope, count=False) for q in queries)
    assert scope.candidates is not None
    with_clause = (
        f"{CHANGED_CONTACTS} AS MATERIALIZED (\n"
        "    SELECT c.*, ARRAY(SELECT m.list_id FROM contact_list_members m\n"
        f"                      WHERE m.contact_id = c.id AND m.account_id = {scope.account})"
        " AS list_ids\n"
        f"    FROM contacts c WHERE c.account_id = {scope.account}"
        f" AND c.id = ANY({scope.candidates}))"
    )
    return CompiledAmong(with_clause, selects, tuple(scope.params.values), scope.candidates)
