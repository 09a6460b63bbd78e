"""What the schema does by itself: members leave with their segment (a trigger, not a
foreign key: sql/006), and the planner has statistics on lower-cased text columns."""

from __future__ import annotations

import uuid

import asyncpg

from tests.worker_support import save_segment, seed_contacts

RULES = {"any": [{"all": [{"kind": "field", "field": "status", "operator": "equals",
                           "value": "subscribed"}]}]}  # fmt: skip


async def _segment_with_members(conn: asyncpg.Connection, account_id: uuid.UUID) -> uuid.UUID:
    contacts = await seed_contacts(conn, account_id, [{}, {}, {}])
    segment = await save_segment(conn, account_id, RULES)
    await conn.executemany(
        "INSERT INTO segment_members (segment_id, contact_id, account_id) VALUES ($1, $2, $3)",
        [(segment["id"], contact_id, account_id) for contact_id in contacts],
    )
    segment_id: uuid.UUID = segment["id"]
    return segment_id


async def _members(conn: asyncpg.Connection, segment_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM segment_members WHERE segment_id = $1", segment_id
    )
    return count


async def test_deleting_a_segment_deletes_its_members_only(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    gone = await _segment_with_members(conn, account_id)
    kept = await _segment_with_members(conn, account_id)
    await conn.execute("DELETE FROM segments WHERE id = $1", gone)
    assert await _members(conn, gone) == 0
    assert await _members(conn, kept) == 3


async def test_deleting_an_account_deletes_its_segments_members(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    segment_id = await _segment_with_members(conn, account_id)
    other = await conn.fetchval("INSERT INTO accounts (name) VALUES ('other') RETURNING id")
    others = await _segment_with_members(conn, other)
    await conn.execute("DELETE FROM accounts WHERE id = $1", account_id)
    assert await _members(conn, segment_id) == 0
    assert await _members(conn, others) == 3


async def test_lower_cased_text_columns_have_statistics(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "SELECT stxname FROM pg_statistic_ext WHERE stxrelid = 'contacts'::regclass"
    )
    names = {r["stxname"] for r in rows}
    assert {f"contacts_lower_{c}" for c in ("status", "country", "city", "language")} <= names
