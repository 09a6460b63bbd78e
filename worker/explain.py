"""`segments explain SEGMENT_ID`: the compiled SQL of a segment and PostgreSQL's plan for it."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from worker.compiler import compile_count
from worker.db import Conn
from worker.store import load_registry, load_segment_rules


async def explain_segment(conn: Conn, segment_id: str, analyze: bool) -> str:
    segment = await load_segment_rules(conn, UUID(segment_id))
    if segment is None:
        return f"no segment {segment_id}"
    registry = await load_registry(conn, segment.account_id)
    compiled = compile_count(segment.query(registry, datetime.now(UTC)))
    options = "ANALYZE, BUFFERS" if analyze else "COSTS"
    rows = await conn.fetch(f"EXPLAIN ({options}) {compiled.sql}", *compiled.params)
    plan = "\n".join(r[0] for r in rows)
    return f"-- params: {list(compiled.params)}\n{compiled.sql};\n\n{plan}"
