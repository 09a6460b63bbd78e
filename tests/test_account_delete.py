"""`segments account delete`: every row of the account goes, in bounded batches, nothing of
another account moves, an interrupted delete finishes when run again, and no build writes
for the account once it is being deleted."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from tests.waiting import wait_for
from tests.worker_support import save_segment, seed_contacts
from worker.account_delete import DELETED_REASON, delete_account, freeze_account
from worker.accounts import create_account
from worker.builds import build_segment
from worker.changes import live_segment_ids
from worker.locks import segment_lock_key
from worker.messages import SegmentMessage

SUBSCRIBED = {"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"}
EVERYONE = {"any": [{"all": [SUBSCRIBED]}]}
# Rows per table of one account, as (table, the column that names the account).
TABLES = [
    ("accounts", "id"),
    ("api_keys", "account_id"),
    ("contacts", "account_id"),
    ("contact_lists", "account_id"),
    ("contact_list_members", "account_id"),
    ("contact_fields", "account_id"),
    ("events", "account_id"),
    ("segments", "account_id"),
    ("segment_members", "account_id"),
]


async def populated_account(
    conn: asyncpg.Connection, contacts: int = 20, events_each: int = 2
) -> uuid.UUID:
    """An account with a key, contacts, a list, a field, events and a built segment."""
    account_id = (await create_account(conn, "doomed")).account_id
    ids = await seed_contacts(conn, account_id, [{} for _ in range(contacts)])
    list_id = await conn.fetchval(
        "INSERT INTO contact_lists (account_id, name) VALUES ($1, 'l') RETURNING id", account_id
    )
    await conn.executemany(
        "INSERT INTO contact_list_members (list_id, contact_id, account_id) VALUES ($1, $2, $3)",
        [(list_id, i, account_id) for i in ids],
    )
    await conn.execute(
        "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, 'plan', 'text')",
        account_id,
    )
    await conn.executemany(
        """INSERT INTO events (account_id, contact_id, type, occurred_at)
           VALUES ($1, $2, 'open', now())""",
        [(account_id, i) for i in ids for _ in range(events_each)],
    )
    segment = await save_segment(conn, account_id, EVERYONE)
    built = await build_segment(conn, message(segment), "created", statement_timeout_ms=60_000)
    assert built.total_count == contacts
    return account_id


def message(segment: dict[str, Any], generation: int | None = None) -> SegmentMessage:
    return SegmentMessage(
        schema_version=1,
        account_id=segment["account_id"],
        segment_id=segment["id"],
        generation=generation or segment["generation"],
    )


async def rows_of(conn: asyncpg.Connection, account_id: uuid.UUID) -> dict[str, int]:
    counts = {}
    for table, column in TABLES:  # names from the list above
        counts[table] = await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE {column} = $1", account_id
        )
    return counts


async def test_delete_removes_every_row_in_batches_and_leaves_other_accounts(
    conn: asyncpg.Connection,
) -> None:
    doomed = await populated_account(conn)
    kept = await populated_account(conn, contacts=3)
    kept_before = await rows_of(conn, kept)

    with capture_logs() as logs:
        deleted = await delete_account(conn, doomed, batch_size=7)

    assert set((await rows_of(conn, doomed)).values()) == {0}
    assert await rows_of(conn, kept) == kept_before
    assert deleted["contacts"] == 20 and deleted["events"] == 40
    assert deleted["segment_members"] == 20 and deleted["contact_list_members"] == 20
    batches = [e for e in logs if e["event"] == "account_delete.batch"]
    assert batches and max(e["deleted"] for e in batches) <= 7
    assert [e["total"] for e in batches if e["table"] == "events"] == [7, 14, 21, 28, 35, 40]
    assert await delete_account(conn, doomed) == {}  # nothing left to do


async def test_an_interrupted_delete_finishes_when_run_again(
    conn: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    account_id = await populated_account(conn, contacts=30, events_each=10)

    async def run() -> None:
        async with pool.acquire() as own:
            await delete_account(own, account_id, batch_size=1)

    task = asyncio.create_task(run())

    async def some_events_gone() -> bool:
        remaining = await conn.fetchval(
            "SELECT count(*) FROM events WHERE account_id = $1", account_id
        )
        return remaining < 300

    await wait_for(some_events_gone, timeout=30, interval=0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    partial = await rows_of(conn, account_id)
    assert partial["accounts"] == 1 and partial["contacts"] == 30  # stopped half-way
    assert 0 < partial["events"] < 300

    await delete_account(conn, account_id, batch_size=5)
    assert set((await rows_of(conn, account_id)).values()) == {0}


async def test_no_build_writes_for_an_account_being_deleted(
    conn: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    account_id = (await create_account(conn, "frozen")).account_id
    await seed_contacts(conn, account_id, [{} for _ in range(5)])
    queued = await save_segment(conn, account_id, EVERYONE)  # a message waits in the queue
    running = await save_segment(conn, account_id, EVERYONE)  # a build is under way
    async with pool.acquire() as holder, pool.acquire() as builder:
        # The build claims the segment, then waits for the segment's lock to write.
        await holder.execute("SELECT pg_advisory_lock($1)", segment_lock_key(running["id"]))
        build = asyncio.create_task(
            build_segment(builder, message(running), "created", statement_timeout_ms=60_000)
        )

        async def claimed() -> bool:
            status = await conn.fetchval("SELECT status FROM segments WHERE id = $1", running["id"])
            return status == "RUNNING"

        await wait_for(claimed)
        assert await freeze_account(conn, account_id) == 2
        await holder.execute("SELECT pg_advisory_unlock($1)", segment_lock_key(running["id"]))
        assert (await build).outcome == "stale"

    late = await build_segment(conn, message(queued), "created", statement_timeout_ms=60_000)
    assert late.outcome == "stale"
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM segment_members WHERE account_id = $1", account_id
        )
        == 0
    )
    rows = await conn.fetch(
        "SELECT status, error_reason FROM segments WHERE account_id = $1", account_id
    )
    assert {(r["status"], r["error_reason"]) for r in rows} == {("FAILED", DELETED_REASON)}
    assert await live_segment_ids(conn, account_id) == []  # contact changes skip them
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL", account_id
        )
        == 0
    )
