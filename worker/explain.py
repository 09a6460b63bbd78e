"""`segments explain SEGMENT`: the compiled SQL of a segment and PostgreSQL's plan for it."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from worker.compiler import compile_count
from worker.db import Conn
from worker.store import FIND_UUID, SegmentNotFound, load_registry, load_segment_rules


async def explain_segment(conn: Conn, segment_id: UUID, analyze: bool) -> str:
    segment = await load_segment_rules(conn, segment_id)
    if segment is None:
        raise SegmentNotFound(f"there is no segment {segment_id}: give {FIND_UUID}")
    registry = await load_registry(conn, segment.account_id)
    compiled = compile_count(segment.query(registry, datetime.now(UTC)))
    options = "ANALYZE, BUFFERS" if analyze else "COSTS"
    rows = await conn.fetch(f"EXPLAIN ({options}) {compiled.sql}", *compiled.params)
    plan = "\n".join(r[0] for r in rows)
    return f"-- params: {list(compiled.params)}\n{compiled.sql};\n\n{plan}"
