"""What `explain` shows beside each condition's verdict: the contact's data the condition read
(docs/rules.md, "Why is a contact in a segment"). Values are JSON-ready.

- field: `{"stored", "read"}`, the raw value (a column, or the custom field's JSON value) and
  the value as rules read it (the compiler's own readers: '' and empty lists are null, a custom
  value of the wrong type is null, list elements lower-cased); a field derived from events
  (`opens_count`, `last_open_at`, ...) has no raw value of its own: both are the derived one;
- activity, deliverability: `{"count", "from", "to"}`, the events counted (counted by the
  explain statement, worker.compiler.compile_explain) and the window used: `from` inclusive,
  `to` exclusive, null where the window has no bound;
- membership: `{"lists": [{"id", "name"}]}`, those of the condition's lists the contact is on;
- isp: `{"isp_id", "name"}`;
- segment: `{"segments": [{"id", "name"}]}`, those of the condition's segments whose
  materialised membership holds the contact.

Every query is scoped to the account: lists, segments and events of another account that
name the contact are never read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from worker.compiler import SegmentQuery, field_reader
from worker.compiler.calendar import period_bounds
from worker.compiler.operators import COLUMNS, DERIVED
from worker.compiler.params import Params
from worker.db import Conn
from worker.rules.fields import FieldSource, FieldSpec, FieldType
from worker.rules.tree import (
    ActivityCondition,
    CalendarPeriod,
    Condition,
    FieldCondition,
    IspCondition,
    MembershipCondition,
    SegmentCondition,
)

Json = Any


@dataclass(frozen=True)
class Named:
    id: UUID
    name: str

    def json(self) -> Json:
        return {"id": str(self.id), "name": self.name}


@dataclass(frozen=True)
class ContactData:
    """The data of one contact that the conditions read, loaded once per explanation."""

    fields: Mapping[FieldSpec, tuple[Json, Json]]  # spec -> (stored, read)
    isp_id: int | None
    isp_name: str | None
    lists: Sequence[Named]  # the lists the contact is on
    segments: Sequence[Named]  # the segments whose membership holds it
    counts: Mapping[ActivityCondition, int]  # from the explain statement

    def observed(self, c: Condition, query: SegmentQuery) -> Json:
        match c:
            case FieldCondition():
                stored, read = self.fields[c.field]
                return {"stored": stored, "read": read}
            case ActivityCondition():
                start, end = window(c, query)
                return {"count": self.counts[c], "from": jsonable(start), "to": jsonable(end)}
            case MembershipCondition():
                return {"lists": [x.json() for x in self.lists if x.id in c.list_ids]}
            case IspCondition():
                return {"isp_id": self.isp_id, "name": self.isp_name}
            case SegmentCondition():
                return {"segments": [x.json() for x in self.segments if x.id in c.segment_ids]}
        raise AssertionError(f"no observation for {type(c).__name__}")  # pragma: no cover


def window(c: ActivityCondition, query: SegmentQuery) -> tuple[datetime | None, datetime | None]:
    """The events' window [from, to) for the query's now; None: no bound on that side."""
    match c.days_window:
        case CalendarPeriod():
            bounds = period_bounds(c.days_window, query.local_now)
            return bounds.start, bounds.end
        case None:
            return None, None
    cutoff = query.now - timedelta(days=c.days_window.days)
    return (cutoff, None) if c.days_window.mode == "last" else (None, cutoff)


async def load_contact_data(
    conn: Conn,
    account_id: UUID,
    contact_id: UUID,
    conditions: Iterable[Condition],
    counts: Mapping[ActivityCondition, int],
) -> ContactData:
    specs = list(dict.fromkeys(c.field for c in conditions if isinstance(c, FieldCondition)))
    params = Params()
    account, contact = params.add(account_id, "uuid"), params.add(contact_id, "uuid")
    columns = [expr for spec in specs for expr in _stored_and_read(spec, params, account)]
    row = await conn.fetchrow(
        f"""SELECT c.isp_id, (SELECT a.name FROM isp_aliases a WHERE a.id = c.isp_id) AS isp
                {"".join(f", {expr}" for expr in columns)}
            FROM contacts c WHERE c.account_id = {account} AND c.id = {contact}""",  # noqa: S608
        *params.values,
    )
    assert row is not None, "the caller found the contact"
    values = list(row.values())[2:]
    fields = {
        spec: (jsonable(values[2 * i]), jsonable(values[2 * i + 1])) for i, spec in enumerate(specs)
    }
    return ContactData(
        fields,
        row["isp_id"],
        row["isp"],
        await _named(conn, _LISTS_OF_CONTACT, account_id, contact_id),
        await _named(conn, _SEGMENTS_OF_CONTACT, account_id, contact_id),
        counts,
    )


def _stored_and_read(spec: FieldSpec, params: Params, account: str) -> tuple[str, str]:
    """SQL of the field's raw value and of its value as rules read it, for the contact `c`."""
    if spec.source is FieldSource.DERIVED:
        event_type, aggregate = DERIVED[spec.name]
        # The aggregate is from the DERIVED whitelist; the event type a parameter.
        event = params.add(event_type, "text")
        derived = f"(SELECT {aggregate} FROM events e WHERE e.account_id = {account}"  # noqa: S608
        derived += f" AND e.contact_id = c.id AND e.type = {event})"
        return derived, derived
    if spec.source is FieldSource.CUSTOM:
        stored = f"c.attributes -> {params.add(spec.name, 'text')}"
    else:
        stored = COLUMNS.get(spec.name, "c.tags")
    read = field_reader(spec, params)
    if spec.type is FieldType.TEXT:
        read = f"nullif({read}, '')"
    elif spec.type is FieldType.LIST:
        read = f"CASE WHEN cardinality({read}) > 0 THEN {read} END"
    return stored, read


_LISTS_OF_CONTACT = """SELECT l.id, l.name FROM contact_list_members m
    JOIN contact_lists l ON l.id = m.list_id AND l.account_id = m.account_id
    WHERE m.account_id = $1 AND m.contact_id = $2 ORDER BY l.name, l.id"""
_SEGMENTS_OF_CONTACT = """SELECT s.id, s.name FROM segment_members sm
    JOIN segments s ON s.id = sm.segment_id AND s.account_id = sm.account_id
    WHERE sm.account_id = $1 AND sm.contact_id = $2 ORDER BY s.name, s.id"""


async def _named(conn: Conn, sql: str, account_id: UUID, contact_id: UUID) -> list[Named]:
    return [Named(r["id"], r["name"]) for r in await conn.fetch(sql, account_id, contact_id)]


def jsonable(value: Any) -> Json:
    """A value read from PostgreSQL as JSON: numbers as numbers (an integral Decimal as an
    int), instants in UTC ISO 8601 with `Z`, ids as strings."""
    match value:
        case bool() | None | str() | int() | float():
            return value
        case Decimal():
            return int(value) if value == value.to_integral_value() else float(value)
        case datetime():
            return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        case UUID():
            return str(value)
        case list() | tuple():
            return [jsonable(v) for v in value]
        case dict():
            return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)
