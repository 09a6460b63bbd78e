"""Freshness (docs/freshness.md): a segment's fresh_as_of never leads what its membership
reflects, and follows an applied change within about a tick.

Each test has a database and a RabbitMQ vhost of its own: the watermark is shared by every
worker and hold of a database, and workers of other tests would move it."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import pytest

from tests.services import rabbitmq_server
from tests.waiting import wait_for
from tests.worker_support import (
    members,
    private_database,
    publish_segment,
    publisher,
    running_worker,
    save_segment,
    seed_contacts,
    wait_status,
    worker_process,
    worker_settings,
)
from worker.db import connect
from worker.freshness import (
    FreshnessTracker,
    Tick,
    next_tick,
    oldest_fresh_as_of,
    segment_fresh_as_of,
    watermark,
)
from worker.messages import ContactChanged, contract_message
from worker.outbox import enqueue_contacts_changed
from worker.settings import Settings

TICK_S = 0.25
IN_DE = {
    "any": [
        {
            "all": [
                {"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"},
                {"kind": "field", "field": "country", "operator": "equals", "value": "de"},
            ]
        }
    ]
}


@dataclass
class Private:
    conn: asyncpg.Connection
    dsn: str
    account_id: uuid.UUID


@pytest.fixture
async def private(database_url: str) -> AsyncIterator[Private]:
    async with private_database(database_url, "segments_fresh") as (conn, dsn):
        account_id = await conn.fetchval("INSERT INTO accounts (name) VALUES ('f') RETURNING id")
        yield Private(conn, dsn, account_id)


@pytest.fixture
async def vhost() -> AsyncIterator[str]:
    """A RabbitMQ vhost of this test alone (its rabbitmqctl calls run off the event loop)."""
    server = rabbitmq_server()
    url = await asyncio.to_thread(server.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)


async def _clock(conn: Any) -> datetime:
    value: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return value


async def _publish_change(
    exchange: aio_pika.abc.AbstractExchange,
    account_id: uuid.UUID,
    contact_ids: list[uuid.UUID],
    changed_at: datetime,
) -> None:
    body = ContactChanged(
        schema_version=1, account_id=account_id, contact_ids=contact_ids, changed_at=changed_at
    )
    await exchange.publish(contract_message(body), routing_key="contact.changed")


async def _built_segment(p: Private, exchange: aio_pika.abc.AbstractExchange) -> dict[str, Any]:
    segment = await save_segment(p.conn, p.account_id, IN_DE)
    await publish_segment(exchange, "segment.created", segment)
    await wait_status(p.conn, segment["id"], "DONE")
    return segment


async def test_fresh_as_of_passes_an_applied_change_within_about_a_tick(
    private: Private, vhost: str
) -> None:
    p = private
    [contact] = await seed_contacts(p.conn, p.account_id, [{"country": "FR"}])
    settings = worker_settings(p.dsn, vhost, freshness_tick_s=TICK_S)
    async with publisher(vhost) as exchange, running_worker(settings):
        segment = await _built_segment(p, exchange)

        async def known() -> datetime | None:
            return await segment_fresh_as_of(p.conn, p.account_id, segment["id"])

        await wait_for(known)
        await p.conn.execute("UPDATE contacts SET country = 'DE' WHERE id = $1", contact)
        changed_at = await _clock(p.conn)
        await _publish_change(exchange, p.account_id, [contact], changed_at)
        applied_at: float | None = None

        async def passed() -> bool:
            nonlocal applied_at
            fresh = await segment_fresh_as_of(p.conn, p.account_id, segment["id"])
            member = contact in await members(p.conn, segment["id"])  # read after fresh_as_of
            if member and applied_at is None:
                applied_at = time.monotonic()
            if fresh is not None and fresh >= changed_at:
                assert member, "fresh_as_of passed a change its membership does not show"
                return True
            return False

        await wait_for(passed, timeout=20, interval=0.02)
        assert applied_at is not None
        trailed_s = time.monotonic() - applied_at
        # A report follows the next tick read; on a loaded machine a few ticks at most.
        assert trailed_s < 8 * TICK_S, f"fresh_as_of trailed the applied change by {trailed_s}s"


async def test_a_change_held_by_a_stopped_worker_keeps_fresh_as_of_behind_it(
    private: Private, vhost: str
) -> None:
    p = private
    [contact] = await seed_contacts(p.conn, p.account_id, [{"country": "FR"}])
    held = await worker_process(
        p.dsn, vhost, SEGMENTS_FRESHNESS_TICK_S=str(TICK_S), SEGMENTS_LOG_LEVEL="warning"
    )
    try:
        async with publisher(vhost) as exchange:
            segment = await _built_segment(p, exchange)

            async def known() -> datetime | None:
                return await segment_fresh_as_of(p.conn, p.account_id, segment["id"])

            await wait_for(known)
            # The only consumer stops: the change is delivered to it and stays unread.
            held.send_signal(signal.SIGSTOP)
            await p.conn.execute("UPDATE contacts SET country = 'DE' WHERE id = $1", contact)
            changed_at = await _clock(p.conn)
            await _publish_change(exchange, p.account_id, [contact], changed_at)
            settings = worker_settings(p.dsn, vhost, freshness_tick_s=TICK_S)
            async with running_worker(settings):

                async def another_worker_is_past_it() -> bool:
                    newest = await p.conn.fetchval("SELECT max(tick_value) FROM freshness_workers")
                    return newest is not None and newest > changed_at + timedelta(seconds=1)

                await wait_for(another_worker_is_past_it)
                fresh = await segment_fresh_as_of(p.conn, p.account_id, segment["id"])
                assert fresh is not None and fresh < changed_at
                assert contact not in await members(p.conn, segment["id"])

                held.send_signal(signal.SIGCONT)

                async def passed() -> bool:
                    fresh = await segment_fresh_as_of(p.conn, p.account_id, segment["id"])
                    if fresh is None or fresh < changed_at:
                        return False
                    assert contact in await members(p.conn, segment["id"])
                    return True

                await wait_for(passed, timeout=30, interval=0.02)
    finally:
        held.send_signal(signal.SIGCONT)
        held.terminate()
        await asyncio.wait_for(held.wait(), timeout=60)


async def _tick_value(conn: Any, producer_delay_s: float) -> datetime:
    tick = await next_tick(conn, producer_delay_s)
    assert tick is not None and tick.value is not None
    return tick.value


async def test_a_tick_stays_below_changes_not_yet_on_the_queue(private: Private) -> None:
    p = private
    writer = await connect(p.dsn)
    try:
        async with writer.transaction():
            await enqueue_contacts_changed(writer, p.account_id, [uuid.uuid4()])
            changed_at = datetime.fromisoformat(
                await writer.fetchval("SELECT body->>'changed_at' FROM outbox ORDER BY id DESC")
            )
            # Not committed: the tick cannot see the row, but sees a writer at work.
            assert await _tick_value(p.conn, 0) < changed_at
        # Committed, not sent yet.
        assert await _tick_value(p.conn, 0) < changed_at
        await p.conn.execute("UPDATE outbox SET sent_at = now()")
        assert await _tick_value(p.conn, 0) > changed_at
        # Producers are given their delay.
        assert await _tick_value(p.conn, 3600) < changed_at
    finally:
        await writer.close()


@dataclass
class FakeDelivery:
    """What the tracker reads of a delivery."""

    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    headers: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False


def _change(account_id: uuid.UUID, changed_at: datetime) -> ContactChanged:
    return ContactChanged(
        schema_version=1, account_id=account_id, contact_ids=[uuid.uuid4()], changed_at=changed_at
    )


def _value(tick: Tick) -> datetime:
    assert tick.value is not None
    return tick.value


async def _known(conn: Any, account_id: uuid.UUID | None = None) -> datetime:
    """The watermark, which must be known."""
    value = await watermark(conn, account_id)
    assert value is not None
    return value


async def _tick_at(conn: Any, seconds_from_now: float) -> Tick:
    now = await _clock(conn)
    at = now + timedelta(seconds=seconds_from_now)
    return Tick(at, at)


async def test_the_watermark_waits_for_held_retried_and_lost_changes(private: Private) -> None:
    p = private
    other_account = await p.conn.fetchval("INSERT INTO accounts (name) VALUES ('o') RETURNING id")
    tracker = FreshnessTracker(Settings())
    await tracker.register(p.conn)
    assert await watermark(p.conn) is None  # no tick read yet: nothing is vouched for
    tick = await _tick_at(p.conn, -10)
    tracker.passed(tick)
    await tracker.report(p.conn)
    assert await watermark(p.conn) == tick.value

    # A change read and not settled holds every account back, to just before it.
    delivery = FakeDelivery()
    change = _change(p.account_id, _value(tick) - timedelta(seconds=5))
    tracker.received(delivery, change)  # type: ignore[arg-type]
    tracker.passed(await _tick_at(p.conn, -1))
    await tracker.report(p.conn)
    assert await _known(p.conn, other_account) < change.changed_at

    # Settled but lost (the channel died): it is held, for its account only, until every
    # worker has read a tick published after that.
    tracker.settled(delivery, change, lost=True)  # type: ignore[arg-type]
    await tracker.report(p.conn)
    assert await _known(p.conn, p.account_id) < change.changed_at
    tracker.passed(await _tick_at(p.conn, 1))
    await tracker.report(p.conn)
    assert await _known(p.conn, p.account_id) > change.changed_at

    # A retried change is held until its delay has passed and a tick after that was read.
    retried = _change(p.account_id, await _clock(p.conn))
    async with asyncpg.create_pool(p.dsn, min_size=1, max_size=1) as pool:
        await tracker.hold_retry(pool, retried, 30)
    tracker.passed(await _tick_at(p.conn, 2))
    await tracker.report(p.conn)
    assert await _known(p.conn, p.account_id) < retried.changed_at
    assert await _known(p.conn, other_account) > retried.changed_at
    tracker.passed(await _tick_at(p.conn, 40))
    await tracker.report(p.conn)
    assert await _known(p.conn, p.account_id) > retried.changed_at


async def test_a_silent_worker_is_held_until_the_others_read_a_later_tick(
    private: Private,
) -> None:
    p = private
    silent, alive = FreshnessTracker(Settings()), FreshnessTracker(Settings())
    for tracker in (silent, alive):
        await tracker.register(p.conn)
    old, new = await _tick_at(p.conn, -20), await _tick_at(p.conn, -10)
    silent.passed(old)
    alive.passed(new)
    for tracker in (silent, alive):
        await tracker.report(p.conn)
    assert await watermark(p.conn) == old.value

    await p.conn.execute(
        "UPDATE freshness_workers SET seen_at = now() - interval '1 hour' WHERE worker_id = $1",
        silent.worker_id,
    )
    alive.passed(await _tick_at(p.conn, -5))  # published before the silent one was removed
    await alive.report(p.conn)  # removes it: its deliveries went back to the queue
    assert await p.conn.fetchval("SELECT count(*) FROM freshness_workers") == 1
    assert await watermark(p.conn) == old.value
    last = await _tick_at(p.conn, 1)
    alive.passed(last)
    await alive.report(p.conn)
    assert await watermark(p.conn) == last.value


async def test_a_segment_is_capped_by_queued_contacts_its_clock_and_what_it_reads(
    private: Private,
) -> None:
    p = private
    tracker = FreshnessTracker(Settings())
    await tracker.register(p.conn)
    tick = await _tick_at(p.conn, -1)
    tracker.passed(tick)
    await tracker.report(p.conn)
    read = await save_segment(p.conn, p.account_id, IN_DE)
    reader = await save_segment(p.conn, p.account_id, IN_DE)
    assert await segment_fresh_as_of(p.conn, p.account_id, read["id"]) is None  # not built
    await p.conn.execute(
        """UPDATE segments SET status = 'DONE', built_generation = generation, total_count = 0
           WHERE id = ANY($1::uuid[])""",
        [read["id"], reader["id"]],
    )
    await p.conn.execute(
        """INSERT INTO segment_references (account_id, segment_id, referenced_segment_id)
           VALUES ($1, $2, $3)""",
        p.account_id,
        reader["id"],
        read["id"],
    )
    assert await segment_fresh_as_of(p.conn, p.account_id, reader["id"]) == tick.value

    # Contacts queued for the read segment, for a change 30 s before the tick.
    queued_for = _value(tick) - timedelta(seconds=30)
    async with p.conn.transaction():
        await p.conn.execute(
            "SELECT set_config('segments.changed_before', $1, true)", str(queued_for)
        )
        await p.conn.execute(
            """INSERT INTO segment_pending_changes (segment_id, contact_id, account_id)
               VALUES ($1, $2, $3)""",
            read["id"],
            uuid.uuid4(),
            p.account_id,
        )
    for segment in (read, reader):
        assert await segment_fresh_as_of(p.conn, p.account_id, segment["id"]) == queued_for
    # The account's staleness gauge reads the same, computed for all segments at once.
    oldest, staleness = (await oldest_fresh_as_of(p.conn))[p.account_id]
    assert oldest == queued_for and staleness is not None and staleness > 30
    await p.conn.execute("DELETE FROM segment_pending_changes")

    # Time-relative rules: as fresh as the clock of the last build.
    clock = _value(tick) - timedelta(seconds=60)
    await p.conn.execute(
        "UPDATE segments SET time_relative = true, built_clock_at = $2 WHERE id = $1",
        read["id"],
        clock,
    )
    assert await segment_fresh_as_of(p.conn, p.account_id, reader["id"]) == clock
    # The staleness gauge leaves the clock out: refreshes trail by their interval by design.
    assert (await oldest_fresh_as_of(p.conn))[p.account_id][0] == tick.value
    # Another account's segment id is not found.
    assert await segment_fresh_as_of(p.conn, uuid.uuid4(), read["id"]) is None
    assert datetime.now(UTC) > clock
