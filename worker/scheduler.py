"""Scheduled work, done by exactly one worker at a time (leader by PostgreSQL advisory lock):

- refresh: segments whose rules depend on the clock (days_window, within_days) drift with
  time alone; send `segment.refresh` for each DONE one not refreshed within the interval;
- local midnights: segments with calendar periods or anniversaries (docs/rules.md, timezones) change
  at local midnight in their timezone (week, month and year boundaries are midnights too):
  send `segment.refresh` for each DONE one last computed before its latest local midnight.
  A tick comes at least every 30 s, so the refresh is asked within a minute of midnight;
- sweep: a segment PENDING or RUNNING for long with no build holding its lock lost its
  message or its worker: send `segment.rebuild` so it is never stuck;
- retention: delete membership changes feed items older than SEGMENTS_CHANGES_RETENTION_DAYS
  and history points older than 400 days, in bounded batches (worker.membership_feed).

Messages go through the outbox (worker/outbox.py), in the transaction that marks the segment,
so a refresh is never marked requested without its message; the relay publishes them.

Every worker also refreshes the segments-by-status and pending-changes gauges. Leadership
lives on a dedicated connection: if that connection dies, the lock is released and another
worker takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from worker.db import Conn, connect
from worker.errors import TRANSIENT_ERRORS
from worker.locks import SCHEDULER, SERVICE_LOCK_CLASS, segment_lock_key
from worker.membership_feed import purge_expired
from worker.metrics import (
    CHANGE_LOG_BYTES,
    CHANGE_LOG_PURGED,
    CHANGE_LOG_ROWS,
    PENDING_CHANGES_OLDEST,
    REFRESHES_PUBLISHED,
    SCHEDULER_LEADER,
    SEGMENTS_BY_STATUS,
    STUCK_BUILDS_REQUEUED,
)
from worker.outbox import enqueue_segment
from worker.settings import Settings

log = structlog.get_logger(__name__)

STATUSES = ("PENDING", "RUNNING", "DONE", "FAILED")


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.clock = clock  # injectable, so tests can stand at any local midnight
        self._leader_conn: asyncpg.Connection | None = None

    @property
    def tick_s(self) -> float:
        # Often enough to notice stuck builds and due refreshes well within their intervals.
        return float(min(30, self.settings.refresh_interval_s, self.settings.stuck_after_s))

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except TRANSIENT_ERRORS as exc:
                    log.warning("scheduler.tick_failed", error=f"{type(exc).__name__}: {exc}")
                    await self._resign()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.tick_s)
        finally:
            await self._resign()

    async def tick(self) -> None:
        await self._update_status_gauge()
        if await self._lead():
            await self.refresh_due()
            await self.refresh_after_local_midnight()
            await self.requeue_stuck()
            await self.purge_changes()

    async def _lead(self) -> bool:
        if self._leader_conn is None or self._leader_conn.is_closed():
            self._leader_conn = await connect(self.settings.database_url)
            got = await self._leader_conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", SERVICE_LOCK_CLASS, SCHEDULER
            )
            if not got:
                await self._resign()
                return False
            log.info("scheduler.leader")
            SCHEDULER_LEADER.set(1)
        return True

    async def _resign(self) -> None:
        SCHEDULER_LEADER.set(0)
        conn, self._leader_conn = self._leader_conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()  # releases the session lock

    async def refresh_due(self) -> int:
        return await self._refresh(
            """UPDATE segments SET refresh_requested_at = now()
               WHERE time_relative AND status = 'DONE'
                 AND coalesce(refresh_requested_at, last_built_at, created_at)
                     < now() - make_interval(secs => $1)
               RETURNING id, account_id, generation""",
            float(self.settings.refresh_interval_s),
            event="scheduler.refreshes_published",
        )

    async def refresh_after_local_midnight(self) -> int:
        """Refresh calendar segments whose latest computation (the last refresh asked, or the
        start of the last build, whichever is later) predates the latest local midnight in
        their timezone. Marking refresh_requested_at with the clock's now makes it once per
        local day; a refresh that changes nothing writes nothing (worker.builds)."""
        return await self._refresh(
            """UPDATE segments SET refresh_requested_at = $1
               WHERE local_calendar AND status = 'DONE'
                 AND greatest(refresh_requested_at, build_started_at, created_at)
                     < (date_trunc('day', $1 AT TIME ZONE timezone) AT TIME ZONE timezone)
               RETURNING id, account_id, generation""",
            self.clock(),
            event="scheduler.local_midnight_refreshes",
        )

    async def _refresh(self, mark: str, arg: object, *, event: str) -> int:
        """Mark the segments `mark` selects (an UPDATE ... RETURNING id, account_id,
        generation) and send `segment.refresh` for each, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(mark, arg)
            for row in rows:
                await _send(conn, "segment.refresh", row)
        REFRESHES_PUBLISHED.inc(len(rows))
        if rows:
            log.info(event, segments=len(rows))
        return len(rows)

    async def requeue_stuck(self) -> int:
        assert self._leader_conn is not None
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT id, account_id, generation FROM segments
                   WHERE status IN ('PENDING', 'RUNNING')
                     AND coalesce(build_started_at, updated_at) < now() - make_interval(secs => $1)
                   ORDER BY updated_at LIMIT 1000""",
                float(self.settings.stuck_after_s),
            )
        stuck = [row for row in rows if await self._nobody_builds(row["id"])]
        async with self.pool.acquire() as conn, conn.transaction():
            for row in stuck:
                await _send(conn, "segment.rebuild", row)
        requeued = len(stuck)
        if requeued:
            STUCK_BUILDS_REQUEUED.inc(requeued)
            log.warning("scheduler.stuck_requeued", segments=requeued)
        return requeued

    async def _nobody_builds(self, segment_id: object) -> bool:
        """True if no transaction holds the segment's build lock right now."""
        assert self._leader_conn is not None
        key = segment_lock_key(segment_id)  # type: ignore[arg-type]
        got = await self._leader_conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
        if got:
            await self._leader_conn.execute("SELECT pg_advisory_unlock($1)", key)
        return bool(got)

    async def purge_changes(self) -> int:
        """Retention of the changes feed and the history, a bounded amount per tick."""
        async with self.pool.acquire() as conn:
            deleted = await purge_expired(
                conn, retention=timedelta(days=self.settings.changes_retention_days)
            )
            size = await conn.fetchrow(
                """SELECT greatest(reltuples, 0)::float8 AS rows,
                          pg_total_relation_size(oid)::float8 AS bytes
                   FROM pg_class WHERE oid = 'segment_membership_changes'::regclass"""
            )
        CHANGE_LOG_PURGED.inc(deleted)
        if size is not None:
            CHANGE_LOG_ROWS.set(size["rows"])
            CHANGE_LOG_BYTES.set(size["bytes"])
        if deleted:
            log.info("scheduler.changes_purged", rows=deleted)
        return deleted

    async def _update_status_gauge(self) -> None:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT status, count(*) AS n FROM segments GROUP BY status")
            oldest = await conn.fetchval(
                """SELECT coalesce(extract(epoch FROM now() - min(queued_at)), 0)::float8
                   FROM segment_pending_changes"""
            )
        counts = {row["status"]: row["n"] for row in rows}
        for status in STATUSES:
            SEGMENTS_BY_STATUS.labels(status).set(counts.get(status, 0))
        PENDING_CHANGES_OLDEST.set(oldest)


async def _send(conn: Conn, routing_key: str, row: asyncpg.Record) -> None:
    await enqueue_segment(conn, routing_key, row["account_id"], row["id"], row["generation"])
