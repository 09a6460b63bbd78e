"""The worker against the real RabbitMQ and PostgreSQL: builds, generations, duplicates,
contact changes, poison messages, permanent failures."""

from __future__ import annotations

import uuid
from typing import Any

import aio_pika
import asyncpg
from prometheus_client import REGISTRY

from tests.waiting import wait_for
from tests.worker_support import (
    dumps,
    expected_members,
    members,
    publish_changes,
    publish_raw,
    publish_segment,
    running_worker,
    save_segment,
    seed_contacts,
    segment_row,
    wait_status,
    worker_settings,
)
from worker.builds import CHECK_FROM_MEMBERS
from worker.locks import segment_lock_key
from worker.settings import Settings
from worker.settle import REASON_HEADER
from worker.topology import BUILD_QUEUE, CONTACT_CHANGES_QUEUE

SUBSCRIBED_IN_DE = {
    "any": [
        {
            "all": [
                {"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"},
                {"kind": "field", "field": "country", "operator": "equals", "value": "de"},
            ]
        }
    ]
}


async def _people(conn: Any, account_id: uuid.UUID) -> list[uuid.UUID]:
    return await seed_contacts(
        conn,
        account_id,
        [
            {"country": "DE"},
            {"country": "de"},
            {"country": "DE", "status": "unsubscribed"},
            {"country": "FR"},
            {"country": None},
        ],
    )


async def test_created_segment_builds_to_done_with_the_right_members(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, worker: None
) -> None:
    ids = await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    await publish_segment(exchange, "segment.created", segment)
    row = await wait_status(conn, segment["id"], "DONE")
    expected = await expected_members(conn, account_id, SUBSCRIBED_IN_DE)
    assert expected == {ids[0], ids[1]}
    assert await members(conn, segment["id"]) == expected
    assert row["total_count"] == 2
    assert row["built_generation"] == 1
    assert row["last_built_at"] is not None


async def test_duplicate_delivery_is_harmless(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, worker: None
) -> None:
    await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    for _ in range(3):
        await publish_segment(exchange, "segment.created", segment)
    row = await wait_status(conn, segment["id"], "DONE")
    first_built = row["last_built_at"]
    # A later duplicate of a built generation changes nothing at all.
    await publish_segment(exchange, "segment.created", segment)
    await publish_segment(exchange, "segment.refresh", segment)

    async def refreshed() -> bool:
        return (await segment_row(conn, segment["id"]))["last_built_at"] > first_built

    await wait_for(refreshed)
    after = await segment_row(conn, segment["id"])
    assert after["total_count"] == 2 == len(await members(conn, segment["id"]))
    assert after["status"] == "DONE"


async def test_only_the_newest_generation_writes(
    conn: asyncpg.Connection, pool: asyncpg.Pool, account_id: uuid.UUID, exchange: Any, worker: None
) -> None:
    ids = await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    in_france = {
        "any": [
            {"all": [{"kind": "field", "field": "country", "operator": "equals", "value": "FR"}]}
        ]
    }
    async with pool.acquire() as holder:
        # Hold the segment's build lock: the generation-1 build claims the segment and then
        # waits inside its transaction, as if its query were running.
        await holder.execute("SELECT pg_advisory_lock($1)", segment_lock_key(segment["id"]))
        await publish_segment(exchange, "segment.created", segment)
        await wait_status(conn, segment["id"], "RUNNING")
        # The rules change mid-build (what the API's PATCH does).
        generation = await conn.fetchval(
            """UPDATE segments SET rules = $2, generation = generation + 1, status = 'PENDING',
                   total_count = NULL WHERE id = $1 RETURNING generation""",
            segment["id"],
            in_france,
        )
        await publish_segment(exchange, "segment.updated", {**segment, "generation": generation})
        await holder.execute("SELECT pg_advisory_unlock($1)", segment_lock_key(segment["id"]))
    row = await wait_status(conn, segment["id"], "DONE")
    assert row["built_generation"] == 2
    assert await members(conn, segment["id"]) == {ids[3]}
    assert row["total_count"] == 1


async def test_contact_changes_move_contacts_in_and_out(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, worker: None
) -> None:
    ids = await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    await publish_segment(exchange, "segment.created", segment)
    await wait_status(conn, segment["id"], "DONE")

    await conn.execute("UPDATE contacts SET country = 'DE' WHERE id = $1", ids[3])  # joins
    await conn.execute("UPDATE contacts SET status = 'bounced' WHERE id = $1", ids[0])  # leaves
    await conn.execute("DELETE FROM contacts WHERE id = $1", ids[1])  # deleted: leaves
    await publish_changes(exchange, account_id, [ids[3], ids[0], ids[1]])

    async def moved() -> bool:
        return await members(conn, segment["id"]) == {ids[3]}

    await wait_for(moved)
    row = await segment_row(conn, segment["id"])
    assert row["status"] == "DONE"
    assert row["total_count"] == 1
    assert await expected_members(conn, account_id, SUBSCRIBED_IN_DE) == {ids[3]}


async def test_a_change_during_a_build_waits_for_it_without_holding_up_other_segments(
    conn: asyncpg.Connection, pool: asyncpg.Pool, account_id: uuid.UUID, exchange: Any, worker: None
) -> None:
    ids = await _people(conn, account_id)
    held = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    other = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    for segment in (held, other):
        await publish_segment(exchange, "segment.created", segment)
        await wait_status(conn, segment["id"], "DONE")
    key = segment_lock_key(held["id"])
    async with pool.acquire() as holder:
        # A rebuild of `held` is running (it holds the lock) when contact 3 moves to DE.
        await holder.execute("SELECT pg_advisory_lock($1)", key)
        await conn.execute("UPDATE contacts SET country = 'DE' WHERE id = $1", ids[3])
        await publish_changes(exchange, account_id, [ids[3]])

        async def other_updated() -> bool:
            return ids[3] in await members(conn, other["id"])

        async def queued_for_held() -> list[uuid.UUID]:
            rows = await conn.fetch(
                "SELECT contact_id FROM segment_pending_changes WHERE segment_id = $1",
                held["id"],
            )
            return [r["contact_id"] for r in rows]

        await wait_for(other_updated)  # not held up by the build
        # The batch's segments are split over several connections, so the queued change of
        # `held` may commit a moment after `other`'s update.
        assert await wait_for(queued_for_held) == [ids[3]]
        assert ids[3] not in await members(conn, held["id"])
        await holder.execute("SELECT pg_advisory_unlock($1)", key)

    async def held_updated() -> bool:
        return ids[3] in await members(conn, held["id"])

    await wait_for(held_updated)  # the sweep, once the build is done
    assert await conn.fetchval("SELECT count(*) FROM segment_pending_changes") == 0
    assert (await segment_row(conn, held["id"]))["total_count"] == 3
    assert await members(conn, held["id"]) == await expected_members(
        conn, account_id, SUBSCRIBED_IN_DE
    )


async def test_changes_for_another_account_touch_nothing(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, worker: None
) -> None:
    ids = await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    await publish_segment(exchange, "segment.created", segment)
    await wait_status(conn, segment["id"], "DONE")
    other = await conn.fetchval("INSERT INTO accounts (name) VALUES ('other') RETURNING id")
    other_segment = await save_segment(conn, other, SUBSCRIBED_IN_DE)
    await publish_segment(exchange, "segment.created", other_segment)
    await wait_status(conn, other_segment["id"], "DONE")
    # A producer names our contacts under the other account: they must not join its segment.
    await publish_changes(exchange, other, ids)
    await conn.execute("UPDATE contacts SET country = 'DE' WHERE id = $1", ids[3])  # joins
    await publish_changes(exchange, account_id, ids[3:4])

    async def applied() -> bool:
        # Our account's change was published last; once it is applied, so is the other's.
        return ids[3] in await members(conn, segment["id"])

    await wait_for(applied)
    assert (await segment_row(conn, other_segment["id"]))["total_count"] == 0
    assert await members(conn, other_segment["id"]) == set()
    assert await members(conn, segment["id"]) == {ids[0], ids[1], ids[3]}


async def _dead_letters(amqp_url: str, queue_name: str, count: int) -> list[Any]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        found: list[Any] = []

        async def collected() -> list[Any] | None:
            message = await queue.get(fail=False)
            if message is not None:
                await message.ack()
                found.append(message)
            return found if len(found) >= count else None

        return await wait_for(collected)
    finally:
        await connection.close()


async def test_poison_messages_are_dead_lettered_and_the_next_one_is_processed(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, worker: None, amqp_url: str
) -> None:
    await publish_raw(exchange, "segment.created", b"{not json")
    await publish_raw(exchange, "contact.changed", dumps({"schema": 1, "account_id": "nope"}))
    await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    await publish_segment(exchange, "segment.created", segment)
    await wait_status(conn, segment["id"], "DONE")
    build_dlq = await _dead_letters(amqp_url, BUILD_QUEUE.dead_letter_queue, 1)
    change_dlq = await _dead_letters(amqp_url, CONTACT_CHANGES_QUEUE.dead_letter_queue, 1)
    assert build_dlq[0].body == b"{not json"
    assert build_dlq[0].headers[REASON_HEADER] == "bad_message"
    assert change_dlq[0].headers[REASON_HEADER] == "bad_message"
    assert "account_id" in change_dlq[0].headers["x-segments-detail"]


async def test_rules_that_no_longer_fit_end_failed_with_a_reason(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, worker: None
) -> None:
    rules = {"any": [{"all": [{"kind": "field", "field": "score", "operator": "gt", "value": 1}]}]}
    segment = await save_segment(conn, account_id, rules)  # `score` was never declared
    await publish_segment(exchange, "segment.created", segment)
    row = await wait_status(conn, segment["id"], "FAILED")
    assert "unknown field 'score'" in row["error_reason"]
    assert row["total_count"] is None


async def test_messages_for_deleted_or_older_segments_are_acked_and_ignored(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, worker: None
) -> None:
    await _people(conn, account_id)
    gone = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    await conn.execute("DELETE FROM segments WHERE id = $1", gone["id"])
    await publish_segment(exchange, "segment.created", gone)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    await conn.execute("UPDATE segments SET generation = 2 WHERE id = $1", segment["id"])
    await publish_segment(exchange, "segment.created", segment)  # generation 1: stale
    await publish_segment(exchange, "segment.updated", {**segment, "generation": 2})
    row = await wait_status(conn, segment["id"], "DONE")
    assert row["built_generation"] == 2
    assert await conn.fetchval("SELECT count(*) FROM segments WHERE id = $1", gone["id"]) == 0


async def test_a_rebuild_that_finds_nothing_is_settled_by_its_check_and_counted(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, database_url: str, amqp_url: str
) -> None:
    # Checks from 0 members here (the default starts at 100,000): the worker passes its
    # setting to the build, and counts what the check found.
    def checks(result: str) -> float:
        value = REGISTRY.get_sample_value("segments_rebuild_checks_total", {"result": result})
        return value or 0.0

    assert Settings.model_fields["rebuild_check_from_members"].default == CHECK_FROM_MEMBERS
    ids = await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    settings = worker_settings(database_url, amqp_url, rebuild_check_from_members=0)
    async with running_worker(settings):
        await publish_segment(exchange, "segment.created", segment)
        built = await wait_status(conn, segment["id"], "DONE")
        before = checks("unchanged"), checks("changed")
        await publish_segment(exchange, "segment.rebuild", segment)

        async def rebuilt() -> dict[str, Any] | None:
            row = await segment_row(conn, segment["id"])
            return row if row["last_built_at"] > built["last_built_at"] else None

        row = await wait_for(rebuilt)
    assert row["status"] == "DONE" and row["total_count"] == 2
    assert await members(conn, segment["id"]) == {ids[0], ids[1]}
    assert (checks("unchanged"), checks("changed")) == (before[0] + 1, before[1])
