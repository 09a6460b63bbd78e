"""Segment SQL of the API. Every statement is scoped to the caller's account: a segment id of
another account finds nothing, exactly like an id that does not exist (404)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import asyncpg

from worker.db import Conn, cursor_batches

COLUMNS = """id, number, account_id, name, color, description, dialect, rules, contact_list_ids,
    display_fields, status, total_count, generation, time_relative, error_reason, created_at,
    updated_at, last_built_at, timezone, local_calendar,
    segment_fresh_as_of(account_id, id) AS fresh_as_of"""

OrderBy = Literal["name", "total_count", "created_at", "updated_at"]
# The only expressions that reach ORDER BY. A count is shown only when DONE, so it sorts
# only then; segments without one go last in either direction.
_ORDER_EXPRESSIONS: dict[str, str] = {
    "name": "lower(name)",
    "total_count": "CASE WHEN status = 'DONE' THEN total_count END",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
# Matches names holding `search` literally, ignoring case ($2 null: no filter).
_SEARCH = "($2::text IS NULL OR strpos(lower(name), lower($2::text)) > 0)"


@dataclass(frozen=True)
class SegmentValues:
    """Everything a client can set on a segment."""

    name: str
    color: str | None
    description: str | None
    dialect: str
    rules: Any
    contact_list_ids: list[UUID]
    display_fields: list[dict[str, Any]]
    time_relative: bool
    # The IANA timezone of calendar periods, and whether the rules use them (then the
    # scheduler refreshes the segment after each local midnight). Only v2 rules do.
    timezone: str = "UTC"
    local_calendar: bool = False

    def params(self) -> tuple[Any, ...]:
        """The values in the order of the segments columns the statements below name."""
        return (
            self.name,
            self.color,
            self.description,
            self.dialect,
            self.rules,
            self.contact_list_ids,
            self.display_fields,
            self.time_relative,
            self.timezone,
            self.local_calendar,
        )


async def insert_segment(conn: Conn, account_id: UUID, v: SegmentValues) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""INSERT INTO segments (account_id, name, color, description, dialect, rules,
                                  contact_list_ids, display_fields, time_relative, timezone,
                                  local_calendar)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            RETURNING {COLUMNS}""",  # noqa: S608 (a constant column list)
        account_id,
        *v.params(),
    )
    assert row is not None
    return row


async def get_segment(
    conn: Conn, account_id: UUID, segment_id: UUID, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM segments WHERE id = $1 AND account_id = $2{lock}",  # noqa: S608
        segment_id,
        account_id,
    )


async def get_segment_by_number(conn: Conn, account_id: UUID, number: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM segments WHERE number = $1 AND account_id = $2",  # noqa: S608
        number,
        account_id,
    )


async def list_segments(
    conn: Conn,
    account_id: UUID,
    *,
    search: str | None = None,
    order_by: OrderBy = "updated_at",
    descending: bool = True,
    limit: int,
    offset: int,
) -> tuple[int, list[asyncpg.Record]]:
    """One page of the account's segments and how many there are in all."""
    total = await conn.fetchval(
        f"SELECT count(*) FROM segments WHERE account_id = $1 AND {_SEARCH}",  # noqa: S608
        account_id,
        search,
    )
    direction = "DESC" if descending else "ASC"
    order = f"{_ORDER_EXPRESSIONS[order_by]} {direction} NULLS LAST, id {direction}"
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM segments WHERE account_id = $1 AND {_SEARCH}
            ORDER BY {order} LIMIT $3 OFFSET $4""",  # noqa: S608 (whitelisted expressions)
        account_id,
        search,
        limit,
        offset,
    )
    return total, rows


async def list_by_number(
    conn: Conn, account_id: UUID, *, limit: int, offset: int, number: int | None = None
) -> tuple[int, list[asyncpg.Record]]:
    """Segments in creation order (v1 and simple APIs); `number` picks one."""
    where = "account_id = $1 AND ($2::bigint IS NULL OR number = $2::bigint)"
    total = await conn.fetchval(
        f"SELECT count(*) FROM segments WHERE {where}",  # noqa: S608 (a constant)
        account_id,
        number,
    )
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM segments WHERE {where}
            ORDER BY number LIMIT $3 OFFSET $4""",  # noqa: S608 (constants)
        account_id,
        number,
        limit,
        offset,
    )
    return total, rows


async def segments_in_number_order(
    conn: Conn, account_id: UUID, *, limit: int | None, offset: int, batch_size: int = 500
) -> AsyncIterator[list[asyncpg.Record]]:
    """All the account's segments (or `limit` of them) in creation order, through a cursor
    (the caller holds a transaction)."""
    sql = f"""SELECT {COLUMNS} FROM segments WHERE account_id = $1
              ORDER BY number LIMIT $2 OFFSET $3"""  # noqa: S608 (a constant column list)
    async for rows in cursor_batches(conn, sql, account_id, limit, offset, batch_size=batch_size):
        yield rows


async def save_segment(
    conn: Conn, account_id: UUID, segment_id: UUID, v: SegmentValues, *, rebuild: bool
) -> asyncpg.Record | None:
    """Write new values; `rebuild` bumps the generation and starts over at PENDING (the
    running build of the old generation will not write: worker/builds.py checks it)."""
    return await conn.fetchrow(
        f"""UPDATE segments SET
                name = $3, color = $4, description = $5, dialect = $6, rules = $7,
                contact_list_ids = $8, display_fields = $9, time_relative = $10,
                timezone = $11, local_calendar = $12,
                generation = generation + CASE WHEN $13::boolean THEN 1 ELSE 0 END,
                status = CASE WHEN $13::boolean THEN 'PENDING' ELSE status END,
                total_count = CASE WHEN $13::boolean THEN NULL ELSE total_count END,
                error_reason = CASE WHEN $13::boolean THEN NULL ELSE error_reason END,
                updated_at = now()
            WHERE id = $1 AND account_id = $2
            RETURNING {COLUMNS}""",  # noqa: S608 (a constant column list)
        segment_id,
        account_id,
        *v.params(),
        rebuild,
    )


async def mark_rebuild(conn: Conn, account_id: UUID, segment_id: UUID) -> asyncpg.Record | None:
    """A FAILED segment goes back to PENDING (its reason cleared); any other keeps its status
    (a DONE segment stays DONE while it is rebuilt in place)."""
    return await conn.fetchrow(
        f"""UPDATE segments SET
                status = CASE WHEN status = 'FAILED' THEN 'PENDING' ELSE status END,
                error_reason = CASE WHEN status = 'FAILED' THEN NULL ELSE error_reason END,
                updated_at = CASE WHEN status = 'FAILED' THEN now() ELSE updated_at END
            WHERE id = $1 AND account_id = $2
            RETURNING {COLUMNS}""",  # noqa: S608 (a constant column list)
        segment_id,
        account_id,
    )


async def delete_segment(conn: Conn, account_id: UUID, segment_id: UUID) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM segments WHERE id = $1 AND account_id = $2 RETURNING id",
        segment_id,
        account_id,
    )
    return deleted is not None
