"""Sources: the rows a statement starts from, and how list and event tests read them.

A statement's queries share one source, which owns the statement's bound values (Params),
the account ($1) and, for candidates, the candidate ids ($2):
- `AllContacts`: the account's contacts (`count`, `member_ids`); list tests look the
  contact up in contact_list_members.
- `Candidates`: the given contacts only (`matching_among`, incremental updates). They are
  read once into the CHANGED_CONTACTS CTE with the ids of the lists each is on and, for each
  event type the statement's tests read, their times of that type; so list tests and most
  event tests are array tests on that row instead of one lookup per contact, test and query.
  The event tests left (campaign filters, several types at once) are narrowed to the
  candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from worker.compiler.params import Params
from worker.compiler.readers import field_reader, plain_column
from worker.rules.fields import FieldSpec

# The CTE that queries on candidates read them from: each candidate's contact row once, with
# the ids of the lists it is on.
CHANGED_CONTACTS = "changed_contacts"


class Source(Protocol):
    @property
    def params(self) -> Params: ...

    @property
    def account(self) -> str:
        """The account's placeholder."""
        ...

    @property
    def table(self) -> str:
        """What `c` is read from."""
        ...

    def in_lists(self, list_ids: Sequence[UUID], correlated: bool = False) -> str:
        """The contact `c` is on at least one of the lists; `correlated`: as a lookup per
        contact (for tests under an OR or NOT, worker.compiler.translate)."""
        ...

    def not_in_lists(self, list_ids: Sequence[UUID]) -> str:
        """The contact `c` is on none of the lists."""
        ...

    def event_filters(self) -> tuple[str, ...]:
        """Predicates on `e` that keep the events of the source's contacts only."""
        ...

    def event_times(self, event_type: str) -> str | None:
        """A column of `c` holding the contact's event times of `event_type`, ascending, when
        the source reads them with the contact; None: event tests read the events table."""
        ...

    def in_segments(self, segment_ids: Sequence[UUID]) -> str:
        """The contact `c` is a member of at least one of the segments."""
        ...

    def not_in_segments(self, segment_ids: Sequence[UUID]) -> str:
        """The contact `c` is a member of none of the segments."""
        ...

    def field(self, spec: FieldSpec) -> str:
        """The field of the contact `c` as rules read it (worker.compiler.readers)."""
        ...

    def lowered(self, values: str) -> str:
        """The text array `values` (a placeholder) lower-cased, as segments_lower_array."""
        ...

    def lowered_text(self, x: str) -> tuple[str, str]:
        """The text expression `x` lower-cased: as it is, and with null read as ''."""
        ...


@dataclass(frozen=True)
class AllContacts:
    params: Params
    account: str
    table: str = "contacts"

    @classmethod
    def of(cls, account_id: UUID) -> AllContacts:
        params = Params()
        return cls(params, params.add(account_id, "uuid"))

    def in_lists(self, list_ids: Sequence[UUID], correlated: bool = False) -> str:
        if correlated:
            return (
                "EXISTS (SELECT 1 FROM contact_list_members m\n"
                f"    WHERE m.account_id = {self.account} AND m.contact_id = c.id"
                f" AND {self._list_id_in(list_ids)})"
            )
        return (
            "c.id IN (SELECT m.contact_id FROM contact_list_members m\n"
            f"    WHERE m.account_id = {self.account} AND {self._list_id_in(list_ids)})"
        )

    def not_in_lists(self, list_ids: Sequence[UUID]) -> str:
        return (
            "NOT EXISTS (SELECT 1 FROM contact_list_members m\n"
            f"    WHERE m.account_id = {self.account} AND m.contact_id = c.id"
            f" AND {self._list_id_in(list_ids)})"
        )

    def event_filters(self) -> tuple[str, ...]:
        return ()

    def event_times(self, event_type: str) -> str | None:
        return None

    def in_segments(self, segment_ids: Sequence[UUID]) -> str:
        # A semi-join on the members: the planner hashes the (smaller) member side.
        return (
            "c.id IN (SELECT sm.contact_id FROM segment_members sm\n"
            f"    WHERE sm.account_id = {self.account}"
            f" AND {_segment_id_in(self.params, segment_ids)})"
        )

    def not_in_segments(self, segment_ids: Sequence[UUID]) -> str:
        return f"NOT {_member_of(self.params, self.account, segment_ids)}"

    # As the indexes on expressions read them (sql/002, sql/014), and with the values as a
    # plain call, which custom plans fold to a constant the planner can see.
    def field(self, spec: FieldSpec) -> str:
        return field_reader(spec, self.params)

    def lowered(self, values: str) -> str:
        return f"segments_lower_array({values})"

    # As the indexes on lower-cased columns read them (sql/014).
    def lowered_text(self, x: str) -> tuple[str, str]:
        return f"lower({x})", f"lower(coalesce({x}, ''))"

    def _list_id_in(self, list_ids: Sequence[UUID]) -> str:
        """`m.list_id` is one of the lists. One list is compared with `=`: then the planner
        can prove from the primary key (list_id, contact_id) that each contact appears once,
        and join the members directly, hashing the smaller side, instead of de-duplicating
        them first (measured: docs/benchmarks.md, "Why the compiler writes SQL this way")."""
        if len(list_ids) == 1:
            return f"m.list_id = {self.params.add(list_ids[0], 'uuid')}"
        return f"m.list_id = ANY({self.params.add(list(list_ids), 'uuid[]')})"


@dataclass(frozen=True)
class Candidates:
    params: Params
    account: str
    ids: str  # the candidate ids' placeholder
    table: str = CHANGED_CONTACTS
    # The event types whose times each candidate's row carries: type -> (column, placeholder).
    event_columns: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The fields read by a function call each candidate's row carries, read once:
    # field -> (column, the reading SQL).
    field_columns: dict[FieldSpec, tuple[str, str]] = field(default_factory=dict)
    # Tests each candidate's row carries, computed once from the columns above and read by
    # every query of the statement: list tests (list ids -> (column, placeholder)) and
    # lower-cased text (the text's SQL -> column).
    list_columns: dict[tuple[UUID, ...], tuple[str, str]] = field(default_factory=dict)
    lowered_columns: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, account_id: UUID, candidates: Sequence[UUID]) -> Candidates:
        params = Params()
        account = params.add(account_id, "uuid")
        return cls(params, account, params.add(list(candidates), "uuid[]"))

    # A statement of a thousand segments with a universe of lists tests the same lists a
    # thousand times on each candidate, and lower-cases the same column hundreds of times:
    # each is done once per candidate instead, with its row (0.83x the statement for 1,000
    # segments and 1,000 candidates, 0.90x for 285: docs/benchmarks.md, "Tests computed
    # once per candidate").
    def in_lists(self, list_ids: Sequence[UUID], correlated: bool = False) -> str:
        key = tuple(list_ids)
        if key not in self.list_columns:
            column = f"on_lists_{len(self.list_columns)}"  # ours, never a user's text
            self.list_columns[key] = (column, self.params.add(list(list_ids), "uuid[]"))
        return f"c.{self.list_columns[key][0]}"

    def not_in_lists(self, list_ids: Sequence[UUID]) -> str:
        return f"NOT {self.in_lists(list_ids)}"

    def event_filters(self) -> tuple[str, ...]:
        return (f"e.contact_id = ANY({self.ids})",)

    def event_times(self, event_type: str) -> str:
        """The candidate's times of `event_type` are read once, with its row, for every
        query of the statement: a statement of a hundred segments testing opens probes the
        events of each candidate once instead of once per segment (docs/benchmarks.md,
        "Event times read once per candidate")."""
        if event_type not in self.event_columns:
            column = f"event_times_{len(self.event_columns)}"  # ours, never a user's text
            self.event_columns[event_type] = (column, self.params.add(event_type, "text"))
        return f"c.{self.event_columns[event_type][0]}"

    def field(self, spec: FieldSpec) -> str:
        """Fields read through a function (tags and custom fields) are read once per
        candidate, with its row, for every query of the statement: a call per contact and
        segment was most of a statement's time with many segments (docs/benchmarks.md,
        "One pass over the candidates"). Plain columns are read as they are."""
        column = plain_column(spec)
        if column is not None:
            return column
        if spec not in self.field_columns:
            column = f"field_{len(self.field_columns)}"  # ours, never a user's text
            self.field_columns[spec] = (column, field_reader(spec, self.params))
        return f"c.{self.field_columns[spec][0]}"

    def lowered_text(self, x: str) -> tuple[str, str]:
        if x not in self.lowered_columns:
            self.lowered_columns[x] = f"lowered_{len(self.lowered_columns)}"  # ours
        column = f"c.{self.lowered_columns[x]}"
        return column, f"coalesce({column}, '')"

    def lowered(self, values: str) -> str:
        # Once per statement (an initplan), whichever plan runs it: a generic plan would
        # otherwise lower-case the values again for every candidate and segment.
        # The cast makes `= ANY(...)` read it as an array, not as a subquery's rows.
        return f"(SELECT segments_lower_array({values}))::text[]"

    # A few candidates: each is looked up by the members' primary key, never a whole segment.
    def in_segments(self, segment_ids: Sequence[UUID]) -> str:
        return _member_of(self.params, self.account, segment_ids)

    def not_in_segments(self, segment_ids: Sequence[UUID]) -> str:
        return f"NOT {_member_of(self.params, self.account, segment_ids)}"

    def with_clause(self) -> str:
        """The CHANGED_CONTACTS CTE, as text to put after WITH: each candidate's row, lists,
        event times and fields read through a function, then the tests computed once from
        them (OFFSET 0 keeps the inner rows whole: merged into the outer SELECT, each test
        would read the lists again)."""
        rows = self._rows()
        tests = [
            f"c.list_ids && {placeholder} AS {column}"
            for column, placeholder in self.list_columns.values()
        ] + [f"lower({x}) AS {column}" for x, column in self.lowered_columns.items()]
        if not tests:
            return f"{CHANGED_CONTACTS} AS MATERIALIZED (\n{rows})"
        return (
            f"{CHANGED_CONTACTS} AS MATERIALIZED (\n"
            f"    SELECT c.*, {', '.join(tests)}\n"
            f"    FROM (\n{rows}\n    OFFSET 0) c)"
        )

    def _rows(self) -> str:
        """Each candidate's row with its lists, event times and fields read by a call."""
        times = "".join(
            f",\n           ARRAY(SELECT e.occurred_at FROM events e\n"
            f"                 WHERE e.account_id = {self.account} AND e.contact_id = c.id"
            f" AND e.type = {event_type}\n"
            f"                 ORDER BY e.occurred_at) AS {column}"
            for column, event_type in self.event_columns.values()
        )
        fields = "".join(
            f",\n           {reader} AS {column}" for column, reader in self.field_columns.values()
        )
        return (
            "    SELECT c.*, ARRAY(SELECT m.list_id FROM contact_list_members m\n"
            f"                      WHERE m.contact_id = c.id AND m.account_id = {self.account})"
            f" AS list_ids{times}{fields}\n"
            f"    FROM contacts c WHERE c.account_id = {self.account}"
            f" AND c.id = ANY({self.ids})"
        )


def _segment_id_in(params: Params, segment_ids: Sequence[UUID]) -> str:
    """`sm.segment_id` is one of the segments (one compared with `=`, as lists are)."""
    if len(segment_ids) == 1:
        return f"sm.segment_id = {params.add(segment_ids[0], 'uuid')}"
    return f"sm.segment_id = ANY({params.add(list(segment_ids), 'uuid[]')})"


def _member_of(params: Params, account: str, segment_ids: Sequence[UUID]) -> str:
    """EXISTS a membership row of `c` in one of the segments: true or false, never null."""
    return (
        "EXISTS (SELECT 1 FROM segment_members sm\n"
        f"    WHERE sm.account_id = {account} AND sm.contact_id = c.id"
        f" AND {_segment_id_in(params, segment_ids)})"
    )
