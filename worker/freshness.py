"""Freshness: the time up to which a segment is known to be current (docs/freshness.md).

A segment's `fresh_as_of` T promises that every contact change at or before T is in its
membership. It may be late, never early. How a worker keeps that promise:

- Ticks. Every `freshness_tick_s` each worker publishes a tick into the contact-changes queue
  (straight to the queue, never to the `segments` exchange: outside consumers do not see it).
  Its value is below the `changed_at` of every change that can still be enqueued behind it:
  the time it was stamped, less the producers' allowed delay, and less still if the outbox
  holds an unsent contact.changed or a transaction is writing one (worker.outbox takes a shared
  advisory lock for that, and the tick reads who holds it). The queue is FIFO, so a worker that
  reads a tick has read every delivery it was given before it.
- Reports. Every tick interval each worker writes the latest tick it read and the oldest
  change it has read and not settled (freshness_workers). The watermark is the least of those
  over the live workers: a change not applied yet is either still held by a worker (then it
  holds the watermark back) or was enqueued after the tick a worker reports (then its
  changed_at is above that tick's value).
- Holds (freshness_holds) stand for changes that no live worker holds: a retried change waits
  in a delay queue (held until its delay has passed and every worker has read a tick published
  after that); a delivery whose settle failed went back to the queue (held until every worker
  has read a tick published after that); a worker that stopped reporting for
  `freshness_worker_expiry_s` is removed and its last report becomes a hold until every live
  worker has read a tick published after its removal (its deliveries went back to the queue
  first: the AMQP heartbeat is shorter than the expiry). Holds of a gone worker's that it had
  not released yet wait for that same new barrier.
- Segments (sql/012_freshness.sql): the watermark of their account, capped by what the segment
  and every segment it reads still lacks: contacts queued behind a build (stamped with the time
  of their change: `segments.changed_before`), and for time-relative rules the clock of the last
  build.

`segment_fresh_as_of` is the one way to read a segment's fresh_as_of.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import aio_pika
import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from worker.db import Conn
from worker.errors import TRANSIENT_ERRORS
from worker.locks import OUTBOX_WRITERS, SERVICE_LOCK_CLASS
from worker.messages import CONTACT_CHANGED, ContactChanged
from worker.metrics import FRESHNESS_LATE_CHANGES, FRESHNESS_STALENESS, FRESHNESS_WATERMARK_LAG
from worker.settings import Settings
from worker.settle import attempt_of
from worker.topology import CONTACT_CHANGES_QUEUE

log = structlog.get_logger(__name__)

TICK_TYPE = "segments.freshness_tick"
# A change at T is covered by a watermark of T, not by one of T minus this.
_JUST_BEFORE = timedelta(microseconds=1)
# How late after its delay a retried change may be back in its work queue (queue TTLs fire
# at once; this covers a busy broker).
_RETRY_MARGIN_S = 5.0
# What a tick or report may meet: the database or broker away (it is tried again next time).
_TICK_ERRORS: tuple[type[BaseException], ...] = (
    *TRANSIENT_ERRORS,
    aio_pika.exceptions.AMQPError,
    RuntimeError,
)
# The session setting that stamps contacts queued behind a build (sql/012_freshness.sql).
CHANGED_BEFORE_SETTING = "segments.changed_before"


@dataclass(frozen=True)
class Tick:
    # Every change enqueued behind the tick has changed_at > value (None: nothing is known,
    # the value a worker starts at when no other has reported yet).
    value: datetime | None
    stamped_at: datetime | None  # when it was published (None: the value a worker started at)


@dataclass(frozen=True)
class Hold:
    account_id: UUID | None
    held_before: datetime
    barrier_in_s: float  # released once every worker read a tick published this much later


# After the stamp (its own statement, before): a writer that takes the lock later stamps its
# changed_at later than the tick's stamp.
_WRITERS = """
SELECT min(a.xact_start) AS writing_since,
       -- A writer whose transaction start this role may not see: no tick can be trusted.
       coalesce(bool_or(a.xact_start IS NULL), false) AS writer_unseen
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
  AND l.classid = $1::int::oid AND l.objid = $2::int::oid
"""
# A separate statement, so its snapshot is taken after the locks were read: a writer that
# committed in between is seen here.
_UNSENT_SINCE = """
SELECT min((body->>'changed_at')::timestamptz) FROM outbox
WHERE sent_at IS NULL AND routing_key = $1
"""
_REPORT = """
INSERT INTO freshness_workers AS w (worker_id, seen_at, tick_value, tick_stamped_at, held_before)
VALUES ($1, now(), coalesce($2::timestamptz, '-infinity'), $3, $4)
ON CONFLICT (worker_id) DO UPDATE
SET seen_at = now(), tick_value = EXCLUDED.tick_value,
    tick_stamped_at = EXCLUDED.tick_stamped_at, held_before = EXCLUDED.held_before
"""
_ADD_HOLDS = """
INSERT INTO freshness_holds (scope_account_id, held_before, barrier_at)
SELECT a, h, now() + make_interval(secs => s)
FROM unnest($1::uuid[], $2::timestamptz[], $3::float8[]) AS t (a, h, s)
"""
# Workers silent for longer than the expiry ($1) are gone, and so is one that stops ($2): each
# leaves a hold of its last report, and the holds it had not released yet wait for a tick
# published after now (its deliveries, returned to the queue, are ahead of that tick).
_EXPIRE = """
WITH gone AS (
    DELETE FROM freshness_workers
    WHERE seen_at < now() - make_interval(secs => $1) OR worker_id = $2
    RETURNING worker_id, tick_value, tick_stamped_at, held_before
), moved AS (
    UPDATE freshness_holds h SET barrier_at = greatest(h.barrier_at, now())
    WHERE EXISTS (SELECT 1 FROM gone
                  WHERE coalesce(gone.tick_stamped_at, '-infinity') <= h.barrier_at)
)
INSERT INTO freshness_holds (scope_account_id, held_before, barrier_at)
SELECT NULL, least(tick_value, held_before), now() FROM gone
RETURNING held_before
"""
_RELEASE = """
DELETE FROM freshness_holds
WHERE EXISTS (SELECT 1 FROM freshness_workers)
  AND barrier_at < (SELECT min(coalesce(tick_stamped_at, '-infinity')) FROM freshness_workers)
"""
# Every account's staleness: what segment_fresh_as_of gives its stalest built segment, computed
# for all segments at once (one call per segment took 0.4 ms: minutes for 100k segments),
# except the clock of time-relative rules: those trail by up to the refresh interval by design
# (5 minutes by default), which is not news an operator must act on. The caps of segments read
# through references count for the segments reading them because those are in the same
# account's minimum, except a read segment that is not built (cap: its last change), taken here
# one reference deep.
_STALENESS = """
WITH built AS (
    SELECT s.id, s.account_id FROM segments s
    WHERE s.status = 'DONE' AND s.built_generation = s.generation
), caps AS (
    SELECT b.account_id, least(
        (SELECT min(p.held_before) FROM segment_pending_changes p
         WHERE p.segment_id = b.id AND p.account_id = b.account_id),
        (SELECT min(x.updated_at) FROM segment_references r
         JOIN segments x ON x.id = r.referenced_segment_id AND x.account_id = r.account_id
         WHERE r.segment_id = b.id AND r.account_id = b.account_id
           AND NOT (x.status = 'DONE' AND x.built_generation = x.generation))) AS cap
    FROM built b
), fresh AS (
    SELECT account_id, least(freshness_watermark(account_id), min(cap)) AS t
    FROM caps GROUP BY account_id
)
SELECT account_id, CASE WHEN isfinite(t) THEN t END AS oldest,
       CASE WHEN isfinite(t) THEN extract(epoch FROM now() - t)::float8 END AS staleness
FROM fresh
"""


async def segment_fresh_as_of(conn: Conn, account_id: UUID, segment_id: UUID) -> datetime | None:
    """The segment's fresh_as_of (None before it is built for its current rules, or while no
    time can be vouched for)."""
    value: datetime | None = await conn.fetchval(
        "SELECT segment_fresh_as_of($1, $2)", account_id, segment_id
    )
    return value


async def watermark(conn: Conn, account_id: UUID | None = None) -> datetime | None:
    """The watermark of one account (None: of all), before any segment's own caps."""
    value: datetime | None = await conn.fetchval(
        "SELECT CASE WHEN isfinite(w) THEN w END FROM freshness_watermark($1) w", account_id
    )
    return value


async def mark_changes_before(conn: Conn, changes: Iterable[ContactChanged]) -> None:
    """Stamp the contacts this connection queues behind a build (or for the segments reading
    a segment it moves) with the time of the oldest of `changes`, for the session (a pool
    resets it when the connection goes back)."""
    oldest = min(change.changed_at for change in changes) - _JUST_BEFORE
    await conn.execute(
        "SELECT set_config($1, $2, false)", CHANGED_BEFORE_SETTING, oldest.isoformat()
    )


async def next_tick(conn: Conn, producer_delay_s: float) -> Tick | None:
    """The next tick's value, or None when it cannot be known (an outbox writer whose
    transaction start this database role cannot see)."""
    stamped_at: datetime = await conn.fetchval("SELECT clock_timestamp()")
    row = await conn.fetchrow(_WRITERS, SERVICE_LOCK_CLASS, OUTBOX_WRITERS)
    assert row is not None
    if row["writer_unseen"]:
        log.warning(
            "freshness.writer_unseen",
            hint="grant pg_read_all_stats to the worker's role: a tick needs the start of"
            " every transaction writing the outbox",
        )
        return None
    unsent_since = await conn.fetchval(_UNSENT_SINCE, CONTACT_CHANGED)
    bounds = [stamped_at - timedelta(seconds=producer_delay_s)]
    bounds += [t for t in (row["writing_since"], unsent_since) if t is not None]
    return Tick(min(bounds) - _JUST_BEFORE, stamped_at)


def tick_message(tick: Tick) -> aio_pika.Message:
    assert tick.value is not None and tick.stamped_at is not None
    body = {"value": tick.value.isoformat(), "stamped_at": tick.stamped_at.isoformat()}
    return aio_pika.Message(
        json.dumps(body).encode(),
        type=TICK_TYPE,
        content_type="application/json",
        # Lost with the broker's memory at worst: a tick is only news, the next one follows.
        delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
        message_id=str(uuid.uuid4()),
    )


def read_tick(message: AbstractIncomingMessage) -> Tick | None:
    """The tick a delivery carries, or None if it is not one (a contact.changed)."""
    if message.type != TICK_TYPE:
        return None
    try:
        body = json.loads(message.body)
        return Tick(
            datetime.fromisoformat(body["value"]), datetime.fromisoformat(body["stamped_at"])
        )
    except (ValueError, KeyError, TypeError):
        log.warning("freshness.bad_tick", message_id=message.message_id)
        return None


class FreshnessTracker:
    """One worker's part: what it read and has not settled, the latest tick it read, the holds
    it owes the database; and the loop that ticks and reports them."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.worker_id = uuid.uuid4()
        self._held: dict[int, datetime] = {}  # id(delivery) -> its changed_at
        self._tick: Tick | None = None
        self._unsent_holds: list[Hold] = []
        self._tick_read = asyncio.Event()  # set by passed(): the report loop waits for it

    # --- what the change consumer tells -------------------------------------------------

    def passed(self, tick: Tick) -> None:
        """A tick was read: everything delivered before it has been read (and is held). Each
        fact holds of every tick read, so the newest value and the latest stamp count (ticks
        of several workers may arrive out of order)."""
        self._tick_read.set()
        current = self._tick
        if current is None:
            self._tick = tick
            return
        self._tick = Tick(
            _latest(current.value, tick.value), _latest(current.stamped_at, tick.stamped_at)
        )

    def received(self, delivery: AbstractIncomingMessage, change: ContactChanged) -> None:
        self._held[id(delivery)] = change.changed_at
        first = attempt_of(delivery) == 1 and not delivery.redelivered
        passed = self._tick.value if self._tick is not None else None
        if first and passed is not None and change.changed_at <= passed:
            FRESHNESS_LATE_CHANGES.inc()
            log.warning(
                "freshness.late_change",
                message_id=delivery.message_id,
                changed_at=change.changed_at.isoformat(),
                tick=passed.isoformat(),
                hint="the producer published it long after its changed_at; raise"
                " SEGMENTS_FRESHNESS_PRODUCER_DELAY_MS or fix the producer's clock",
            )

    def settled(
        self, delivery: AbstractIncomingMessage, change: ContactChanged, *, lost: bool
    ) -> None:
        """The delivery was acked, retried or dead-lettered; `lost` if that failed (the broker
        gives it out again: it is held until every worker has read a newer tick)."""
        changed_at = self._held.pop(id(delivery), None)
        if lost and changed_at is not None:
            self._unsent_holds.append(Hold(change.account_id, changed_at - _JUST_BEFORE, 0.0))

    async def hold_retry(self, pool: asyncpg.Pool, change: ContactChanged, delay_s: float) -> None:
        """Before a change goes to a delay queue: a hold for it, until it is back in the work
        queue and behind a tick. Tries until written: while the database is away nothing is
        applied anyway, and if the worker stops meanwhile (this is cancelled) the delivery,
        never settled, goes back to the queue."""
        hold = Hold(change.account_id, change.changed_at - _JUST_BEFORE, delay_s + _RETRY_MARGIN_S)
        backoff = 0.1
        while True:
            try:
                async with pool.acquire() as conn:
                    await _add_holds(conn, [hold])
                return
            except TRANSIENT_ERRORS as exc:
                log.warning("freshness.hold_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    # --- what it reports ------------------------------------------------------------------

    def held_before(self) -> datetime | None:
        times = [t - _JUST_BEFORE for t in self._held.values()]
        times += [h.held_before for h in self._unsent_holds]
        return min(times, default=None)

    async def register(self, conn: Conn) -> None:
        """Before consuming: start at the watermark of the workers already running (whatever
        this worker reads before its first tick was enqueued after what they have read)."""
        start = await watermark(conn)
        if self._tick is None:
            self._tick = Tick(start, None)
        await self.report(conn)

    async def report(self, conn: Conn) -> None:
        """Write this worker's state and the holds it owes, in one transaction; then expire
        the workers gone silent and release the holds every worker has passed."""
        tick, held_before, holds = self._tick, self.held_before(), list(self._unsent_holds)
        if tick is None:
            return  # not registered yet: nothing it reports could be trusted
        async with conn.transaction():
            await _add_holds(conn, holds)
            await conn.execute(_REPORT, self.worker_id, tick.value, tick.stamped_at, held_before)
        del self._unsent_holds[: len(holds)]
        gone = await conn.fetch(_EXPIRE, self.settings.freshness_worker_expiry_s, None)
        if gone:
            log.warning(
                "freshness.workers_expired",
                count=len(gone),
                hint="a worker stopped reporting; freshness waits until its deliveries are"
                " read again by the others",
            )
        await conn.execute(_RELEASE)

    async def unregister(self, conn: Conn) -> None:
        """At a stop: the last report becomes a hold until the others have read a newer tick
        (a delivery on its way to this worker when it stopped goes back to the queue)."""
        if self._tick is None:
            return
        async with conn.transaction():
            await self.report(conn)
            await conn.execute(_EXPIRE, self.settings.freshness_worker_expiry_s, self.worker_id)

    # --- the loop -------------------------------------------------------------------------

    async def run(self, pool: asyncpg.Pool, channel: AbstractChannel, stop: asyncio.Event) -> None:
        """Until `stop`: every tick interval, publish a tick, then report as soon as a tick has
        been read (this one, or another worker's: the report then carries it, so what it
        claims is at most a queue's crossing old); every metrics interval, the staleness
        gauges. Failures are logged and tried again (freshness only lags meanwhile)."""
        last_gauges = 0.0
        interval = self.settings.freshness_tick_s
        while not stop.is_set():
            started = time.monotonic()
            try:
                self._tick_read.clear()
                async with pool.acquire() as conn:
                    if self._tick is None:
                        await self.register(conn)
                    await self._publish_tick(conn, channel)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._tick_read.wait(), timeout=interval)
                async with pool.acquire() as conn:
                    await self.report(conn)
                    await _watermark_gauge(conn)
                    if time.monotonic() - last_gauges >= self.settings.freshness_metrics_interval_s:
                        await _staleness_gauges(conn)
                        last_gauges = time.monotonic()
            except _TICK_ERRORS as exc:
                log.warning("freshness.tick_failed", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                left = interval - (time.monotonic() - started)
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, left))

    async def _publish_tick(self, conn: Conn, channel: AbstractChannel) -> None:
        tick = await next_tick(conn, self.settings.freshness_producer_delay_ms / 1000)
        if tick is not None:
            await channel.default_exchange.publish(
                tick_message(tick), routing_key=CONTACT_CHANGES_QUEUE.name
            )


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(a, b) if a is not None and b is not None else a or b


async def _add_holds(conn: Conn, holds: list[Hold]) -> None:
    if holds:
        await conn.execute(
            _ADD_HOLDS,
            [h.account_id for h in holds],
            [h.held_before for h in holds],
            [h.barrier_in_s for h in holds],
        )


async def _watermark_gauge(conn: Conn) -> None:
    lag = await conn.fetchval(
        "SELECT CASE WHEN isfinite(w) THEN extract(epoch FROM now() - w)::float8 END"
        " FROM freshness_watermark(NULL) w"
    )
    FRESHNESS_WATERMARK_LAG.set(float("inf") if lag is None else lag)


# The accounts the staleness gauge shows, so those without a built segment any more leave it.
_shown_accounts: set[str] = set()


async def oldest_fresh_as_of(conn: Conn) -> dict[UUID, tuple[datetime | None, float | None]]:
    """Per account with built segments: the oldest fresh_as_of among them leaving out the clock
    of time-relative rules, and how many seconds it is behind the database clock (both None
    while nothing is vouched for)."""
    rows = await conn.fetch(_STALENESS)
    return {row["account_id"]: (row["oldest"], row["staleness"]) for row in rows}


async def _staleness_gauges(conn: Conn) -> None:
    seen = set()
    for account_id, (_, staleness) in (await oldest_fresh_as_of(conn)).items():
        account = str(account_id)
        seen.add(account)
        FRESHNESS_STALENESS.labels(account).set(float("inf") if staleness is None else staleness)
    for account in _shown_accounts - seen:
        FRESHNESS_STALENESS.remove(account)
    _shown_accounts.clear()
    _shown_accounts.update(seen)
