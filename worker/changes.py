"""contact.changed: re-evaluate just the changed contacts in every live segment of their
account, and change membership and total_count in place (a DONE segment stays DONE).

Each segment is updated under its advisory lock (worker.builds), so an incremental update and
a full build of one segment never interleave: the one that runs second sees what the first
committed. Segments are locked in id order, so two workers never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import structlog

from worker.compiler import compile_matching_among
from worker.db import Conn
from worker.locks import segment_lock_key
from worker.rules import FieldRegistry, RulesInvalid
from worker.store import SegmentRules, load_registry

log = structlog.get_logger(__name__)

# {among} is the compiled "which of these match" query; its $1 is the account id.
_APPLY = """
WITH matched AS MATERIALIZED (
{among}
), removed AS (
    DELETE FROM segment_members sm
    WHERE sm.segment_id = {segment} AND sm.contact_id = ANY({candidates})
      AND NOT EXISTS (SELECT 1 FROM matched m WHERE m.id = sm.contact_id)
    RETURNING 1
), added AS (
    INSERT INTO segment_members (segment_id, contact_id, account_id)
    SELECT {segment}, m.id, $1::uuid FROM matched m
    ON CONFLICT DO NOTHING
    RETURNING 1
), delta AS (
    SELECT (SELECT count(*) FROM added) AS added, (SELECT count(*) FROM removed) AS removed
)
UPDATE segments s
SET total_count = s.total_count + d.added - d.removed,
    last_built_at = now(),
    updated_at = CASE WHEN d.added + d.removed > 0 THEN now() ELSE s.updated_at END
FROM delta d
WHERE s.id = {segment}
RETURNING d.added, d.removed
"""


@dataclass(frozen=True)
class ChangeResult:
    segments: int  # live segments re-evaluated
    added: int
    removed: int


async def apply_changes(
    conn: Conn,
    account_id: UUID,
    contact_ids: Sequence[UUID],
    *,
    statement_timeout_ms: int,
    now: datetime | None = None,
) -> ChangeResult:
    """Re-evaluate `contact_ids` in every DONE segment of the account, in one transaction."""
    moment = now or datetime.now(UTC)
    registry = await load_registry(conn, account_id)
    candidates = sorted(set(contact_ids))
    added = removed = updated = 0
    async with conn.transaction():
        await conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        # RUNNING segments too: their build may have read the data before this change, so we
        # wait for its lock and then apply the change on top of what it wrote.
        segment_ids = await conn.fetch(
            """SELECT id FROM segments WHERE account_id = $1 AND status IN ('DONE', 'RUNNING')
               ORDER BY id""",
            account_id,
        )
        for row in segment_ids:
            delta = await _update_segment(conn, row["id"], candidates, registry, moment)
            if delta is not None:
                updated += 1
                added += delta[0]
                removed += delta[1]
    return ChangeResult(updated, added, removed)


async def _update_segment(
    conn: Conn,
    segment_id: UUID,
    candidates: list[UUID],
    registry: FieldRegistry,
    now: datetime,
) -> tuple[int, int] | None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", segment_lock_key(segment_id))
    row = await conn.fetchrow(
        """SELECT id, account_id, generation, dialect, rules, contact_list_ids
           FROM segments
           WHERE id = $1 AND status = 'DONE' AND built_generation = generation""",
        segment_id,
    )
    if row is None:
        return None  # not built yet, or rules changed since: the coming build sees the data
    segment = SegmentRules.from_row(row)
    try:
        query = segment.query(registry, now)
    except RulesInvalid as exc:
        # The account's fields changed under the rules; the next build marks it FAILED.
        log.warning("changes.rules_invalid", segment_id=str(segment_id), error=str(exc))
        return None
    compiled = compile_matching_among(query, candidates)
    n = len(compiled.params)
    sql = _APPLY.format(
        among=compiled.sql, segment=f"${n + 1}::uuid", candidates=f"${n + 2}::uuid[]"
    )
    result = await conn.fetchrow(sql, *compiled.params, segment_id, candidates)
    assert result is not None
    return result["added"], result["removed"]
