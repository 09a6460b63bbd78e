"""Large segments made in SQL for the bulk-read tests (builds are not under test there)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

ALL_SUBSCRIBED = [{"field": "status", "operator": "equals", "value": "subscribed"}]


async def insert_segment(
    conn: asyncpg.Connection,
    account_id: uuid.UUID,
    *,
    name: str = "made in SQL",
    status: str = "DONE",
    rules: Any = None,
    error: str | None = None,
) -> uuid.UUID:
    segment_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO segments (account_id, name, dialect, rules, status, error_reason)
           VALUES ($1, $2, 'simple', $3, $4, $5) RETURNING id""",
        account_id,
        name,
        rules if rules is not None else ALL_SUBSCRIBED,
        status,
        error,
    )
    return segment_id


async def fill_segment(
    conn: asyncpg.Connection, account_id: uuid.UUID, segment_id: uuid.UUID, count: int
) -> None:
    """`count` new contacts c1@bulk.example... of the account; every contact of the account
    becomes a member of the segment."""
    await conn.execute(
        """INSERT INTO contacts (account_id, email, status, tags)
           SELECT $1, 'c' || g || '@bulk.example', 'subscribed', ARRAY['t' || g % 3]
           FROM generate_series(1, $2::int) g""",
        account_id,
        count,
    )
    await conn.execute(
        """INSERT INTO segment_members (segment_id, contact_id, account_id)
           SELECT $1, id, account_id FROM contacts WHERE account_id = $2
           ON CONFLICT DO NOTHING""",
        segment_id,
        account_id,
    )
    await conn.execute("UPDATE segments SET total_count = $2 WHERE id = $1", segment_id, count)
