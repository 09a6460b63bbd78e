"""`segments worker --until-idle`: publish work, drain it, assert; no waiting in the test."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from typing import Any

import aio_pika
import asyncpg

from tests.test_worker_builds import SUBSCRIBED_IN_DE, _people
from tests.worker_support import (
    members,
    publish_changes,
    publish_segment,
    run_until_idle,
    save_segment,
    segment_row,
    worker_settings,
)
from worker.outbox import enqueue_segment
from worker.topology import WORK_QUEUES


async def _ready_messages(amqp_url: str) -> dict[str, int]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        counts = {}
        for queue in WORK_QUEUES:
            declared = await channel.declare_queue(queue.name, passive=True)
            counts[queue.name] = declared.declaration_result.message_count or 0
        return counts
    finally:
        await connection.close()


async def test_until_idle_applies_builds_outbox_changes_and_pending_changes_then_returns(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, database_url: str, amqp_url: str
) -> None:
    ids = await _people(conn, account_id)  # 0 and 1 match
    published = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    from_outbox = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    await publish_segment(exchange, "segment.created", published)
    async with conn.transaction():
        await enqueue_segment(
            conn, "segment.created", account_id, from_outbox["id"], from_outbox["generation"]
        )
    settings = worker_settings(database_url, amqp_url)
    await run_until_idle(settings)
    for segment in (published, from_outbox):
        row = await segment_row(conn, segment["id"])
        assert (row["status"], row["total_count"]) == ("DONE", 2)
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0

    # A change published, and one queued behind a build that has finished since.
    await conn.execute("UPDATE contacts SET country = 'DE' WHERE id = ANY($1)", ids[3:5])
    await publish_changes(exchange, account_id, [ids[3]])
    await conn.execute(
        """INSERT INTO segment_pending_changes (segment_id, contact_id, account_id)
           VALUES ($1, $2, $3)""",
        from_outbox["id"],
        ids[4],
        account_id,
    )
    await run_until_idle(settings)
    assert await members(conn, published["id"]) == {ids[0], ids[1], ids[3]}
    assert await members(conn, from_outbox["id"]) == {ids[0], ids[1], ids[3], ids[4]}
    assert (await segment_row(conn, from_outbox["id"]))["total_count"] == 4
    assert await conn.fetchval("SELECT count(*) FROM segment_pending_changes") == 0
    assert await _ready_messages(amqp_url) == {queue.name: 0 for queue in WORK_QUEUES}


async def test_the_worker_command_until_idle_exits_0_when_done(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, database_url: str, amqp_url: str
) -> None:
    ids = await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    await publish_segment(exchange, "segment.created", segment)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "segments.cli",
        "worker",
        "--until-idle",
        env={
            **os.environ,
            "SEGMENTS_DATABASE_URL": database_url,
            "SEGMENTS_AMQP_URL": amqp_url,
            "SEGMENTS_WORKER_METRICS_PORT": "0",
            "SEGMENTS_LOG_FORMAT": "json",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()
    assert b'"worker.idle"' in output
    assert (await segment_row(conn, segment["id"]))["status"] == "DONE"
    assert await members(conn, segment["id"]) == {ids[0], ids[1]}
