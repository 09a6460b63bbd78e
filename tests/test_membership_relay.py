"""membership.changed reaches a consumer at least once and, for one segment, in seq order,
with two relays running and one killed between a publish's confirm and marking it sent
(docs/changes.md, worker/relay.py): the consumer may see a run of seqs again, never a later
seq before an earlier one, and replaying what it got gives the segment's membership."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator

import aio_pika
import asyncpg

from tests.test_membership_changes import build, country
from tests.test_worker_scheduler import private_database  # noqa: F401  (a fixture)
from tests.waiting import wait_for
from tests.worker_support import members, publisher, save_segment, seed_contacts
from worker.changes import apply_changes
from worker.db import create_pool
from worker.messages import MEMBERSHIP_CHANGED, MembershipChanged
from worker.relay import OutboxRelay
from worker.settings import Settings


@contextlib.asynccontextmanager
async def membership_queue(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    async with publisher(amqp_url) as exchange:  # declares the exchange
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(exclusive=True)
            await queue.bind(exchange.name, MEMBERSHIP_CHANGED)
            yield queue
        finally:
            await connection.close()


async def drain(
    queue: aio_pika.abc.AbstractQueue, segment_id: uuid.UUID
) -> list[MembershipChanged]:
    got = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        body = MembershipChanged.model_validate_json(message.body)
        if body.segment_id == segment_id:
            got.append(body)
    return got


@contextlib.asynccontextmanager
async def relay(settings: Settings) -> AsyncIterator[None]:
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with OutboxRelay(pool, settings):
            yield
    finally:
        await pool.close()


async def change_back_and_forth(
    conn: asyncpg.Connection, account_id: uuid.UUID, ids: list[uuid.UUID], rounds: int
) -> None:
    """`rounds` transactions, each moving one contact in or out."""
    for i in range(rounds):
        contact_id = ids[i % len(ids)]
        await conn.execute(
            "UPDATE contacts SET country = CASE country WHEN 'nl' THEN 'de' ELSE 'nl' END"
            " WHERE id = $1",
            contact_id,
        )
        await apply_changes(conn, account_id, [contact_id], statement_timeout_ms=60_000)


def replay(received: list[MembershipChanged], after: int) -> tuple[set[uuid.UUID], int, int]:
    """Apply the messages in arrival order as a consumer would, from an empty membership at
    seq `after`: skip what was seen (by seq), fail on a gap. Returns (members, last seq,
    messages skipped)."""
    copy: set[uuid.UUID] = set()
    last, skipped = after, 0
    for message in received:
        if message.seq_last <= last:
            skipped += 1
            continue
        assert message.seq_first == last + 1, f"seq {message.seq_first} came after {last}"
        if message.initial:
            raise AssertionError("the initial message is not replayed here")
        copy |= set(message.entered)
        copy -= set(message.left)
        last = message.seq_last
    return copy, last, skipped


async def test_order_holds_with_two_relays_and_one_killed_after_a_confirm(
    private_database: tuple[asyncpg.Connection, str],  # noqa: F811
    amqp_url: str,
) -> None:
    conn, dsn = private_database
    account_id = await conn.fetchval("INSERT INTO accounts (name) VALUES ('relay') RETURNING id")
    ids = await seed_contacts(conn, account_id, [{"country": "de"}] * 5)
    segment = await save_segment(conn, account_id, country("nl"))
    other = await save_segment(conn, account_id, country("de"))
    await build(conn, segment)
    await build(conn, other)
    await conn.execute("UPDATE outbox SET sent_at = now() WHERE body->>'initial' = 'true'")
    await change_back_and_forth(conn, account_id, ids, rounds=30)

    async with membership_queue(amqp_url) as queue:
        # The first relay dies right after the broker confirmed its 7th row of a batch.
        dying = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.dying_relay", dsn, amqp_url, "7"
        )
        assert await asyncio.wait_for(dying.wait(), timeout=60) == -9
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL") == 2
        # Two relays take over while changes keep coming.
        settings = Settings(
            database_url=dsn, amqp_url=amqp_url, outbox_batch_size=4, outbox_poll_interval_s=0.1
        )
        async with relay(settings), relay(settings):
            await change_back_and_forth(conn, account_id, ids, rounds=20)

            async def all_sent() -> bool:
                return not await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")

            await wait_for(all_sent, timeout=60)
        last_seq = await conn.fetchval(
            "SELECT last_seq FROM segment_change_feeds WHERE segment_id = $1", segment["id"]
        )
        received: list[MembershipChanged] = []

        async def everything_arrived() -> bool:
            received.extend(await drain(queue, segment["id"]))
            return bool(received) and max(m.seq_last for m in received) == last_seq

        await wait_for(everything_arrived, timeout=30)
    copy, last, skipped = replay(received, after=1)  # seq 1: the initial item, no members
    assert last == last_seq == 51
    assert skipped >= 1, "the dead relay's confirmed rows were published again"
    assert copy == await members(conn, segment["id"])
