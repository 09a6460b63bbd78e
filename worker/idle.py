"""When a worker run with `until_idle` has nothing left to do (`segments worker --until-idle`,
for tests and batch jobs).

Idle means all of these, on every check for `quiet_s` in a row (a message on its way from the
broker to this worker, or a batch about to start, shows in the next check):
- the work queues and their delay queues have no message ready (a passive declare's
  message_count; a message in a delay queue is work that comes back);
- this worker's consumers hold nothing: no build running, no change waiting, being applied
  or being settled;
- segment_pending_changes is empty (changes queued behind a build are applied by the sweep);
- the outbox has no unsent row, when this worker runs the relay (otherwise another process
  publishes them and this one cannot wait for it).

Deliveries another worker holds unacknowledged are invisible here: with several workers on the
same queues, this one stops when it has nothing of its own to do. Dead-letter queues are not
work: what is there stays there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aio_pika
import asyncpg
import structlog
from aio_pika.abc import AbstractChannel

log = structlog.get_logger(__name__)

_BROKER_ERRORS = (aio_pika.exceptions.AMQPError, OSError, TimeoutError, RuntimeError)
_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True)
class QueuesOnChannel:
    """Queues to count, asked on `channel`: on a consumer's own channel, an answer of 0 also
    means every delivery sent to that consumer before it has reached this process."""

    channel: AbstractChannel
    names: Sequence[str]


class IdleProbe:
    def __init__(
        self,
        pool: asyncpg.Pool,
        queues: Sequence[QueuesOnChannel],
        consumers_idle: Callable[[], bool],
        *,
        count_outbox: bool,
    ) -> None:
        self.pool = pool
        self.queues = queues
        self.consumers_idle = consumers_idle
        self.count_outbox = count_outbox

    async def busy(self) -> list[str]:
        """What still has work, by name; empty when idle."""
        busy = [] if self.consumers_idle() else ["consumers"]
        try:
            busy += await self._queues_with_messages()
        except _BROKER_ERRORS as exc:  # reconnecting: certainly not idle
            busy.append(f"broker ({type(exc).__name__})")
        try:
            busy += await self._tables_with_rows()
        except _DB_ERRORS as exc:
            busy.append(f"database ({type(exc).__name__})")
        return busy

    async def _queues_with_messages(self) -> list[str]:
        busy = []
        for group in self.queues:
            # The channel's own AMQP channel: aio-pika's passive declare on a robust channel
            # answers from its cache without asking the broker.
            amqp = await group.channel.get_underlay_channel()
            for name in group.names:
                declared = await amqp.queue_declare(name, passive=True)
                if declared.message_count:
                    busy.append(f"{name} ({declared.message_count})")
        return busy

    async def _tables_with_rows(self) -> list[str]:
        busy = []
        async with self.pool.acquire() as conn:
            if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM segment_pending_changes)"):
                busy.append("segment_pending_changes")
            if self.count_outbox and await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE sent_at IS NULL)"
            ):
                busy.append("outbox")
        return busy


async def stop_when_idle(
    probe: IdleProbe, stop: asyncio.Event, *, quiet_s: float = 0.5, interval_s: float = 0.1
) -> None:
    """Set `stop` once the probe has found nothing busy on every check for `quiet_s`."""
    idle_since: float | None = None
    last_busy: list[str] = []
    while not stop.is_set():
        busy = await probe.busy()
        now = time.monotonic()
        if busy:
            idle_since = None
            if busy != last_busy:
                log.debug("worker.busy", busy=busy)
            last_busy = busy
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= quiet_s:
            log.info("worker.idle", quiet_s=quiet_s)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
