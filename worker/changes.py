"""contact.changed: re-evaluate just the changed contacts in every live segment of their
account, and change membership and total_count in place (a DONE segment stays DONE).

One transaction per batch. The account's live segments are locked with their advisory locks
(worker.builds) in one statement, in key order, so an incremental update and a full build of
one segment never interleave (the one that runs second sees what the first committed) and two
workers never deadlock. Then one statement re-evaluates the candidates in all of them and
writes every difference: the cost of a batch is one round trip, not one per segment (measured
in docs/benchmarks.md, "Worker").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import structlog

from worker.compiler import SegmentQuery, compile_matching_among_each
from worker.db import Conn
from worker.locks import segment_lock_key
from worker.rules import RulesInvalid
from worker.store import SegmentRules, load_registry

log = structlog.get_logger(__name__)

# PostgreSQL takes at most 32,767 bind parameters per statement; bigger sets of segments are
# split over several statements (same transaction).
MAX_PARAMS_PER_STATEMENT = 30_000

# {matched} is a UNION ALL of (segment id, contact id) over every segment's "which of these
# match"; {segments} and {candidates} are the placeholders of the segment and contact ids.
_APPLY = """
WITH matched (segment_id, contact_id) AS MATERIALIZED (
{matched}
), removed AS (
    DELETE FROM segment_members sm
    WHERE sm.segment_id = ANY({segments}) AND sm.contact_id = ANY({candidates})
      AND NOT EXISTS (SELECT 1 FROM matched m
                      WHERE m.segment_id = sm.segment_id AND m.contact_id = sm.contact_id)
    RETURNING sm.segment_id
), added AS (
    INSERT INTO segment_members (segment_id, contact_id, account_id)
    SELECT m.segment_id, m.contact_id, $1::uuid FROM matched m
    ON CONFLICT DO NOTHING
    RETURNING segment_id
), delta AS (
    SELECT segment_id, count(*) FILTER (WHERE is_added) AS added,
           count(*) FILTER (WHERE NOT is_added) AS removed
    FROM (SELECT segment_id, true AS is_added FROM added
          UNION ALL SELECT segment_id, false FROM removed) moved
    GROUP BY segment_id
)
UPDATE segments s
SET total_count = s.total_count + d.added - d.removed, updated_at = now()
FROM delta d
WHERE s.id = d.segment_id
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
    async with conn.transaction():
        await conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
        # RUNNING segments too: their build may have read the data before this change, so we
        # wait for its lock and then apply the change on top of what it wrote.
        live = await conn.fetch(
            """SELECT id FROM segments WHERE account_id = $1 AND status IN ('DONE', 'RUNNING')""",
            account_id,
        )
        if not live:
            return ChangeResult(0, 0, 0)
        keys = sorted(segment_lock_key(row["id"]) for row in live)
        await conn.execute(
            """SELECT pg_advisory_xact_lock(k)
               FROM unnest($1::bigint[]) WITH ORDINALITY AS t (k, i) ORDER BY i""",
            keys,
        )
        # Under the locks: only segments built for their current rules. One not built yet,
        # or whose rules changed since, gets a build that will see the data as it is.
        rows = await conn.fetch(
            """SELECT id, account_id, generation, dialect, rules, contact_list_ids
               FROM segments
               WHERE id = ANY($1::uuid[]) AND status = 'DONE' AND built_generation = generation
               ORDER BY id""",
            [row["id"] for row in live],
        )
        queries: list[tuple[UUID, SegmentQuery]] = []
        for row in rows:
            try:
                queries.append((row["id"], SegmentRules.from_row(row).query(registry, moment)))
            except RulesInvalid as exc:
                # The account's fields changed under the rules; the next build marks it FAILED.
                log.warning("changes.rules_invalid", segment_id=str(row["id"]), error=str(exc))
        added = removed = 0
        for chunk in _statements(queries, candidates):
            for row in await conn.fetch(chunk[0], *chunk[1]):
                added += row["added"]
                removed += row["removed"]
    return ChangeResult(len(queries), added, removed)


def _statements(
    queries: list[tuple[UUID, SegmentQuery]], candidates: list[UUID]
) -> list[tuple[str, tuple[object, ...]]]:
    """The apply statement(s) for these segments: one, unless the parameters overflow."""
    if not queries:
        return []
    compiled = compile_matching_among_each([q for _, q in queries], candidates)
    if len(compiled.params) + 1 > MAX_PARAMS_PER_STATEMENT and len(queries) > 1:
        half = len(queries) // 2
        return _statements(queries[:half], candidates) + _statements(queries[half:], candidates)
    segments = f"${len(compiled.params) + 1}::uuid[]"
    matched = "\nUNION ALL\n".join(
        # Only placeholders and the compiler's output: no value is ever in the text.
        f"SELECT ({segments})[{i}], q.id FROM (\n{select}\n) q"  # noqa: S608
        for i, select in enumerate(compiled.selects, start=1)
    )
    sql = _APPLY.format(matched=matched, segments=segments, candidates=compiled.candidates)
    return [(sql, (*compiled.params, [segment_id for segment_id, _ in queries]))]
