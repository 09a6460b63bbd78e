"""Change hints skip nothing that a change could move: for generated rules (every dialect,
universes, references), generated data and generated changes of that data, each announced by
its own message with its exact hints, re-evaluating each segment for the contacts of just the
messages whose hints concern it (worker.dependencies' plan) ends in the state the reference
evaluator gives for every segment on the changed data."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.property_support import EXAMPLES, Database, load_generated, load_referenced
from tests.reference import Data, Evaluator, Event, Member
from tests.strategies import (
    ACCOUNT,
    CAMPAIGNS,
    EVENT_TYPES,
    LISTS,
    NOW,
    attributes,
    data_sets,
    days_offsets,
    rule_text,
    rules_in_any_dialect,
    segment_memberships,
    stored_text,
    universes,
)
from worker.changes import apply_changes
from worker.dependencies import SegmentReads
from worker.hints import Hints

# Columns a change may set, with the values it may set them to (the data sets' pools).
COLUMNS: dict[str, st.SearchStrategy[Any]] = {
    "name": stored_text,
    "company": stored_text,
    "city": stored_text,
    "country": st.one_of(st.none(), st.sampled_from(["DE", "de", "FR", "", "a%"])),
    "status": st.sampled_from(["subscribed", "unsubscribed", "bounced", "Subscribed"]),
    "tags": st.lists(st.one_of(rule_text, st.just("VIP"), st.just("")), max_size=3),
    "isp_id": st.sampled_from([None, 1, 2, 3]),
    "created_at": st.one_of(st.none(), days_offsets.map(lambda d: NOW - timedelta(days=d))),
    "updated_at": st.one_of(st.none(), days_offsets.map(lambda d: NOW - timedelta(days=d))),
}

# A change: (kind, contact index, detail), kind one of column, attributes, event, list.
Change = tuple[str, int, Any]


@st.composite
def changes(draw: st.DrawFn) -> Change:
    kind = draw(st.sampled_from(["column", "attributes", "event", "list"]))
    index = draw(st.integers(0, 7))
    if kind == "column":
        column = draw(st.sampled_from(sorted(COLUMNS)))
        return kind, index, (column, draw(COLUMNS[column]))
    if kind == "attributes":
        return kind, index, draw(attributes())
    if kind == "event":
        return kind, index, (draw(st.sampled_from(EVENT_TYPES)), draw(days_offsets),
                             draw(st.sampled_from([*CAMPAIGNS, None])))  # fmt: skip
    return kind, index, draw(st.sampled_from(LISTS))


def _exact_hints(change: Change) -> Hints:
    kind, _, detail = change
    if kind == "column":
        return Hints(fields=frozenset({detail[0], "updated_at"}))
    if kind == "attributes":
        return Hints(fields=frozenset(detail) | {"updated_at"})
    if kind == "event":
        return Hints(events=frozenset({detail[0]}))
    return Hints(lists=True)


async def _apply(conn: asyncpg.Connection, data: Data, change: Change) -> Data:
    """The change in the database and in the reference's data; returns the new data."""
    kind, index, detail = change
    contact = data.contacts[index]
    if kind in ("column", "attributes"):
        values = {detail[0]: detail[1]} if kind == "column" else {}
        merged = {**contact.attributes, **detail} if kind == "attributes" else contact.attributes
        # Updates move updated_at, unless the change set it itself.
        values = {"updated_at": NOW, "attributes": merged, **values}
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(values, start=2))
        await conn.execute(
            f"UPDATE contacts SET {assignments} WHERE id = $1",
            contact.id,
            *values.values(),
        )
        contacts = list(data.contacts)
        contacts[index] = dataclasses.replace(contact, **values)
        return dataclasses.replace(data, contacts=contacts)
    if kind == "event":
        event = Event(ACCOUNT, contact.id, detail[0], detail[2], NOW - timedelta(days=detail[1]))
        await conn.execute(
            """INSERT INTO events (account_id, contact_id, type, campaign_id, occurred_at)
               VALUES ($1, $2, $3, $4, $5)""",
            event.account_id, event.contact_id, event.type, event.campaign_id, event.occurred_at,
        )  # fmt: skip
        return dataclasses.replace(data, events=[*data.events, event])
    member = Member(detail, contact.id, ACCOUNT)
    if member in data.members:
        await conn.execute(
            "DELETE FROM contact_list_members WHERE list_id = $1 AND contact_id = $2",
            detail,
            contact.id,
        )
        return dataclasses.replace(data, members=[m for m in data.members if m != member])
    await conn.execute(
        "INSERT INTO contact_list_members (list_id, contact_id, account_id) VALUES ($1, $2, $3)",
        detail,
        contact.id,
        ACCOUNT,
    )
    return dataclasses.replace(data, members=[*data.members, member])


async def _check(
    conn: asyncpg.Connection,
    data: Data,
    cases: list[tuple[str, Any, list[uuid.UUID]]],
    memberships: list[set[int]],
    drawn: list[Change],
) -> None:
    transaction = conn.transaction()
    await transaction.start()
    try:
        await load_generated(conn, data)
        referenced = await load_referenced(conn, data, memberships)
        before = Evaluator(data, ACCOUNT, NOW, segment_members=referenced)
        segments = []
        for dialect, rules, universe in cases:
            members = before.members(dialect, rules, universe)
            segment_id = await conn.fetchval(
                """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids,
                       status, total_count, built_generation)
                   VALUES ($1, 'hints', $2, $3, $4, 'DONE', $5, 1) RETURNING id""",
                ACCOUNT, dialect, rules, universe, len(members),
            )  # fmt: skip
            await conn.executemany(
                """INSERT INTO segment_members (segment_id, contact_id, account_id)
                   VALUES ($1, $2, $3)""",
                [(segment_id, contact_id, ACCOUNT) for contact_id in members],
            )
            segments.append((segment_id, dialect, rules, universe))
        ours = [c for c in data.contacts if c.account_id == ACCOUNT]
        changed = [c for c in drawn if c[1] < len(ours)]
        messages: list[tuple[Hints | None, list[uuid.UUID]]] = []
        for change in changed:
            data = await _apply(conn, data, change)
            # One message per change, as the shim sends them: its contact, its exact hints.
            messages.append((_exact_hints(change), [data.contacts[change[1]].id]))
        plan = await SegmentReads().plan(conn, ACCOUNT, messages)
        # As the worker runs it (change_parallelism 2): each part a run of segment ids, its
        # membership lookups bounded by the run (worker.changes).
        for work in (work for part in plan.split(2) for work in part):
            await apply_changes(
                conn,
                ACCOUNT,
                work.contact_ids,
                statement_timeout_ms=60_000,
                now=NOW,
                segment_ids=work.segment_ids,
            )
        planned = {s: w.contact_ids for w in plan.work for s in w.segment_ids}
        after = Evaluator(data, ACCOUNT, NOW, segment_members=referenced)
        for segment_id, dialect, rules, universe in segments:
            rows = await conn.fetch(
                "SELECT contact_id FROM segment_members WHERE segment_id = $1", segment_id
            )
            evaluated_for = planned.get(segment_id, [])
            context = f"{dialect} {rules=} {universe=} {changed=} {evaluated_for=}"
            assert {r[0] for r in rows} == after.members(dialect, rules, universe), context
    finally:
        await transaction.rollback()


@settings(
    max_examples=max(1, EXAMPLES // 2),  # each example loads several segments
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=data_sets(),
    cases=st.lists(st.tuples(rules_in_any_dialect, universes), min_size=2, max_size=6),
    memberships=segment_memberships,
    drawn=st.lists(changes(), min_size=2, max_size=8),
)
def test_hinted_changes_end_where_re_evaluating_every_segment_does(
    db: Database,
    data: Data,
    cases: list[Any],
    memberships: list[set[int]],
    drawn: list[Change],
) -> None:
    flat = [(dialect, rules, universe) for (dialect, rules), universe in cases]
    db.run(_check(db.conn, data, flat, memberships, drawn))
