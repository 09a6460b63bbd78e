"""The two consumers: segment builds and contact changes. Each turns a delivery into a
Decision (worker.settle); they never ack themselves.

Builds run concurrently up to the channel's prefetch (one task per delivery). Contact changes
coalesce for a short window, are applied per account in one pass, and their messages are
settled together once the transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage

from worker.batching import AccountPart, Batch, ChangeBatcher
from worker.builds import build_segment, mark_failed
from worker.changes import (
    NOTHING,
    ChangeResult,
    apply_changes,
    apply_pending,
)
from worker.dependencies import SegmentReads, Work
from worker.errors import failure_reason, is_transient
from worker.freshness import FreshnessTracker, mark_changes_before, read_tick
from worker.hints import Hints
from worker.member_statistics import MemberStatistics
from worker.messages import (
    SEGMENT_ROUTING_KEYS,
    BadMessage,
    ContactChanged,
    SegmentMessage,
    decode,
    published_at,
)
from worker.metrics import (
    BUILD_DURATION,
    BUILD_START_DELAY,
    BUILD_STEP_DURATION,
    BUILDS_IN_PROGRESS,
    CHANGE_BATCH_SEGMENTS,
    CHANGE_LAG,
    INCREMENTAL_BATCH_CONTACTS,
    INCREMENTAL_DEFERRED,
    INCREMENTAL_DURATION,
    REBUILD_CHECKS,
)
from worker.settings import Settings
from worker.settle import (
    Ack,
    DeadLetter,
    Decision,
    Retry,
    Settler,
    attempt_of,
    original_routing_key,
)
from worker.topology import retry_delay_s

log = structlog.get_logger(__name__)


class InFlight:
    """Tasks started for deliveries, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[object]] = set()

    def start(self, coro: Awaitable[object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def wait(self, timeout: float) -> bool:
        """True if everything finished within `timeout`, including tasks started meanwhile;
        what did not is cancelled (its delivery stays unacknowledged and returns to the queue
        when the channel closes)."""
        deadline = time.monotonic() + timeout
        while self.tasks and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(set(self.tasks), timeout=left)
        for task in self.tasks:
            task.cancel()
        return not self.tasks


def _trigger(routing_key: str | None) -> str:
    if routing_key not in SEGMENT_ROUTING_KEYS:
        raise BadMessage(f"routing key {routing_key!r} is not one of {SEGMENT_ROUTING_KEYS}")
    return routing_key.split(".", 1)[1]


def _retry_or_give_up(exc: BaseException, attempt: int, max_attempts: int) -> Decision:
    if attempt >= max_attempts:
        return DeadLetter("attempts_exhausted", failure_reason(exc, attempt))
    return Retry("transient" if is_transient(exc) else "unexpected", f"{type(exc).__name__}: {exc}")


class BuildConsumer:
    def __init__(self, pool: asyncpg.Pool, settler: Settler, settings: Settings) -> None:
        self.pool = pool
        self.settler = settler
        self.settings = settings
        self.in_flight = InFlight()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self.in_flight.start(self._handle(message))

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            decision = await self._decide(message)
        except Exception:  # never let a delivery go unsettled
            log.exception("build.unhandled", message_id=message.message_id)
            decision = Retry("unexpected")
        await self.settler.settle(message, decision)

    async def _decide(self, message: AbstractIncomingMessage) -> Decision:
        try:
            segment = decode(SegmentMessage, message.body)
            trigger = _trigger(original_routing_key(message))
        except BadMessage as exc:
            return DeadLetter("bad_message", str(exc))
        with structlog.contextvars.bound_contextvars(
            segment_id=str(segment.segment_id),
            account_id=str(segment.account_id),
            generation=segment.generation,
            message_id=message.message_id,
        ):
            return await self._build(message, segment, trigger)

    async def _build(
        self, message: AbstractIncomingMessage, segment: SegmentMessage, trigger: str
    ) -> Decision:
        sent = published_at(message)
        if sent is not None:
            BUILD_START_DELAY.labels(trigger).observe(max(0.0, time.time() - sent))
        started = time.perf_counter()
        attempt = attempt_of(message)
        BUILDS_IN_PROGRESS.inc()
        try:
            async with self.pool.acquire() as conn:
                result = await build_segment(
                    conn,
                    segment,
                    trigger,
                    statement_timeout_ms=self.settings.statement_timeout_ms,
                    record=self.settings.record_membership_changes,
                    check_from=self.settings.rebuild_check_from_members,
                )
        except Exception as exc:  # classified in _failed, never swallowed
            decision = await self._failed(segment, exc, attempt)
            outcome = "failed" if isinstance(decision, DeadLetter) else "retry"
            BUILD_DURATION.labels(trigger, outcome).observe(time.perf_counter() - started)
            return decision
        finally:
            BUILDS_IN_PROGRESS.dec()
        elapsed = time.perf_counter() - started
        BUILD_DURATION.labels(trigger, result.outcome).observe(elapsed)
        if result.outcome == "done":
            BUILD_STEP_DURATION.labels("query").observe(result.query_s)
            BUILD_STEP_DURATION.labels("write").observe(result.write_s)
            if result.checked is not None:
                REBUILD_CHECKS.labels(result.checked).inc()
        log.info(
            "build.finished",
            trigger=trigger,
            outcome=result.outcome,
            total_count=result.total_count,
            added=result.added,
            removed=result.removed,
            duration_s=round(elapsed, 4),
            query_s=round(result.query_s, 4),
            write_s=round(result.write_s, 4),
            checked=result.checked,
        )
        return Ack(result.outcome)

    async def _failed(self, segment: SegmentMessage, exc: Exception, attempt: int) -> Decision:
        decision = _retry_or_give_up(exc, attempt, self.settings.max_attempts)
        log.warning(
            "build.error",
            attempt=attempt,
            error=f"{type(exc).__name__}: {exc}",
            exc_info=not is_transient(exc),
        )
        if isinstance(decision, DeadLetter):
            try:
                async with self.pool.acquire() as conn:
                    await mark_failed(conn, segment, decision.detail)
            except Exception as mark_exc:  # the database is still away
                log.warning("build.mark_failed_later", error=str(mark_exc))
                return Retry("transient", "could not record FAILED; trying the build again")
        return decision


class ChangeConsumer:
    """Coalesces contact.changed deliveries (worker.batching) and applies them per account,
    by group commit: a change that arrives while no batch is being applied starts one at once
    (after the deliveries already read from the socket have joined it); changes that arrive
    while one is applied wait and form the next batch, started the moment that one is done.
    So a lone change waits for nothing, and under load batches grow instead of queueing (the
    cost of a batch is mostly per segment, not per contact). SEGMENTS_CHANGE_BATCH_WINDOW_MS
    (0 by default) can add a wait for more changes before a batch starts.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        settler: Settler,
        settings: Settings,
        freshness: FreshnessTracker | None = None,
    ) -> None:
        self.pool = pool
        self.settler = settler
        self.settings = settings
        self.freshness = freshness or FreshnessTracker(settings)
        self.in_flight = InFlight()
        self.batcher: ChangeBatcher[AbstractIncomingMessage] = ChangeBatcher(
            max_contacts=settings.change_batch_max_contacts,
            window_s=settings.change_batch_window_ms / 1000,
        )
        self._timer: asyncio.TimerHandle | None = None
        self.reads = SegmentReads()  # what each live segment reads, for change hints
        self.member_statistics = MemberStatistics()
        self._applying = False
        self._sweep_due = False

    @property
    def idle(self) -> bool:
        """Nothing waiting, being applied or being settled."""
        return not (self.batcher or self._applying or self.in_flight.tasks)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        if (tick := read_tick(message)) is not None:
            self.freshness.passed(tick)
            self.in_flight.start(self.settler.settle(message, Ack("freshness_tick")))
            return
        try:
            change = decode(ContactChanged, message.body)
        except BadMessage as exc:
            self.in_flight.start(self.settler.settle(message, DeadLetter("bad_message", str(exc))))
            return
        self.freshness.received(message, change)
        self.batcher.add(message, change)
        if self._applying:
            return  # the batch being applied starts the next one when it is done
        if self.batcher.full:
            self.flush()
        elif self._timer is None:
            # call_later(0) rather than at once: deliveries that arrived in the same read of
            # the socket are handled in this turn of the event loop and join the batch.
            wait_s = self.batcher.wait_s() or 0.0
            self._timer = asyncio.get_running_loop().call_later(wait_s, self.flush)

    def flush(self) -> None:
        """Hand the oldest waiting deliveries to a task as one batch, unless one is being
        applied (then they follow that one); new deliveries start the next batch."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._applying or not (self.batcher or self._sweep_due):
            return
        self._applying = True
        self.in_flight.start(self._apply(self.batcher.take()))

    async def sweep_pending(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        """Until `stop`: every `interval_s`, if changes wait in segment_pending_changes (queued
        for segments that were being built), have them applied (worker.changes.apply_pending)
        between batches. Every worker sweeps, so what a stopped worker queued is not left
        behind. The check runs beside the batches, not between them: a sweep with nothing to
        do never delays a change."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            if not stop.is_set() and await self._changes_wait():
                self._sweep_due = True
                self.flush()

    async def _changes_wait(self) -> bool:
        try:
            return bool(
                await self.pool.fetchval("SELECT EXISTS (SELECT 1 FROM segment_pending_changes)")
            )
        except Exception as exc:  # the next check tries again; nothing is lost meanwhile
            log.warning("changes.sweep_check_failed", error=f"{type(exc).__name__}: {exc}")
            return False

    async def _apply(self, batch: Batch[AbstractIncomingMessage]) -> None:
        try:
            if self._sweep_due:
                self._sweep_due = False
                await self._sweep()
            for part in batch.accounts():
                decisions = await self._apply_account(part)
                for delivery, change, decision in zip(
                    part.deliveries, part.changes, decisions, strict=True
                ):
                    try:
                        await self._settle(delivery, change, decision)
                    except Exception as exc:  # a bug must not strand the batch's other messages
                        await self._give_back(delivery, change, exc)
        finally:
            self._applying = False
        self.flush()  # what arrived meanwhile has waited long enough

    async def _settle(
        self, message: AbstractIncomingMessage, change: ContactChanged, decision: Decision
    ) -> None:
        """Settle, keeping freshness's account: a retried change is held until it is back,
        one whose settle failed until it is read again (worker.freshness)."""
        if isinstance(decision, Retry):
            delays = self.settings.retry_delays_s
            await self.freshness.hold_retry(
                self.pool, change, retry_delay_s(attempt_of(message), delays)
            )
        settled = await self.settler.settle(message, decision)
        self.freshness.settled(message, change, lost=not settled)

    async def _give_back(
        self, delivery: AbstractIncomingMessage, change: ContactChanged, exc: Exception
    ) -> None:
        """A delivery whose settling failed unexpectedly goes back to the queue (applying it
        again is idempotent), held for freshness until a newer tick is read: otherwise it would
        stay unacknowledged for as long as the worker runs."""
        log.error(
            "changes.settle_failed",
            account_id=str(change.account_id),
            error=f"{type(exc).__name__}: {exc}",
            exc_info=exc,
        )
        self.freshness.settled(delivery, change, lost=True)
        with contextlib.suppress(Exception):  # a lost channel gives it back by itself
            await delivery.nack(requeue=True)

    async def _apply_account(self, part: AccountPart[AbstractIncomingMessage]) -> list[Decision]:
        INCREMENTAL_BATCH_CONTACTS.observe(len(part.contact_ids))
        started = time.perf_counter()
        try:
            result = await self._apply_in_parallel(part)
        except Exception as exc:  # classified per message below
            log.warning(
                "changes.error",
                account_id=str(part.account_id),
                error=f"{type(exc).__name__}: {exc}",
                exc_info=not is_transient(exc),
            )
            max_attempts = self.settings.max_attempts
            return [_retry_or_give_up(exc, attempt_of(m), max_attempts) for m in part.deliveries]
        INCREMENTAL_DURATION.observe(time.perf_counter() - started)
        now = time.time()
        for change in part.changes:
            CHANGE_LAG.observe(max(0.0, now - change.changed_at.timestamp()))
        log.info(
            "changes.applied",
            account_id=str(part.account_id),
            contacts=len(part.contact_ids),
            messages=len(part.deliveries),
            segments=result.segments,
            added=result.added,
            removed=result.removed,
            deferred=result.deferred,
        )
        INCREMENTAL_DEFERRED.inc(result.deferred)
        return [Ack() for _ in part.deliveries]

    async def _sweep(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                result = await apply_pending(
                    conn,
                    statement_timeout_ms=self.settings.statement_timeout_ms,
                    record=self.settings.record_membership_changes,
                )
        except Exception as exc:  # the next sweep tries again; nothing is lost meanwhile
            log.warning("changes.sweep_failed", error=f"{type(exc).__name__}: {exc}")
            return
        if result.segments:
            log.info(
                "changes.pending_applied",
                segments=result.segments,
                added=result.added,
                removed=result.removed,
                still_building=result.deferred,
            )

    async def _apply_in_parallel(
        self, batch_part: AccountPart[AbstractIncomingMessage]
    ) -> ChangeResult:
        """Each live segment re-evaluated for the contacts of the messages whose hints concern
        it (worker.dependencies), the segments split over `change_parallelism` transactions at
        once (a batch is CPU-bound on the database; one connection uses one core). A part
        that fails fails the batch, which is retried (re-evaluating is idempotent)."""
        account_id = batch_part.account_id
        changes = [
            (None if c.changed is None else Hints.of(c.changed), c.contact_ids)
            for c in batch_part.changes
        ]
        async with self.pool.acquire() as conn:
            await self.member_statistics.keep_fresh(conn)
            plan = await self.reads.plan(conn, account_id, changes)
        CHANGE_BATCH_SEGMENTS.labels("evaluated").observe(plan.evaluated)
        CHANGE_BATCH_SEGMENTS.labels("skipped").observe(plan.skipped)

        async def apply_part(part: list[Work]) -> ChangeResult:
            total = NOTHING
            async with self.pool.acquire() as conn:
                # Contacts queued behind a build carry the time of these changes.
                await mark_changes_before(conn, batch_part.changes)
                for work in part:
                    total += await apply_changes(
                        conn,
                        account_id,
                        work.contact_ids,
                        statement_timeout_ms=self.settings.statement_timeout_ms,
                        segment_ids=work.segment_ids,
                        plan_cache_mode=self.settings.change_plan_cache_mode,
                        record=self.settings.record_membership_changes,
                    )
            return total

        parts = plan.split(self.settings.change_parallelism)
        outcomes = await asyncio.gather(*map(apply_part, parts), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return sum((o for o in outcomes if isinstance(o, ChangeResult)), start=NOTHING)
