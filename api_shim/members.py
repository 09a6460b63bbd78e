"""Reading a segment's materialised members (`segment_members`) with their contact data.

Members are joined to `contacts` on id and account: a contact deleted since the last build
is not shown (it leaves the segment at the next incremental update or build). Pages follow
the membership primary key (segment_id, contact_id), so deep pages of a large segment stay
index scans.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from worker.db import Conn, fetch_count

_FROM = """FROM segment_members m
    JOIN contacts c ON c.id = m.contact_id AND c.account_id = m.account_id
    WHERE m.segment_id = $1 AND m.account_id = $2
      AND ($3::text IS NULL
           OR strpos(lower(c.email), lower($3::text)) > 0
           OR strpos(lower(coalesce(c.name, '')), lower($3::text)) > 0)"""


async def segment_members(
    conn: Conn,
    account_id: UUID,
    segment_id: UUID,
    *,
    search: str | None = None,
    limit: int,
    offset: int,
) -> tuple[int, list[asyncpg.Record]]:
    """One page of members (search: email or name holds it, ignoring case) and the total."""
    total = await fetch_count(
        conn,
        f"SELECT count(*) {_FROM}",
        segment_id,
        account_id,
        search,
    )
    rows = await conn.fetch(
        f"""SELECT c.id, c.email, c.name, c.first_name, c.last_name, c.company, c.status,
                   c.country, c.city, c.language, c.tags, c.attributes, c.created_at,
                   c.updated_at, m.added_at
            {_FROM}
            ORDER BY m.contact_id LIMIT $4 OFFSET $5""",
        segment_id,
        account_id,
        search,
        limit,
        offset,
    )
    return total, rows
