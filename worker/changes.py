"""contact.changed: re-evaluate just the changed contacts in every live segment of their
account, and change membership and total_count in place (a DONE segment stays DONE).

One transaction per batch. The segments are locked with their advisory locks (worker.builds),
so an incremental update and a full build of one segment never interleave: the one that runs
second sees what the first committed. A segment a build holds is not waited for: its
contacts are queued (segment_pending_changes) and re-evaluated by a sweep once the build is
done, on the data as it is then. Then one statement re-evaluates the candidates in all locked
segments and writes every difference: the cost of a batch is one round trip, not one per
segment (measured in docs/benchmarks.md, "Worker").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import structlog

from worker.compiler import SegmentQuery, compile_matching_among_each
from worker.compiler.sources import CHANGED_CONTACTS
from worker.db import Conn
from worker.freshness import CHANGED_BEFORE_SETTING
from worker.locks import segment_lock_key
from worker.membership_log import record_ctes
from worker.messages import Cause
from worker.outbox import notify_relay
from worker.parsed_rules import PARSED_RULES
from worker.propagation import PROPAGATE_CTE
from worker.rules import FieldRegistry, RulesInvalid
from worker.store import SegmentRules, load_registry

log = structlog.get_logger(__name__)

# PostgreSQL takes at most 32,767 bind parameters per statement; bigger sets of segments are
# split over several statements (same transaction).
MAX_PARAMS_PER_STATEMENT = 30_000

# {matched} is the (segment id, contact id) pairs of every segment's "which of these match";
# {segments} and {candidates} are the placeholders of the segment and contact ids.
# `current` is the candidates' membership now, read candidate by candidate through the
# contact index: one scan of both id arrays let the planner combine both indexes and read
# millions of the segments' entries (0.6 to 0.8 s of a 0.9 s statement with 71 of 1,000
# segments; docs/benchmarks.md, "Where a real change batch's time went"). Each lookup is
# bounded by the statement's lowest and highest segment id: an index-only scan checks the
# visibility of every entry it reads before the segment filter, an entry on a page changed
# since the last vacuum costs a heap visit, and a contact has entries in hundreds of
# segments. A batch split over `change_parallelism` connections gives each a run of
# consecutive ids (worker.dependencies), so each reads its share of a contact's entries
# instead of all of them (docs/benchmarks.md, "The visibility map and the membership
# lookup"). The differences both ways are then written, and nothing else is touched but the
# queue of the segments that reference these ({propagated}: worker.propagation) and, when
# recording, the record of what moved ({record}: worker.membership_log). The differences are
# one full join of the matches and the current members (each pair hashed once; two EXCEPTs
# hashed both sides twice: docs/benchmarks.md, "Event times read once per candidate").
_APPLY = """
WITH {with_clause},
matched (segment_id, contact_id) AS MATERIALIZED (
{matched}
), current AS MATERIALIZED (
    SELECT sm.segment_id, sm.contact_id
    FROM unnest({candidates}) AS candidate (id)
    CROSS JOIN LATERAL (
        SELECT sm.segment_id, sm.contact_id FROM segment_members sm
        WHERE sm.account_id = $1::uuid AND sm.contact_id = candidate.id
          AND sm.segment_id BETWEEN {lowest} AND {highest}
          AND sm.segment_id = ANY({segments})
        OFFSET 0) sm
), moves AS MATERIALIZED (
    SELECT coalesce(m.segment_id, cur.segment_id) AS segment_id,
           coalesce(m.contact_id, cur.contact_id) AS contact_id,
           cur.segment_id IS NULL AS joins
    FROM matched m FULL JOIN current cur
        ON cur.segment_id = m.segment_id AND cur.contact_id = m.contact_id
    WHERE m.segment_id IS NULL OR cur.segment_id IS NULL
), removed AS (
    DELETE FROM segment_members sm
    USING moves gone
    WHERE NOT gone.joins AND sm.account_id = $1::uuid
      AND sm.segment_id = gone.segment_id AND sm.contact_id = gone.contact_id
    RETURNING sm.segment_id, sm.contact_id
), added AS (
    INSERT INTO segment_members (segment_id, contact_id, account_id)
    SELECT segment_id, contact_id, $1::uuid FROM moves WHERE joins
    ON CONFLICT DO NOTHING
    RETURNING segment_id, contact_id
), {propagated}, delta AS (
    SELECT segment_id, count(*) FILTER (WHERE is_added) AS added,
           count(*) FILTER (WHERE NOT is_added) AS removed
    FROM (SELECT segment_id, true AS is_added FROM added
          UNION ALL SELECT segment_id, false FROM removed) moved
    GROUP BY segment_id
), counted AS (
    UPDATE segments s
    SET total_count = s.total_count + d.added - d.removed, updated_at = now()
    FROM delta d
    WHERE s.account_id = $1::uuid AND s.id = d.segment_id
    RETURNING s.id AS segment_id, s.generation, s.total_count, d.added, d.removed
){record}
SELECT added, removed FROM counted
"""


# The segments with queued contacts, in reference order: a segment after every segment with
# queued contacts that it references, directly or through others (`depth`: the longest chain
# of references from a queued segment to it, at most 5 by validation). Then a sweep updates a
# referenced segment before the segments reading it, which pick up what it moved in the same
# sweep (worker/propagation.py).
# One account at a time ($1), so that the statement stays on the account's shard when the data
# is distributed (docs/scaling.md); _ACCOUNTS_QUEUED says which accounts have any.
_ACCOUNTS_QUEUED = "SELECT DISTINCT account_id FROM segment_pending_changes LIMIT $1"
_PENDING_IN_REFERENCE_ORDER = """
WITH RECURSIVE queued AS (
    SELECT DISTINCT segment_id FROM segment_pending_changes WHERE account_id = $1
), chain (segment_id, depth) AS (
    SELECT segment_id, 0 FROM queued
    UNION ALL
    SELECT r.segment_id, chain.depth + 1
    FROM chain JOIN segment_references r
        ON r.account_id = $1 AND r.referenced_segment_id = chain.segment_id
    WHERE chain.depth < 5
)
SELECT q.segment_id
FROM queued q
JOIN (SELECT segment_id, max(depth) AS depth FROM chain GROUP BY segment_id) c USING (segment_id)
ORDER BY c.depth, q.segment_id
LIMIT $2
"""


# Queued contacts re-evaluated per transaction by the sweep (apply_pending).
PENDING_CHUNK = 10_000
_TAKE_QUEUED = """
DELETE FROM segment_pending_changes
WHERE account_id = $4 AND segment_id = $1 AND contact_id IN (
    SELECT contact_id FROM segment_pending_changes
    WHERE account_id = $4 AND segment_id = $1 AND cause = $3
    ORDER BY contact_id LIMIT $2)
RETURNING contact_id, held_before
"""
# Why contacts were queued (sql/011), the cause recorded for what their re-evaluation moves.
QUEUE_CAUSES: tuple[Cause, ...] = ("data", "cascade")


@dataclass(frozen=True)
class ChangeResult:
    segments: int  # segments re-evaluated
    added: int
    removed: int
    deferred: int = 0  # segments a build held: their contacts wait in segment_pending_changes

    def __add__(self, other: ChangeResult) -> ChangeResult:
        return ChangeResult(
            self.segments + other.segments,
            self.added + other.added,
            self.removed + other.removed,
            self.deferred + other.deferred,
        )


NOTHING = ChangeResult(0, 0, 0)


async def live_segment_ids(conn: Conn, account_id: UUID) -> list[UUID]:
    """The account's segments a change may move, in lock order. RUNNING ones too: their
    build may have read the data before the change (they get it once the build is done)."""
    rows = await conn.fetch(
        "SELECT id FROM segments WHERE account_id = $1 AND status IN ('DONE', 'RUNNING')",
        account_id,
    )
    return sorted((row["id"] for row in rows), key=segment_lock_key)


async def apply_changes(
    conn: Conn,
    account_id: UUID,
    contact_ids: Sequence[UUID],
    *,
    statement_timeout_ms: int,
    now: datetime | None = None,
    segment_ids: Sequence[UUID] | None = None,
    plan_cache_mode: str = "auto",
    record: bool = True,
) -> ChangeResult:
    """Re-evaluate `contact_ids` in the account's built segments (all of its live segments,
    or those of `segment_ids`), in one transaction. A segment whose lock a build holds is not
    waited for (a build of a large segment takes minutes): its contacts are queued in
    segment_pending_changes, for apply_pending once the build is done. `plan_cache_mode`:
    the statement's (the change_plan_cache_mode setting)."""
    moment = now or datetime.now(UTC)
    registry = await load_registry(conn, account_id)
    candidates = sorted(set(contact_ids))
    async with conn.transaction():
        await limit_change_statement(conn, statement_timeout_ms, plan_cache_mode)
        if segment_ids is None:
            segment_ids = await live_segment_ids(conn, account_id)
        locked, busy = await _try_lock(conn, segment_ids)
        if busy:
            await conn.execute(
                """INSERT INTO segment_pending_changes (segment_id, contact_id, account_id)
                   SELECT s, c, $3 FROM unnest($1::uuid[]) s, unnest($2::uuid[]) c
                   ON CONFLICT (segment_id, contact_id) DO UPDATE
                   SET held_before = least(segment_pending_changes.held_before,
                                           EXCLUDED.held_before)""",
                busy,
                candidates,
                account_id,
            )
        cause: Cause | None = "data" if record else None
        result = await _apply_locked(conn, account_id, locked, candidates, registry, moment, cause)
    return result + ChangeResult(0, 0, 0, deferred=len(busy))


async def apply_pending(
    conn: Conn,
    *,
    statement_timeout_ms: int,
    limit: int = 100,
    now: datetime | None = None,
    record: bool = True,
) -> ChangeResult:
    """Apply the queued changes of segments no build holds any more, one transaction each;
    `deferred` counts the segments still held (their turn comes at a later sweep)."""
    total = NOTHING
    for account in await conn.fetch(_ACCOUNTS_QUEUED, limit):
        account_id = account["account_id"]
        sweep = _AccountSweep(
            conn,
            account_id,
            await load_registry(conn, account_id),
            statement_timeout_ms,
            now,
            record,
        )
        for row in await conn.fetch(_PENDING_IN_REFERENCE_ORDER, account_id, limit):
            total += await sweep.apply(row["segment_id"])
    return total


@dataclass(frozen=True)
class _AccountSweep:
    """apply_pending for one account's segments, one at a time."""

    conn: Conn
    account_id: UUID
    registry: FieldRegistry
    statement_timeout_ms: int
    now: datetime | None
    record: bool

    async def apply(self, segment_id: UUID) -> ChangeResult:
        """The segment's queued contacts, cause by cause, until a build holds it."""
        total = NOTHING
        for cause in QUEUE_CAUSES:
            applied = await self._apply_queued(segment_id, cause)
            total += applied
            if applied.deferred:
                break  # a build holds it: the other cause waits too
        return total

    async def _apply_queued(self, segment_id: UUID, queued_as: Cause) -> ChangeResult:
        """One segment's contacts queued as `queued_as` (recorded as that cause, when
        recording), PENDING_CHUNK per transaction: a referenced segment's first build can
        queue all of its members for the segments referencing it, and one statement over
        millions of candidates would not fit the statement timeout."""
        conn, account_id = self.conn, self.account_id
        total = NOTHING
        while True:
            async with conn.transaction():
                await limit_change_statement(conn, self.statement_timeout_ms)
                locked, _ = await _try_lock(conn, [segment_id])
                if not locked:
                    return total + ChangeResult(0, 0, 0, deferred=1)
                # Under the lock, and on the data as it is now: what the build read is behind.
                queued = await conn.fetch(
                    _TAKE_QUEUED, segment_id, PENDING_CHUNK, queued_as, account_id
                )
                contact_ids = sorted(r["contact_id"] for r in queued)
                if queued:
                    # What this moves is queued for the segments reading this one, stamped
                    # with the time of the changes it stands for (worker.freshness).
                    await conn.execute(
                        "SELECT set_config($1, $2::timestamptz::text, true)",
                        CHANGED_BEFORE_SETTING,
                        min(r["held_before"] for r in queued),
                    )
                moment = self.now or datetime.now(UTC)
                record = queued_as if self.record else None
                applied = await _apply_locked(
                    conn, account_id, locked, contact_ids, self.registry, moment, record
                )
            # A segment counts once however many chunks it took.
            total = ChangeResult(
                max(total.segments, applied.segments),
                total.added + applied.added,
                total.removed + applied.removed,
            )
            if len(queued) < PENDING_CHUNK:
                return total


_PLAN_CACHE_MODES = ("auto", "force_custom_plan", "force_generic_plan")


async def limit_change_statement(
    conn: Conn, statement_timeout_ms: int, plan_cache_mode: str = "force_custom_plan"
) -> None:
    """The settings of the change statement, for this transaction, in one round trip."""
    # The statement's text is the same for every batch of the same segments (the candidates
    # are one array parameter), and asyncpg keeps it prepared per connection: with `auto`,
    # PostgreSQL plans it five times, then keeps one plan when that is estimated as good
    # (docs/benchmarks.md, "Incremental statement"). Connections force custom plans
    # otherwise (worker.db).
    if plan_cache_mode not in _PLAN_CACHE_MODES:
        raise ValueError(f"plan_cache_mode must be one of {_PLAN_CACHE_MODES}")
    await conn.execute(
        """SELECT set_config('statement_timeout', $1, true),
                  set_config('plan_cache_mode', $2, true),
                  -- The statement sums the cost estimates of many small lookups, which
                  -- crosses jit_above_cost: JIT then spends most of the statement's time
                  -- compiling what runs in milliseconds (docs/benchmarks.md, "Worker").
                  set_config('jit', 'off', true),
                  -- The planner cannot size the matches and current members (CTEs) and
                  -- would sort both for a merge join: hashing them is 11% to 21% of the
                  -- statement less (docs/benchmarks.md, "One pass over the candidates").
                  set_config('enable_mergejoin', 'off', true)""",
        str(int(statement_timeout_ms)),
        plan_cache_mode,
    )


async def _try_lock(conn: Conn, segment_ids: Sequence[UUID]) -> tuple[list[UUID], list[UUID]]:
    """Take the segments' advisory locks that are free, for this transaction: (locked, busy).
    Never waits, so change batches never deadlock with builds or with each other."""
    by_key = {segment_lock_key(segment_id): segment_id for segment_id in segment_ids}
    rows = await conn.fetch(
        "SELECT k, pg_try_advisory_xact_lock(k) AS got FROM unnest($1::bigint[]) AS k",
        list(by_key),
    )
    locked = sorted((by_key[r["k"]] for r in rows if r["got"]), key=segment_lock_key)
    busy = sorted((by_key[r["k"]] for r in rows if not r["got"]), key=segment_lock_key)
    return locked, busy


async def _apply_locked(
    conn: Conn,
    account_id: UUID,
    segment_ids: list[UUID],
    candidates: list[UUID],
    registry: FieldRegistry,
    now: datetime,
    record: Cause | None,
) -> ChangeResult:
    """Re-evaluate the candidates in those of the (locked) segments built for their current
    rules, recording what moves as `record` (None: not recorded). One not built yet, or
    whose rules changed since, gets a build that will see the data as it is. The segment rows
    are locked FOR KEY SHARE: a segment deleted meanwhile waits for this transaction and then
    deletes the members it wrote (sql/006)."""
    if not segment_ids or not candidates:
        return NOTHING
    rows = await conn.fetch(
        """SELECT id, account_id, generation, dialect, rules, contact_list_ids, timezone
           FROM segments
           WHERE id = ANY($1::uuid[]) AND account_id = $2 AND status = 'DONE'
             AND built_generation = generation
           ORDER BY id
           FOR KEY SHARE""",
        segment_ids,
        account_id,
    )
    queries: list[tuple[UUID, SegmentQuery]] = []
    for row in rows:
        try:
            segment = SegmentRules.from_row(row)
            queries.append((row["id"], PARSED_RULES.query(segment, registry, now)))
        except RulesInvalid as exc:
            # The account's fields changed under the rules; the next build marks it FAILED.
            log.warning("changes.rules_invalid", segment_id=str(row["id"]), error=str(exc))
    added = removed = 0
    for sql, params in change_statements(queries, candidates, record):
        for row in await conn.fetch(sql, *params):
            added += row["added"]
            removed += row["removed"]
    if record is not None and (added or removed):
        await notify_relay(conn)  # membership.changed rows were written
    return ChangeResult(len(queries), added, removed)


def change_statements(
    queries: list[tuple[UUID, SegmentQuery]], candidates: list[UUID], record: Cause | None
) -> list[tuple[str, tuple[object, ...]]]:
    """The apply statement(s) for these segments: one, unless the parameters overflow."""
    if not queries:
        return []
    compiled = compile_matching_among_each([q for _, q in queries], candidates)
    if len(compiled.params) + 4 > MAX_PARAMS_PER_STATEMENT and len(queries) > 1:
        half = len(queries) // 2
        return change_statements(queries[:half], candidates, record) + change_statements(
            queries[half:], candidates, record
        )
    n = len(compiled.params)
    segments = f"${n + 1}::uuid[]"
    # One pass over the candidates: each row tested against every segment's verdict, the
    # ids of those it matches unnested (docs/benchmarks.md, "One pass over the candidates").
    # Only placeholders and the compiler's output: no value is ever in the text.
    cases = ",\n".join(
        f"CASE WHEN {verdict} THEN ({segments})[{i}] END"
        for i, verdict in enumerate(compiled.verdicts, start=1)
    )
    matched = (
        f"SELECT s.segment_id, c.id FROM {CHANGED_CONTACTS} c\n"  # noqa: S608
        f"CROSS JOIN LATERAL unnest(ARRAY[\n{cases}\n]::uuid[]) AS s (segment_id)\n"
        "WHERE s.segment_id IS NOT NULL"
    )
    sql = _APPLY.format(
        with_clause=compiled.with_clause,
        matched=matched,
        segments=segments,
        candidates=compiled.candidates,
        propagated=PROPAGATE_CTE,
        lowest=f"${n + 2}::uuid",
        highest=f"${n + 3}::uuid",
        record="" if record is None else ",\n" + record_ctes("$1::uuid", f"${n + 4}::text"),
    )
    segment_ids = [segment_id for segment_id, _ in queries]
    # The bounds in PostgreSQL's order of uuids, which is Python's (in_database_order).
    params = (*compiled.params, segment_ids, min(segment_ids), max(segment_ids))
    return [(sql, params if record is None else (*params, record))]
