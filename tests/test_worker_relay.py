"""The worker runs the outbox relay: what the worker side writes to the outbox (the
scheduler's messages today, membership messages next) is published with no API running."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from tests.test_worker_builds import SUBSCRIBED_IN_DE, _people
from tests.worker_support import (
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
    settings = worker_settings(
        database_url, amqp_url, outbox_relay_enabled=False, outbox_poll_interval_s=0.1
    )
    async with running_worker(settings):
        row_id = await _enqueue_created(conn, segment)
        # Absence needs a window: ten of a relay's poll intervals, had one been running here
        # (or anywhere on this database, which would make the test above prove nothing).
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            unsent = await conn.fetchval("SELECT sent_at IS NULL FROM outbox WHERE id = $1", row_id)
            assert unsent, "an outbox row was published with no relay running"
            await asyncio.sleep(0.1)
    assert (await segment_row(conn, segment["id"]))["status"] == "PENDING"
