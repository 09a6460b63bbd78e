"""Reading a segment's materialised members (`segment_members`) with their contact data: one
page with its total (v2), or all of them streamed as a JSON array (the simple API).

Members are joined to `contacts` on id and account: a contact deleted since the last build
is not shown (it leaves the segment at the next incremental update or build). Pages follow
the membership primary key (segment_id, contact_id), so deep pages of a large segment stay
index scans.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
from pydantic import TypeAdapter

from api_shim.models import Contact
from worker.db import Conn, fetch_count
from worker.exports.query import member_batches

# The contact columns of api_shim.models.Contact (a constant: no input reaches it).
CONTACT_SELECT = """c.id, c.email, c.name, c.first_name, c.last_name, c.company, c.status,
    c.country, c.city, c.language, c.tags, c.attributes, c.created_at, c.updated_at"""
_CONTACTS = TypeAdapter(list[Contact])

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
        f"""SELECT {CONTACT_SELECT}, m.added_at
            {_FROM}
            ORDER BY m.contact_id LIMIT $4 OFFSET $5""",
        segment_id,
        account_id,
        search,
        limit,
        offset,
    )
    return total, rows


async def contacts_json(
    conn: Conn, account_id: UUID, segment_id: UUID, *, limit: int | None, offset: int
) -> AsyncIterator[bytes]:
    """The members as Contact objects in JSON, comma-separated, one chunk per batch (for
    api_shim.streaming.json_array); the caller holds a transaction."""
    async for rows in member_batches(
        conn, account_id, segment_id, CONTACT_SELECT, limit=limit, offset=offset
    ):
        # One validation and one serialisation per batch, in pydantic's compiled core;
        # the list's brackets are dropped so batches join into one array.
        yield _CONTACTS.dump_json(_CONTACTS.validate_python([dict(r) for r in rows]))[1:-1]
