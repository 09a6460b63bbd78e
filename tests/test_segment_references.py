"""Segments built from other segments, with the real worker, RabbitMQ and PostgreSQL
(docs/rules.md, "segment"): whatever moves a referenced segment's members
flows on to the segments referencing it, transitively, and once the worker is idle every
segment equals the reference evaluator run over all segments in reference order."""

from __future__ import annotations

import signal
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from tests.reference import Evaluator
from tests.reference_db import load_data
from tests.waiting import wait_for
from tests.worker_support import (
    SegmentLock,
    members,
    publish_changes,
    publish_segment,
    run_until_idle,
    running_worker,
    save_segment,
    seed_contacts,
    wait_status,
    worker_process,
    worker_settings,
)
from worker import changes
from worker.changes import apply_pending
from worker.references import save_references

Rules = dict[str, Any]


def eq(field_name: str, value: str) -> dict[str, Any]:
    return {"kind": "field", "field": field_name, "operator": "equals", "value": value}


def in_segments(*segments: dict[str, Any], negate: bool = False) -> dict[str, Any]:
    return {
        "kind": "segment",
        "operator": "not_in" if negate else "in",
        "segment_ids": [str(s["id"]) for s in segments],
    }


def all_of(*conditions: dict[str, Any]) -> Rules:
    return {"any": [{"all": list(conditions)}]}


def any_of(*conditions: dict[str, Any]) -> Rules:
    return {"any": [{"all": [c]} for c in conditions]}


def referenced_ids(rules: Rules) -> set[uuid.UUID]:
    return {
        uuid.UUID(s)
        for group in rules["any"]
        for c in group["all"]
        if c["kind"] == "segment"
        for s in c["segment_ids"]
    }


@dataclass
class Account:
    """The account's segments in reference order (referenced ones first), as the API would
    save them: rules and references in one transaction."""

    conn: Any
    account_id: uuid.UUID
    segments: list[dict[str, Any]] = field(default_factory=list)

    async def add(self, rules: Rules, list_ids: list[uuid.UUID] | None = None) -> dict[str, Any]:
        async with self.conn.transaction():
            segment = await save_segment(self.conn, self.account_id, rules, list_ids)
            await save_references(self.conn, self.account_id, segment["id"], referenced_ids(rules))
        segment.update(rules=rules, list_ids=list_ids or [])
        self.segments.append(segment)
        return segment

    async def change_rules(self, segment: dict[str, Any], rules: Rules) -> None:
        """A PATCH of the rules: new generation, PENDING, references replaced."""
        async with self.conn.transaction():
            segment["generation"] = await self.conn.fetchval(
                """UPDATE segments SET rules = $2, generation = generation + 1,
                          status = 'PENDING', total_count = NULL
                   WHERE id = $1 RETURNING generation""",
                segment["id"],
                rules,
            )
            await save_references(self.conn, self.account_id, segment["id"], referenced_ids(rules))
        segment["rules"] = rules

    async def assert_at_rest(self) -> None:
        """Every segment equals the reference run over all segments in reference order."""
        data = await load_data(self.conn, self.account_id)
        expected: dict[uuid.UUID, set[uuid.UUID]] = {}
        for s in self.segments:
            evaluator = Evaluator(data, self.account_id, datetime.now(UTC), expected)
            expected[s["id"]] = evaluator.members("v2", s["rules"], s["list_ids"])
        for s in self.segments:
            row = await self.conn.fetchrow(
                "SELECT status, total_count FROM segments WHERE id = $1", s["id"]
            )
            assert row["status"] == "DONE"
            assert await members(self.conn, s["id"]) == expected[s["id"]], s["rules"]
            assert row["total_count"] == len(expected[s["id"]])
        assert not await self.conn.fetchval("SELECT count(*) FROM segment_pending_changes")


@pytest.fixture
def settings(database_url: str, amqp_url: str) -> Any:
    return worker_settings(database_url, amqp_url)


async def _people(conn: Any, account_id: uuid.UUID, n: int = 12) -> list[uuid.UUID]:
    countries = ["de", "fr", "nl", None]
    return await seed_contacts(
        conn,
        account_id,
        [
            {
                "country": countries[i % 4],
                "status": "subscribed" if i % 3 else "unsubscribed",
                "city": "berlin" if (i // 2) % 2 else "paris",
            }
            for i in range(n)
        ],
    )


async def _build_all(exchange: Any, account: Account, settings: Any, *, reverse: bool) -> None:
    """Publish every segment's build, the referring ones first when `reverse` (their builds
    then read referenced segments that have no members yet), and run until idle."""
    for s in reversed(account.segments) if reverse else account.segments:
        await publish_segment(exchange, "segment.created", s)
    await run_until_idle(settings)


async def _move(conn: Any, exchange: Any, account_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
    """Change some contacts so that referenced segments' members move, and say so."""
    await conn.execute(
        """UPDATE contacts SET country = CASE WHEN country = 'de' THEN 'fr' ELSE 'de' END,
                  city = CASE WHEN city = 'berlin' THEN 'paris' ELSE 'berlin' END
           WHERE id = ANY($1::uuid[])""",
        ids,
    )
    await publish_changes(exchange, account_id, ids)


async def _build_then_move(
    account: Account, exchange: Any, settings: Any, moved: list[uuid.UUID], *, reverse: bool
) -> None:
    """Build every segment and check the state at rest; then move `moved`, settle, check."""
    await _build_all(exchange, account, settings, reverse=reverse)
    await account.assert_at_rest()
    # The data makes every link non-trivial: each segment has members before the move.
    for s in account.segments:
        assert await members(account.conn, s["id"]), s["rules"]
    await _move(account.conn, exchange, account.account_id, moved)
    await run_until_idle(settings)
    await account.assert_at_rest()


async def test_chain_of_three_settles_equal_to_the_reference(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, settings: Any
) -> None:
    ids = await _people(conn, account_id)
    account = Account(conn, account_id)
    a = await account.add(all_of(eq("country", "de")))
    b = await account.add(all_of(in_segments(a), eq("status", "subscribed")))
    await account.add(any_of(in_segments(b), eq("city", "berlin")))
    await _build_then_move(account, exchange, settings, ids[:6], reverse=True)


async def test_diamond_settles_equal_to_the_reference(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, settings: Any
) -> None:
    ids = await _people(conn, account_id)
    account = Account(conn, account_id)
    a = await account.add(any_of(eq("country", "de"), eq("country", "nl")))
    b = await account.add(all_of(in_segments(a), eq("status", "subscribed")))
    c = await account.add(all_of(in_segments(a), eq("city", "berlin")))
    await account.add(all_of(in_segments(b), in_segments(c)))
    await _build_then_move(account, exchange, settings, ids[::2], reverse=False)


async def test_not_in_a_segment_settles_equal_to_the_reference(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, settings: Any
) -> None:
    ids = await _people(conn, account_id)
    account = Account(conn, account_id)
    a = await account.add(all_of(eq("country", "de")))
    b = await account.add(all_of(eq("status", "subscribed")))
    # Neither in A nor in B: contacts leave it as they join A, and come back as they leave.
    await account.add(all_of(in_segments(a, b, negate=True)))
    await _build_then_move(account, exchange, settings, ids[:5], reverse=True)


async def test_rules_change_of_a_referenced_segment_flows_on(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, settings: Any
) -> None:
    await _people(conn, account_id)
    account = Account(conn, account_id)
    a = await account.add(all_of(eq("country", "de")))
    b = await account.add(all_of(in_segments(a)))
    c = await account.add(all_of(in_segments(b, negate=True), eq("status", "subscribed")))
    await _build_all(exchange, account, settings, reverse=False)
    await account.assert_at_rest()
    before = await members(conn, c["id"])

    await account.change_rules(a, all_of(eq("country", "fr")))
    await publish_segment(exchange, "segment.updated", a)
    await run_until_idle(settings)
    await account.assert_at_rest()
    assert await members(conn, c["id"]) != before  # the rebuild of A reached C through B


async def test_contact_changes_while_builds_run_settle_equal_to_the_reference(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    exchange: Any,
    settings: Any,
) -> None:
    ids = await _people(conn, account_id)
    account = Account(conn, account_id)
    a = await account.add(all_of(eq("country", "de")))
    b = await account.add(all_of(in_segments(a), eq("status", "subscribed")))
    await account.add(any_of(in_segments(b), eq("city", "paris")))
    await _build_all(exchange, account, settings, reverse=False)

    # B's rebuild waits mid-transaction (as if slow) while A moves under it.
    async with running_worker(settings), SegmentLock(pool, b["id"]) as lock:
        await account.change_rules(b, all_of(in_segments(a), eq("city", "berlin")))
        await publish_segment(exchange, "segment.updated", b)
        await _move(conn, exchange, account_id, ids[:8])

        async def queued_for_b() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM segment_pending_changes WHERE segment_id = $1",
                    b["id"],
                )
            )

        await wait_for(queued_for_b, timeout=30)
        await lock.release()
        await wait_status(conn, b["id"], "DONE")
    await run_until_idle(settings)
    await account.assert_at_rest()


async def test_worker_killed_mid_propagation_another_run_settles_it(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    exchange: Any,
    settings: Any,
    database_url: str,
    amqp_url: str,
) -> None:
    ids = await _people(conn, account_id)
    account = Account(conn, account_id)
    a = await account.add(all_of(eq("country", "de")))
    b = await account.add(all_of(in_segments(a), eq("status", "subscribed")))
    c = await account.add(all_of(in_segments(b, negate=True)))
    await _build_all(exchange, account, settings, reverse=False)

    # C's lock held: propagation gets through A and B and stops in front of C.
    async with SegmentLock(pool, c["id"]):
        process = await worker_process(database_url, amqp_url)
        try:
            await _move(conn, exchange, account_id, ids)

            async def stuck_at_c() -> bool:
                waiting = await conn.fetch(
                    "SELECT DISTINCT segment_id FROM segment_pending_changes"
                )
                return [r[0] for r in waiting] == [c["id"]]

            await wait_for(stuck_at_c, timeout=60)
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
    await run_until_idle(settings)
    await account.assert_at_rest()


@pytest.mark.parametrize("chunk", [changes.PENDING_CHUNK, 5])
async def test_one_sweep_applies_queued_changes_in_reference_order(
    conn: asyncpg.Connection, account_id: uuid.UUID, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Contacts queued for every segment of a chain: one sweep updates the referenced segment
    before those reading it (ids chosen so that id order is the reverse), so it settles all;
    also when a segment's queued contacts take several chunks (transactions)."""
    monkeypatch.setattr(changes, "PENDING_CHUNK", chunk)
    ids = await _people(conn, account_id)
    account = Account(conn, account_id)
    a_rules = all_of(eq("country", "de"))
    a = {"id": uuid.UUID(int=(account_id.int & ~0xFF) | 3)}
    b = {"id": uuid.UUID(int=(account_id.int & ~0xFF) | 2)}
    c = {"id": uuid.UUID(int=(account_id.int & ~0xFF) | 1)}
    chain = [
        (a, a_rules),
        (b, all_of(in_segments(a), eq("status", "subscribed"))),
        (c, all_of(in_segments(b, negate=True))),
    ]
    for segment, rules in chain:
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO segments (id, account_id, name, dialect, rules, status,
                       total_count, built_generation)
                   VALUES ($1, $2, 'chain', 'v2', $3, 'DONE', 0, 1)""",
                segment["id"],
                account_id,
                rules,
            )
            await save_references(conn, account_id, segment["id"], referenced_ids(rules))
        segment.update(rules=rules, list_ids=[])
        account.segments.append(segment)
        await conn.execute(
            """INSERT INTO segment_pending_changes (segment_id, contact_id, account_id)
               SELECT $1, unnest($2::uuid[]), $3""",
            segment["id"],
            ids,
            account_id,
        )
    result = await apply_pending(conn, statement_timeout_ms=60_000)
    assert result.segments == 3
    await account.assert_at_rest()
