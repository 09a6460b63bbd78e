"""The changes feed, property-tested (docs/changes.md): for random data sets, rules and
sequences of data changes, rules changes and rebuilds, the members of the first build
plus the feed replayed in seq order (and the membership.changed messages, in the order the
outbox holds them) give the materialised membership after every step, which is what the
reference evaluator says; seqs have no gaps, and a step that moves nobody records nothing."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.property_support import EXAMPLES as ALL_EXAMPLES
from tests.property_support import Database, load_generated, load_referenced
from tests.reference import Data, Evaluator
from tests.reference_db import load_data
from tests.strategies import (
    ACCOUNT,
    LISTS,
    NOW,
    contacts,
    data_sets,
    rules_in_any_dialect,
    segment_memberships,
    universes,
)
from tests.worker_support import segment_message
from worker.builds import build_segment
from worker.changes import apply_changes
from worker.membership_feed import read_changes
from worker.messages import MembershipChanged, decode

WEEK = timedelta(days=7)
EXAMPLES = ALL_EXAMPLES // 4

# One step: a contact's data replaced (by index into our contacts), its lists replaced, the
# rules (and universe) replaced, or a rebuild.
data_steps = st.tuples(st.just("data"), st.integers(0, 7), contacts(ACCOUNT, 99))
list_steps = st.tuples(
    st.just("lists"), st.integers(0, 7), st.lists(st.sampled_from(LISTS), unique=True, max_size=3)
)
rules_steps = st.tuples(st.just("rules"), rules_in_any_dialect, universes)
rebuild_steps = st.tuples(st.just("rebuild"))
steps = st.lists(
    st.one_of(data_steps, list_steps, rules_steps, rebuild_steps), min_size=1, max_size=6
)

_CONTACT_COLUMNS = (
    "status", "name", "company", "country", "city", "tags", "isp_id", "attributes", "updated_at"
)  # fmt: skip


class Follower:
    """A consumer's copy: the first build's members, then the feed."""

    def __init__(self, conn: asyncpg.Connection, segment_id: uuid.UUID) -> None:
        self.conn, self.segment_id = conn, segment_id
        self.members: set[uuid.UUID] = set()
        self.last_seq = 0

    async def start(self) -> None:
        [initial] = await self._items()
        assert (initial["seq"], initial["change"]) == (1, "initial")
        self.members = await self.materialised()
        assert initial["total_count"] == len(self.members)
        self.last_seq = 1

    async def catch_up(self) -> int:
        """Apply the new items; returns how many there were."""
        items = await self._items()
        assert [i["seq"] for i in items] == list(
            range(self.last_seq + 1, len(items) + self.last_seq + 1)
        )
        for item in items:
            assert item["change"] in ("entered", "left")
            (self.members.add if item["change"] == "entered" else self.members.discard)(
                item["contact_id"]
            )
        self.last_seq += len(items)
        return len(items)

    async def _items(self) -> list[asyncpg.Record]:
        items: list[asyncpg.Record] = []
        after = self.last_seq
        while page := (
            await read_changes(
                self.conn, ACCOUNT, self.segment_id, after=after, limit=1000, retention=WEEK
            )
        ).items:
            items += page
            after = page[-1]["seq"]
        return items

    async def materialised(self) -> set[uuid.UUID]:
        rows = await self.conn.fetch(
            "SELECT contact_id FROM segment_members WHERE segment_id = $1", self.segment_id
        )
        return {r[0] for r in rows}

    async def replay_messages(self, initial: set[uuid.UUID]) -> set[uuid.UUID]:
        """The same from the membership.changed rows, in outbox order."""
        rows = await self.conn.fetch(
            """SELECT body FROM outbox WHERE routing_key = 'membership.changed'
                 AND body->>'segment_id' = $1 ORDER BY id""",
            str(self.segment_id),
        )
        copy, last = set(initial), 0
        for row in rows:
            message = decode(MembershipChanged, json.dumps(row["body"]).encode())
            assert message.seq_first == last + 1
            copy |= set(message.entered)
            copy -= set(message.left)
            last = message.seq_last
        assert last == self.last_seq
        return copy


async def _apply(
    conn: asyncpg.Connection, segment: dict[str, Any], ours: list[uuid.UUID], step: tuple[Any, ...]
) -> None:
    kind = step[0]
    if kind == "data":
        contact_id, new = ours[step[1] % len(ours)], step[2]
        values = [getattr(new, column) for column in _CONTACT_COLUMNS]
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(_CONTACT_COLUMNS, start=2))
        await conn.execute(f"UPDATE contacts SET {sets} WHERE id = $1", contact_id, *values)
        await apply_changes(conn, ACCOUNT, [contact_id], statement_timeout_ms=60_000, now=NOW)
    elif kind == "lists":
        contact_id = ours[step[1] % len(ours)]
        await conn.execute("DELETE FROM contact_list_members WHERE contact_id = $1", contact_id)
        await conn.executemany(
            """INSERT INTO contact_list_members (list_id, contact_id, account_id)
               VALUES ($1, $2, $3)""",
            [(list_id, contact_id, ACCOUNT) for list_id in step[2]],
        )
        await apply_changes(conn, ACCOUNT, [contact_id], statement_timeout_ms=60_000, now=NOW)
    elif kind == "rules":
        (dialect, rules), universe = step[1], step[2]
        segment.update(dialect=dialect, rules=rules, universe=universe)
        segment["generation"] = await conn.fetchval(
            """UPDATE segments SET dialect = $2, rules = $3, contact_list_ids = $4,
                   generation = generation + 1, status = 'PENDING'
               WHERE id = $1 RETURNING generation""",
            segment["id"], dialect, rules, universe,
        )  # fmt: skip
        await _build(conn, segment, "updated")
    else:
        await _build(conn, segment, "rebuild")


async def _build(conn: asyncpg.Connection, segment: dict[str, Any], trigger: str) -> None:
    message = segment_message(segment)
    result = await build_segment(conn, message, trigger, statement_timeout_ms=60_000, now=NOW)
    assert result.outcome == "done", result


async def _check(
    conn: asyncpg.Connection,
    data: Data,
    first: tuple[tuple[str, Any], list[uuid.UUID]],
    memberships: list[set[int]],
    plan: list[tuple[Any, ...]],
) -> None:
    transaction = conn.transaction()
    await transaction.start()
    try:
        await load_generated(conn, data)
        referenced = await load_referenced(conn, data, memberships)
        (dialect, rules), universe = first
        segment = {
            "account_id": ACCOUNT,
            "dialect": dialect,
            "rules": rules,
            "universe": universe,
            "generation": 1,
        }
        segment["id"] = await conn.fetchval(
            """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids)
               VALUES ($1, 'feed', $2, $3, $4) RETURNING id""",
            ACCOUNT, dialect, rules, universe,
        )  # fmt: skip
        await _build(conn, segment, "created")
        follower = Follower(conn, segment["id"])
        await follower.start()
        initial = set(follower.members)
        ours = [c.id for c in data.contacts if c.account_id == ACCOUNT]
        for step in plan:
            before = set(follower.members)
            await _apply(conn, segment, ours, step)
            moved = await follower.catch_up()
            materialised = await follower.materialised()
            assert follower.members == materialised, step
            assert moved == len(before ^ materialised), "one item per contact moved, no more"
            now_data = await load_data(conn, ACCOUNT)
            evaluator = Evaluator(now_data, ACCOUNT, NOW, segment_members=referenced)
            expected = evaluator.members(segment["dialect"], segment["rules"], segment["universe"])
            assert materialised == expected, step
        assert await follower.replay_messages(initial) == follower.members
    finally:
        await transaction.rollback()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=data_sets(),
    first=st.tuples(rules_in_any_dialect, universes),
    memberships=segment_memberships,
    plan=steps,
)
def test_initial_members_plus_the_feed_give_the_membership_after_every_step(
    db: Database,
    data: Data,
    first: Any,
    memberships: list[set[int]],
    plan: list[tuple[Any, ...]],
) -> None:
    db.run(_check(db.conn, data, first, memberships, plan))
