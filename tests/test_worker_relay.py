"""The worker runs the outbox relay: what the worker side writes to the outbox (the
scheduler's messages today, membership messages next) is published with no API running."""

from __future__ import annotations

import uuid

import asyncpg

from tests.test_worker_builds import SUBSCRIBED_IN_DE, _people
from tests.worker_support import (
    run_until_idle,
    running_worker,
    save_segment,
    segment_row,
    wait_status,
    worker_settings,
)
from worker.outbox import enqueue_segment


async def _enqueue_created(conn: asyncpg.Connection, segment: dict[str, object]) -> int:
    async with conn.transaction():
        await enqueue_segment(
            conn,
            "segment.created",
            segment["account_id"],  # type: ignore[arg-type]
            segment["id"],  # type: ignore[arg-type]
            segment["generation"],  # type: ignore[arg-type]
        )
        row_id: int = await conn.fetchval("SELECT max(id) FROM outbox")
    return row_id


async def test_a_worker_alone_publishes_outbox_rows(
    conn: asyncpg.Connection, account_id: uuid.UUID, database_url: str, amqp_url: str
) -> None:
    await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    row_id = await _enqueue_created(conn, segment)
    async with running_worker(worker_settings(database_url, amqp_url)):
        row = await wait_status(conn, segment["id"], "DONE")
    assert row["total_count"] == 2
    assert await conn.fetchval("SELECT sent_at IS NOT NULL FROM outbox WHERE id = $1", row_id)


async def test_a_worker_without_its_relay_leaves_the_outbox_alone(
    conn: asyncpg.Connection, account_id: uuid.UUID, database_url: str, amqp_url: str
) -> None:
    await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    row_id = await _enqueue_created(conn, segment)
    without_relay = worker_settings(database_url, amqp_url, outbox_relay_enabled=False)
    await run_until_idle(without_relay)  # nothing to do: the message was never published
    assert await conn.fetchval("SELECT sent_at IS NULL FROM outbox WHERE id = $1", row_id)
    assert (await segment_row(conn, segment["id"]))["status"] == "PENDING"
    # The same row, once a relay runs: it was waiting for one, not lost.
    await run_until_idle(worker_settings(database_url, amqp_url))
    assert await conn.fetchval("SELECT sent_at IS NOT NULL FROM outbox WHERE id = $1", row_id)
    assert (await segment_row(conn, segment["id"]))["status"] == "DONE"
