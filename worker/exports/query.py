"""The members query behind every bulk read of a segment (the simple API's contacts, the v2
export, `segments export`), read through a server-side cursor.

Members are joined to `contacts` on id and account, so a contact deleted since the last build
is not shown, and follow the membership primary key (segment_id, contact_id): the cursor walks
that index and returns its first rows at once, with no sort, whatever the segment's size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

import asyncpg

from worker.db import Conn, cursor_batches

BATCH_SIZE = 2000
# $1 segment, $2 account, $3 limit (null: all), $4 offset; the SELECT list's own parameters
# (custom field keys) follow from $5.
FIRST_SELECT_PARAM = 5


async def member_batches(
    conn: Conn,
    account_id: UUID,
    segment_id: UUID,
    select: str,
    select_params: Sequence[Any] = (),
    *,
    limit: int | None = None,
    offset: int = 0,
    batch_size: int = BATCH_SIZE,
) -> AsyncIterator[list[asyncpg.Record]]:
    """The members' rows, `batch_size` at a time. `select` is built from whitelisted
    expressions only (worker/exports/columns.py, api_shim/members.py). A cursor lives inside
    a transaction: the caller holds one (read-only, repeatable read for one snapshot)."""
    sql = f"""SELECT {select}
            FROM segment_members m
            JOIN contacts c ON c.id = m.contact_id AND c.account_id = m.account_id
            WHERE m.segment_id = $1 AND m.account_id = $2
            ORDER BY m.contact_id
            LIMIT $3 OFFSET $4"""  # noqa: S608 (whitelisted expressions)
    batches = cursor_batches(
        conn, sql, segment_id, account_id, limit, offset, *select_params, batch_size=batch_size
    )
    async for rows in batches:
        yield rows


async def declared_fields(conn: Conn, account_id: UUID) -> list[str]:
    """The account's custom field keys, in key order."""
    rows = await conn.fetch(
        "SELECT key FROM contact_fields WHERE account_id = $1 ORDER BY key", account_id
    )
    return [r["key"] for r in rows]
