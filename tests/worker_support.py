"""Helpers for tests that run the worker: seed data, save segments, publish, wait."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg

from tests.reference_db import reference_members
from tests.waiting import wait_for
from worker.locks import segment_lock_key
from worker.messages import ContactChanged, SegmentMessage, amqp_message, contract_message
from worker.runner import run_worker
from worker.settings import Settings


def worker_settings(database_url: str, amqp_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "amqp_url": amqp_url,
        "shutdown_grace_s": 10,
        "worker_metrics_port": 0,
        **overrides,
    }
    return Settings(**values)


@asynccontextmanager
async def running_worker(settings: Settings, *, metrics: bool = False) -> AsyncIterator[None]:
    """A worker in this event loop for the duration of the block, stopped cleanly after."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop, metrics=metrics, ready=ready))
    try:
        started = asyncio.create_task(ready.wait())
        await asyncio.wait({started, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # startup failed: raise its error here
        assert ready.is_set(), "worker did not start within 30 s"
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


async def worker_process(
    database_url: str, amqp_url: str, **env: str
) -> asyncio.subprocess.Process:
    """`segments worker` in a process of its own (to kill it as a crash would)."""
    environment = {
        **os.environ,
        "SEGMENTS_DATABASE_URL": database_url,
        "SEGMENTS_AMQP_URL": amqp_url,
        "SEGMENTS_WORKER_METRICS_PORT": "0",
        "SEGMENTS_LOG_FORMAT": "json",
        **env,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "segments.cli",
        "worker",
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def run_until_idle(settings: Settings, *, timeout: float = 120) -> None:
    """Run a worker in this event loop until it has nothing left to do (worker/idle.py)."""
    await asyncio.wait_for(
        run_worker(settings, asyncio.Event(), metrics=False, until_idle=True), timeout=timeout
    )


@asynccontextmanager
async def publisher(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractExchange]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        from worker.topology import declare

        yield await declare(channel)
    finally:
        await connection.close()


def segment_message(segment: dict[str, Any]) -> SegmentMessage:
    """The build message of a segment as save_segment returns it."""
    return SegmentMessage(
        schema_version=1,
        account_id=segment["account_id"],
        segment_id=segment["id"],
        generation=segment["generation"],
    )


async def publish_segment(
    exchange: aio_pika.abc.AbstractExchange,
    routing_key: str,
    segment: dict[str, Any],
    *,
    headers: dict[str, Any] | None = None,
) -> str:
    """Publish a build message (with extra `headers`); returns its message_id."""
    message = contract_message(segment_message(segment))
    message.headers.update(headers or {})
    await exchange.publish(message, routing_key=routing_key)
    assert message.message_id is not None
    return message.message_id


async def publish_changes(
    exchange: aio_pika.abc.AbstractExchange, account_id: uuid.UUID, contact_ids: list[uuid.UUID]
) -> None:
    body = ContactChanged(
        schema_version=1,
        account_id=account_id,
        contact_ids=contact_ids,
        changed_at=datetime.now(UTC),
    )
    await exchange.publish(contract_message(body), routing_key="contact.changed")


async def publish_raw(
    exchange: aio_pika.abc.AbstractExchange, routing_key: str, body: bytes
) -> None:
    await exchange.publish(amqp_message(body), routing_key=routing_key)


async def seed_contacts(
    conn: asyncpg.Connection | Any, account_id: uuid.UUID, rows: list[dict[str, Any]]
) -> list[uuid.UUID]:
    ids = []
    for i, row in enumerate(rows):
        values = {"email": f"c{i}-{uuid.uuid4().hex[:6]}@example.com", "status": "subscribed"}
        values.update(row)
        columns = ", ".join(values)
        placeholders = ", ".join(f"${n}" for n in range(2, len(values) + 2))
        ids.append(
            await conn.fetchval(
                f"INSERT INTO contacts (account_id, {columns}) VALUES ($1, {placeholders})"
                " RETURNING id",
                account_id,
                *values.values(),
            )
        )
    return ids


async def save_segment(
    conn: asyncpg.Connection | Any,
    account_id: uuid.UUID,
    rules: dict[str, Any],
    list_ids: list[uuid.UUID] | None = None,
    *,
    time_relative: bool = False,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids, time_relative)
           VALUES ($1, 'test', 'v2', $2, $3, $4)
           RETURNING id, account_id, generation""",
        account_id,
        rules,
        list_ids or [],
        time_relative,
    )
    return dict(row)


async def segment_row(conn: asyncpg.Connection | Any, segment_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM segments WHERE id = $1", segment_id)
    return dict(row)


async def members(conn: asyncpg.Connection | Any, segment_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT contact_id FROM segment_members WHERE segment_id = $1", segment_id
    )
    return {r[0] for r in rows}


async def wait_status(
    conn: asyncpg.Connection | Any, segment_id: uuid.UUID, status: str, timeout: float = 30
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        row = await segment_row(conn, segment_id)
        return row if row["status"] == status else None

    return await wait_for(reached, timeout=timeout)


async def expected_members(
    conn: asyncpg.Connection | Any, account_id: uuid.UUID, rules: dict[str, Any]
) -> set[uuid.UUID]:
    """What the reference evaluator says, on the account's data as it is now."""
    return await reference_members(conn, account_id, "v2", rules)


async def take_dead_letter(
    amqp_url: str, queue_name: str, message_id: str
) -> aio_pika.abc.AbstractIncomingMessage:
    """The dead letter of `message_id`, taken off `queue_name` (which must hold it already);
    the other messages there stay (unacknowledged, they return when the channel closes)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        while (message := await queue.get(fail=False)) is not None:
            if message.message_id == message_id:
                await message.ack()
                return message
        raise AssertionError(f"no dead letter {message_id} in {queue_name}")
    finally:
        await connection.close()


class SegmentLock:
    """Holds a segment's build lock, so its build waits mid-transaction, as if running."""

    def __init__(self, pool: asyncpg.Pool, segment_id: uuid.UUID) -> None:
        self.pool = pool
        self.key = segment_lock_key(segment_id)
        self.conn: Any = None

    async def __aenter__(self) -> SegmentLock:
        self.conn = await self.pool.acquire()
        await self.conn.execute("SELECT pg_advisory_lock($1)", self.key)
        return self

    async def release(self) -> None:
        if self.conn is not None:
            await self.conn.execute("SELECT pg_advisory_unlock($1)", self.key)
            await self.pool.release(self.conn)
            self.conn = None

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()
