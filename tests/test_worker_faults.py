"""The worker under faults: killed mid-build, stopped by SIGTERM, broker or database away,
attempts exhausted.

Faults are made for one client at a time (a TCP proxy it connects through, or a process we
own), never by stopping the shared servers."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import uuid
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.tcp_proxy import TcpProxy, through
from tests.test_worker_builds import SUBSCRIBED_IN_DE, _people
from tests.waiting import wait_for
from tests.worker_support import (
    SegmentLock,
    members,
    publish_segment,
    run_until_idle,
    running_worker,
    save_segment,
    segment_row,
    take_dead_letter,
    wait_status,
    worker_process,
    worker_settings,
)
from worker.metrics import MESSAGES
from worker.settle import ATTEMPT_HEADER, DETAIL_HEADER, ORIGINAL_ROUTING_KEY_HEADER, REASON_HEADER
from worker.topology import BUILD_QUEUE


async def test_worker_killed_mid_build_another_worker_finishes_it(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    exchange: Any,
    database_url: str,
    amqp_url: str,
) -> None:
    ids = await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    async with SegmentLock(pool, segment["id"]) as lock:
        process = await worker_process(database_url, amqp_url)
        await publish_segment(exchange, "segment.created", segment)
        await wait_status(conn, segment["id"], "RUNNING")
        process.send_signal(signal.SIGKILL)
        await process.wait()
        # The killed worker never acked its delivery: the broker gives it to this worker,
        # which picks the RUNNING segment up again.
        async with running_worker(worker_settings(database_url, amqp_url)):
            await lock.release()
            row = await wait_status(conn, segment["id"], "DONE")
    assert row["total_count"] == 2
    assert await members(conn, segment["id"]) == {ids[0], ids[1]}


async def test_sigterm_stops_the_worker_cleanly_and_returns_its_work(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    exchange: Any,
    database_url: str,
    amqp_url: str,
) -> None:
    ids = await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    async with SegmentLock(pool, segment["id"]):
        process = await worker_process(database_url, amqp_url, SEGMENTS_SHUTDOWN_GRACE_S="1")
        await publish_segment(exchange, "segment.created", segment)
        await wait_status(conn, segment["id"], "RUNNING")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    # The build it gave up on went back to the queue; a new worker finishes it.
    async with running_worker(worker_settings(database_url, amqp_url)):
        await wait_status(conn, segment["id"], "DONE")
    assert await members(conn, segment["id"]) == {ids[0], ids[1]}


async def test_broker_connection_lost_while_messages_are_in_flight_nothing_is_lost(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    exchange: Any,
    database_url: str,
    amqp_url: str,
) -> None:
    await _people(conn, account_id)
    segments = [await save_segment(conn, account_id, SUBSCRIBED_IN_DE) for _ in range(4)]
    proxy = TcpProxy("127.0.0.1", urlsplit(amqp_url).port or 5672)
    await proxy.start()
    try:
        settings = worker_settings(database_url, through(amqp_url, proxy.port))
        async with running_worker(settings):
            async with SegmentLock(pool, segments[0]["id"]):
                for segment in segments:
                    await publish_segment(exchange, "segment.created", segment)
                await wait_status(conn, segments[0]["id"], "RUNNING")
                await proxy.stop()  # in flight: one build holding a delivery, others queued
            await proxy.start()  # the robust connection comes back and consumes again
            for segment in segments:
                row = await wait_status(conn, segment["id"], "DONE", timeout=60)
                assert row["total_count"] == 2
    finally:
        await proxy.stop()


async def test_database_away_for_a_while_builds_are_retried_then_correct(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, database_url: str, amqp_url: str
) -> None:
    ids = await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    target = urlsplit(database_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    retried = MESSAGES.labels(BUILD_QUEUE.name, "retried", "transient")
    try:
        settings = worker_settings(through(database_url, proxy.port), amqp_url)
        async with running_worker(settings):
            await proxy.stop()
            before = retried._value.get()
            await publish_segment(exchange, "segment.created", segment)

            async def retried_once() -> bool:
                return retried._value.get() > before

            await wait_for(retried_once, timeout=30)
            await proxy.start()
            await wait_status(conn, segment["id"], "DONE", timeout=60)
    finally:
        await proxy.stop()
    assert await members(conn, segment["id"]) == {ids[0], ids[1]}


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@pytest.mark.skipif(
    shutil.which("rabbitmqctl") is None or bool(os.environ.get("SEGMENTS_TEST_AMQP_URL")),
    reason="restarts the local broker with rabbitmqctl; not possible against a remote one",
)
async def test_rabbitmq_restarted_while_messages_are_in_flight_nothing_is_lost(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    exchange: Any,
    database_url: str,
    amqp_url: str,
) -> None:
    ids = await _people(conn, account_id)
    segments = [await save_segment(conn, account_id, SUBSCRIBED_IN_DE) for _ in range(3)]
    async with running_worker(worker_settings(database_url, amqp_url)):
        async with SegmentLock(pool, segments[0]["id"]):
            for segment in segments:
                await publish_segment(exchange, "segment.created", segment)
            await wait_status(conn, segments[0]["id"], "RUNNING")
            # The broker goes down with one delivery in flight and others queued (durable,
            # quorum), and comes back; the worker's robust connection finds it again.
            await asyncio.to_thread(_rabbitmqctl, "stop_app")
            await asyncio.to_thread(_rabbitmqctl, "start_app")
            await asyncio.to_thread(_rabbitmqctl, "await_startup")
        for segment in segments:
            row = await wait_status(conn, segment["id"], "DONE", timeout=90)
            assert row["total_count"] == 2
    assert all([await members(conn, s["id"]) == {ids[0], ids[1]} for s in segments])


async def _build_failing_until_idle(
    pool: asyncpg.Pool, exchange: Any, segment: dict[str, Any], settings: Any, attempt: int
) -> str:
    """Publish the segment's build on its `attempt`, and run a worker until idle while every
    build of it waits for its lock longer than the statement timeout allows (a temporary
    error). Returns the message id."""
    async with SegmentLock(pool, segment["id"]):
        message_id = await publish_segment(
            exchange, "segment.created", segment, headers={ATTEMPT_HEADER: attempt}
        )
        await run_until_idle(settings)
    return message_id


async def test_a_build_out_of_attempts_is_dead_lettered_and_the_segment_failed(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    exchange: Any,
    database_url: str,
    amqp_url: str,
) -> None:
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    settings = worker_settings(database_url, amqp_url, statement_timeout_ms=500, max_attempts=3)
    # A message that has used its attempts already: its next failure is its last.
    message_id = await _build_failing_until_idle(pool, exchange, segment, settings, attempt=3)
    row = await segment_row(conn, segment["id"])
    assert (row["status"], row["total_count"]) == ("FAILED", None)
    reason = row["error_reason"]
    assert "stopped by the statement timeout 3 times" in reason
    assert "raise SEGMENTS_STATEMENT_TIMEOUT_MS" in reason  # what to do about it
    dead = await take_dead_letter(amqp_url, BUILD_QUEUE.dead_letter_queue, message_id)
    assert dead.headers[REASON_HEADER] == "attempts_exhausted"
    assert dead.headers[DETAIL_HEADER] == reason
    assert dead.headers[ATTEMPT_HEADER] == 3
    assert dead.headers[ORIGINAL_ROUTING_KEY_HEADER] == "segment.created"


async def test_until_idle_waits_out_a_retry_through_its_delay_queue(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    exchange: Any,
    database_url: str,
    amqp_url: str,
) -> None:
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    settings = worker_settings(
        database_url, amqp_url, statement_timeout_ms=500, max_attempts=2, retry_delays_s=(1,)
    )
    retried = MESSAGES.labels(BUILD_QUEUE.name, "retried", "transient")
    before = retried._value.get()
    # Attempt 1 fails, waits a second in segments.build.retry.1s, attempt 2 fails: the end.
    message_id = await _build_failing_until_idle(pool, exchange, segment, settings, attempt=1)
    assert retried._value.get() == before + 1
    row = await segment_row(conn, segment["id"])
    assert row["status"] == "FAILED"
    assert "2 times" in row["error_reason"]
    dead = await take_dead_letter(amqp_url, BUILD_QUEUE.dead_letter_queue, message_id)
    assert dead.headers[ATTEMPT_HEADER] == 2
