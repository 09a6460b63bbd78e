"""Statistics of segment_members kept fresh after large membership changes.

First builds insert members by the hundred thousand; until the table is analysed, the planner
guesses at it, and the change statement's lookup of the candidates' current membership
(worker.changes) loses its plan: 1.5x to 2x slower in every run of docs/benchmarks.md
("Incremental statement"), and far worse on larger tables, where whole segments were scanned
instead of the candidates probed. Autovacuum analyses it, but up to a minute later. So before
a change batch, a worker checks (at most every `interval_s`) whether much of the table
changed since it was last analysed, and if so analyses it first: one worker at a time
(advisory lock), from a sample, in a fraction of a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from worker.db import Conn
from worker.locks import MEMBER_STATISTICS, SERVICE_LOCK_CLASS
from worker.metrics import MEMBER_ANALYSES

log = structlog.get_logger(__name__)

# Analysed when more rows changed since the last analyse than this share of the table, plus
# a floor (below which the planner's guesses are harmless). Autovacuum's own trigger is 10%
# plus 50 rows; this one is for the jumps autovacuum has not caught up with yet.
SHARE = 0.2
FLOOR = 10_000

# $1 is cast: left to infer, PostgreSQL types it from n_live_tup (bigint), and asyncpg then
# sends the share 0.2 as the integer 0, so that any 10,000 moved members looked like a large
# change and a busy worker analysed the table every `interval_s` (docs/benchmarks.md,
# "Analysing segment_members too often").
_STALE = """
SELECT coalesce(n_mod_since_analyze > $1::float8 * n_live_tup + $2, false)
FROM pg_stat_user_tables
WHERE relid = 'segment_members'::regclass
"""


class MemberStatistics:
    def __init__(
        self, interval_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._checked_at: float | None = None

    async def keep_fresh(self, conn: Conn) -> bool:
        """Analyse segment_members if much of it changed since its last analyse; True if this
        call did. Cheap when not due: one catalog read at most every `interval_s`."""
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self.interval_s:
            return False
        self._checked_at = now
        if not await conn.fetchval(_STALE, SHARE, FLOOR):
            return False
        # Another worker analysing already: it does it for everyone.
        if not await conn.fetchval(
            "SELECT pg_try_advisory_lock($1, $2)", SERVICE_LOCK_CLASS, MEMBER_STATISTICS
        ):
            return False
        try:
            started = time.perf_counter()
            await conn.execute("ANALYZE segment_members")
            MEMBER_ANALYSES.inc()
            log.info("members.analysed", duration_s=round(time.perf_counter() - started, 3))
            return True
        finally:
            await conn.execute(
                "SELECT pg_advisory_unlock($1, $2)", SERVICE_LOCK_CLASS, MEMBER_STATISTICS
            )
