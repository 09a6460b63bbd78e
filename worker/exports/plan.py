"""One export from start to end: what to read (`plan_export`, checked before any byte is
sent) and the bytes to send (`export_chunks`), shared by the HTTP API and `segments export`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from uuid import UUID

from worker.db import Conn
from worker.exports.columns import Column, resolve_columns, select_list
from worker.exports.formats import Format, encoder
from worker.exports.query import BATCH_SIZE, FIRST_SELECT_PARAM, declared_fields, member_batches
from worker.store import SegmentNotFound


class SegmentNotReady(Exception):
    """Only a DONE segment has members to export (a first build has not finished, or the
    last one failed)."""

    def __init__(self, status: str) -> None:
        super().__init__(
            f"the segment is {status}: its members can be exported once its build is DONE"
            + ("; fix or rebuild it first" if status == "FAILED" else "; retry then")
        )
        self.status = status


@dataclass(frozen=True)
class ExportPlan:
    account_id: UUID
    segment_id: UUID
    format: Format
    columns: list[Column]


async def plan_export(
    conn: Conn,
    segment_id: UUID,
    fmt: Format,
    requested: Sequence[str] | None,
    *,
    account_id: UUID | None,
) -> ExportPlan:
    """Check everything that can fail before the first byte. `account_id` None (the command
    line, run by an operator) takes the segment's own account."""
    row = await conn.fetchrow(
        """SELECT account_id, status FROM segments
           WHERE id = $1 AND ($2::uuid IS NULL OR account_id = $2::uuid)""",
        segment_id,
        account_id,
    )
    if row is None:
        raise SegmentNotFound(f"segment {segment_id} not found")
    if row["status"] != "DONE":
        raise SegmentNotReady(row["status"])
    columns = resolve_columns(requested, await declared_fields(conn, row["account_id"]))
    return ExportPlan(row["account_id"], segment_id, fmt, columns)


async def export_chunks(
    conn: Conn, plan: ExportPlan, *, batch_size: int = BATCH_SIZE
) -> AsyncIterator[bytes]:
    """The export's bytes, one chunk per batch of members; the caller holds a transaction."""
    select, keys = select_list(plan.columns, FIRST_SELECT_PARAM)
    out = encoder(plan.format, plan.columns)
    header = out.header()
    if header:
        yield header
    async for rows in member_batches(
        conn, plan.account_id, plan.segment_id, select, keys, batch_size=batch_size
    ):
        yield out.rows(rows)
