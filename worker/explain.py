"""`segments explain SEGMENT`: the compiled SQL of a segment and PostgreSQL's plan for it."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from worker.compiler import compile_count
from worker.db import Conn
from worker.store import load_registry, load_segment_rules

_FIND_UUID = (
    "the segment's uuid: the `id` the v2 API answers with "
    "(GET /api/v2/segments/?search=NAME lists them)"
)


class SegmentNotFound(LookupError):
    """What was given names no segment; the message says what to give instead."""


async def resolve_segment(conn: Conn, given: str, account_id: UUID | None) -> UUID:
    """The segment `given` names: its uuid, or its simple-API number within `account_id`."""
    try:
        segment_id = UUID(given)
    except ValueError:
        pass
    else:
        if account_id is not None and not await _belongs(conn, segment_id, account_id):
            raise SegmentNotFound(f"account {account_id} has no segment {segment_id}")
        return segment_id
    if not given.isdecimal():
        raise SegmentNotFound(f"{given!r} is not a segment: give {_FIND_UUID}")
    if account_id is None:
        raise SegmentNotFound(
            f"{given} looks like a simple-API segment number, which is only unique within an "
            f"account: add --account ACCOUNT_ID, or give {_FIND_UUID}"
        )
    found: UUID | None = await conn.fetchval(
        "SELECT id FROM segments WHERE account_id = $1 AND number = $2",
        account_id,
        int(given),
    )
    if found is None:
        raise SegmentNotFound(f"account {account_id} has no segment number {given}")
    return found


async def _belongs(conn: Conn, segment_id: UUID, account_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM segments WHERE id = $1 AND account_id = $2", segment_id, account_id
        )
    )


async def explain_segment(conn: Conn, segment_id: UUID, analyze: bool) -> str:
    segment = await load_segment_rules(conn, segment_id)
    if segment is None:
        raise SegmentNotFound(f"there is no segment {segment_id}: give {_FIND_UUID}")
    registry = await load_registry(conn, segment.account_id)
    compiled = compile_count(segment.query(registry, datetime.now(UTC)))
    options = "ANALYZE, BUFFERS" if analyze else "COSTS"
    rows = await conn.fetch(f"EXPLAIN ({options}) {compiled.sql}", *compiled.params)
    plan = "\n".join(r[0] for r in rows)
    return f"-- params: {list(compiled.params)}\n{compiled.sql};\n\n{plan}"
