"""Membership changes recorded with the change (docs/changes.md): builds, incremental updates
and propagation each record, in their own transaction, one feed item per contact moved with
contiguous seqs, membership.changed outbox rows of at most 1,000 ids in seq order, and the
minute's history point; a first build records one initial item; a no-op records nothing."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from tests.worker_support import members, save_segment, seed_contacts, segment_message
from worker.builds import build_segment
from worker.changes import apply_changes, apply_pending
from worker.membership_feed import CursorExpired, purge_expired, read_changes
from worker.messages import MembershipChanged, decode
from worker.references import save_references

RETENTION = timedelta(days=7)


def country(value: str) -> dict[str, Any]:
    return {
        "any": [
            {"all": [{"kind": "field", "field": "country", "operator": "equals", "value": value}]}
        ]
    }


def in_segment(segment_id: uuid.UUID) -> dict[str, Any]:
    condition = {"kind": "segment", "operator": "in", "segment_ids": [str(segment_id)]}
    return {"any": [{"all": [condition]}]}


async def build(
    conn: asyncpg.Connection, segment: dict[str, Any], trigger: str = "created", **kw: Any
) -> Any:
    message = segment_message(segment)
    return await build_segment(conn, message, trigger, statement_timeout_ms=60_000, **kw)


async def feed(conn: asyncpg.Connection, segment: dict[str, Any]) -> list[asyncpg.Record]:
    """Every item of the segment's feed, as the API reads them."""
    page = await read_changes(
        conn, segment["account_id"], segment["id"], after=0, limit=1000, retention=RETENTION
    )
    return page.items


async def messages(conn: asyncpg.Connection, segment_id: uuid.UUID) -> list[MembershipChanged]:
    rows = await conn.fetch(
        """SELECT body FROM outbox
           WHERE routing_key = 'membership.changed' AND body->>'segment_id' = $1 ORDER BY id""",
        str(segment_id),
    )
    # Strictly, as a consumer's decoder would read them off the wire.
    return [decode(MembershipChanged, json.dumps(r["body"]).encode()) for r in rows]


async def history(conn: asyncpg.Connection, segment_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT * FROM segment_count_history WHERE segment_id = $1 ORDER BY minute",
            segment_id,
        )
    )


async def set_country(conn: asyncpg.Connection, contact_ids: list[uuid.UUID], value: str) -> None:
    await conn.execute("UPDATE contacts SET country = $2 WHERE id = ANY($1)", contact_ids, value)


async def test_first_build_records_one_initial_item_and_an_idle_rebuild_nothing(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    ids = await seed_contacts(conn, account_id, [{"country": "nl"}] * 3 + [{"country": "de"}])
    segment = await save_segment(conn, account_id, country("nl"))
    await build(conn, segment)
    [initial] = await feed(conn, segment)
    assert (initial["seq"], initial["change"], initial["total_count"]) == (1, "initial", 3)
    assert initial["contact_id"] is None and initial["generation"] == 1
    [message] = await messages(conn, segment["id"])
    assert message.initial and message.total_count == 3 and message.seq_first == 1
    [point] = await history(conn, segment["id"])
    assert (point["total_count"], point["entered"], point["left_count"]) == (3, 3, 0)

    assert (await build(conn, segment, "rebuild")).outcome == "done"
    assert await apply_changes(conn, account_id, ids, statement_timeout_ms=60_000)
    assert len(await feed(conn, segment)) == 1
    assert len(await messages(conn, segment["id"])) == 1


async def test_data_changes_record_entered_and_left_with_contiguous_seqs(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    ids = await seed_contacts(conn, account_id, [{"country": "nl"}] * 2 + [{"country": "de"}] * 2)
    segment = await save_segment(conn, account_id, country("nl"))
    await build(conn, segment)
    await set_country(conn, [ids[0]], "de")
    await set_country(conn, ids[2:], "nl")
    await apply_changes(conn, account_id, ids, statement_timeout_ms=60_000)

    items = await feed(conn, segment)
    assert [i["seq"] for i in items] == [1, 2, 3, 4]
    moved = {(i["change"], i["contact_id"]) for i in items[1:]}
    assert moved == {("left", ids[0]), ("entered", ids[2]), ("entered", ids[3])}
    assert {i["cause"] for i in items[1:]} == {"data"}
    assert len({i["at"] for i in items[1:]}) == 1  # one instant per transaction
    [_, message] = await messages(conn, segment["id"])
    assert (message.seq_first, message.seq_last, message.cause) == (2, 4, "data")
    assert set(message.entered) == {ids[2], ids[3]} and message.left == [ids[0]]
    assert (await history(conn, segment["id"]))[-1]["total_count"] == 3


async def test_rules_change_and_refresh_record_their_cause_and_generation(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    ids = await seed_contacts(conn, account_id, [{"country": "nl"}, {"country": "de"}])
    segment = await save_segment(conn, account_id, country("nl"))
    await build(conn, segment)
    segment["generation"] = await conn.fetchval(
        """UPDATE segments SET rules = $2, generation = generation + 1, status = 'PENDING'
           WHERE id = $1 RETURNING generation""",
        segment["id"],
        country("de"),
    )
    await build(conn, segment, "updated")
    await set_country(conn, [ids[0]], "de")
    await build(conn, segment, "refresh")
    items = await feed(conn, segment)
    assert [(i["seq"], i["change"], i["cause"], i["generation"]) for i in items[1:]] == [
        (2, "entered", "rules", 2),
        (3, "left", "rules", 2),
        (4, "entered", "refresh", 2),
    ]
    assert [i["contact_id"] for i in items[1:]] == [ids[1], ids[0], ids[0]]


async def test_a_build_for_an_older_generation_records_nothing(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    await seed_contacts(conn, account_id, [{"country": "nl"}])
    segment = await save_segment(conn, account_id, country("nl"))
    await conn.execute("UPDATE segments SET generation = 2 WHERE id = $1", segment["id"])
    assert (await build(conn, segment)).outcome == "stale"
    assert await feed(conn, segment) == []
    assert await messages(conn, segment["id"]) == []


async def test_large_changes_are_split_into_messages_of_at_most_1000_ids_in_seq_order(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    await conn.execute(
        """INSERT INTO contacts (account_id, email, status, country)
           SELECT $1, 'bulk' || i || '@example.com', 'subscribed', 'de'
           FROM generate_series(1, 2500) i""",
        account_id,
    )
    segment = await save_segment(conn, account_id, country("nl"))
    await build(conn, segment)
    await conn.execute("UPDATE contacts SET country = 'nl' WHERE account_id = $1", account_id)
    result = await build(conn, segment, "refresh")
    assert result.added == 2500
    sent = await messages(conn, segment["id"])
    assert [(m.seq_first, m.seq_last) for m in sent[1:]] == [(2, 1001), (1002, 2001), (2002, 2501)]
    assert sum(len(m.entered) for m in sent) == 2500
    assert set().union(*(m.entered for m in sent)) == await members(conn, segment["id"])


async def test_changes_that_flow_on_to_referring_segments_are_recorded_as_cascade(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    ids = await seed_contacts(conn, account_id, [{"country": "nl"}, {"country": "de"}])
    base = await save_segment(conn, account_id, country("nl"))
    top = await save_segment(conn, account_id, in_segment(base["id"]))
    await save_references(conn, account_id, top["id"], {base["id"]})
    await build(conn, base)
    await build(conn, top)
    await set_country(conn, [ids[1]], "nl")
    await apply_changes(conn, account_id, [ids[1]], statement_timeout_ms=60_000)
    await apply_pending(conn, statement_timeout_ms=60_000)
    [_, item] = await feed(conn, top)
    assert (item["change"], item["contact_id"], item["cause"]) == ("entered", ids[1], "cascade")
    assert (await feed(conn, base))[1]["cause"] == "data"


async def test_without_recording_nothing_is_recorded(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    ids = await seed_contacts(conn, account_id, [{"country": "nl"}])
    segment = await save_segment(conn, account_id, country("nl"))
    await build(conn, segment, record=False)
    await set_country(conn, ids, "de")
    await apply_changes(conn, account_id, ids, statement_timeout_ms=60_000, record=False)
    assert await members(conn, segment["id"]) == set()
    assert await feed(conn, segment) == []
    assert await history(conn, segment["id"]) == []


async def test_the_feed_reads_after_a_cursor_and_refuses_one_past_retention(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    ids = await seed_contacts(conn, account_id, [{"country": "de"}] * 3)
    segment = await save_segment(conn, account_id, country("nl"))
    await build(conn, segment)
    for contact_id in ids:
        await set_country(conn, [contact_id], "nl")
        await apply_changes(conn, account_id, [contact_id], statement_timeout_ms=60_000)

    async def read(after: int, limit: int = 2) -> tuple[list[int], int]:
        page = await read_changes(
            conn, account_id, segment["id"], after=after, limit=limit, retention=RETENTION
        )
        return [i["seq"] for i in page.items], page.next_after

    assert await read(0) == ([1, 2], 2)
    assert await read(2) == ([3, 4], 4)
    assert await read(4) == ([], 4)
    # Items 1 and 2 age past the retention: a cursor before them has missed changes.
    await conn.execute(
        """UPDATE segment_membership_changes SET at = at - interval '8 days'
           WHERE segment_id = $1 AND seq_last <= 2""",
        segment["id"],
    )
    with pytest.raises(CursorExpired) as expired:
        await read(0)
    assert expired.value.oldest_seq == 3
    assert await read(2) == ([3, 4], 4)
    assert await purge_expired(conn, retention=RETENTION) >= 2
    rows = await conn.fetch(
        "SELECT seq_last FROM segment_membership_changes WHERE segment_id = $1", segment["id"]
    )
    assert sorted(r[0] for r in rows) == [3, 4]
    # Everything aged out: the next seq to come is the oldest the feed can give.
    await conn.execute(
        "UPDATE segment_membership_changes SET at = at - interval '8 days' WHERE segment_id = $1",
        segment["id"],
    )
    with pytest.raises(CursorExpired) as expired:
        await read(3)
    assert expired.value.oldest_seq == 5
    assert await read(4) == ([], 4)


async def test_deleting_a_segment_deletes_its_feed_and_history(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    await seed_contacts(conn, account_id, [{"country": "nl"}])
    segment = await save_segment(conn, account_id, country("nl"))
    await build(conn, segment)
    await conn.execute("DELETE FROM segments WHERE id = $1", segment["id"])
    for table in ("segment_change_feeds", "segment_membership_changes"):
        assert not await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE segment_id = $1",
            segment["id"],
        )
    assert await history(conn, segment["id"]) == []
