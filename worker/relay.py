"""The outbox relay: the one publisher of this service. It sends unsent outbox rows to the
`segments` exchange, in id order. Every process that writes the outbox may run one (`segments
api`, `segments worker`, `segments run`); rows are written by worker/outbox.py.

- A row is marked sent only after the broker confirmed it (publisher confirms), so a crash
  or a broker outage at any point loses nothing; it may publish a row twice (at least once:
  consumers are idempotent, and `message_id` is the row's, so duplicates are recognisable).
- Wakes on NOTIFY from the writers (worker/outbox.py), and polls as a fallback (a missed
  NOTIFY, a listen connection that dropped, rows written by another process without one).
- Several processes may each run a relay: a claim locks rows `FOR UPDATE SKIP LOCKED`,
  and only one relay claims at a time (a transaction advisory lock), which keeps messages
  in outbox order, so per segment too. Another relay takes over as soon as one stops.
- Order per segment, which `membership.changed` promises (docs/changes.md): a segment's
  outbox rows get ids in seq order (its writers hold its lock one after the other, and each
  inserts its rows in seq order), and the relay holding the claim publishes in id order,
  on one channel, waiting for each confirm. A relay that dies after a confirm but before
  marking rows sent rolls its claim back; the next relay publishes those rows again, in
  the same order, before anything newer: a consumer sees a run of seqs it has seen again
  (it skips them by seq), never a later seq before an earlier one. One relay at a time
  rather than one per segment: ordering holds across segments too, with no lock per
  segment; tests/test_membership_feed_relay.py kills a relay in that window.
- The broker being down never fails a request: rows wait, the relay retries with backoff.

Why a plain connection with its own backoff, where the consumers use aio-pika's robust
connection: the relay must know, for each row, whether the broker confirmed it, and a robust
connection reconnects behind the publisher's back (a publish in flight at the cut fails or
hangs until its timeout, with no say on what to do with the rest of the batch). Here a cut
fails the batch at a known row: the confirmed ones are marked sent in the same transaction,
the rest wait for the next pass on a fresh connection. Consumers need none of that: an
unacknowledged delivery simply comes back, so reconnect-and-resubscribe is all they want.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType

import aio_pika
import asyncpg
import structlog
from aio_pika.abc import AbstractConnection, AbstractExchange

from worker import metrics
from worker.broker import broker_urls
from worker.db import connect
from worker.deadline import within
from worker.locks import OUTBOX_RELAY, SERVICE_LOCK_CLASS
from worker.messages import EVENT_ROUTING_KEYS, MEMBERSHIP_CHANGED, amqp_message
from worker.outbox import NOTIFY_CHANNEL
from worker.settings import Settings
from worker.topology import declare

log = structlog.get_logger(__name__)

_BROKER_ERRORS = (aio_pika.exceptions.AMQPError, OSError, TimeoutError, RuntimeError)
# InternalClientError: a connection the server ended (worker/errors.py).
_DB_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
_MAX_BACKOFF_S = 5.0
_PRUNE_EVERY_S = 600.0
_KEEP_SENT = timedelta(days=1)  # sent rows are kept this long (for inspection), then deleted


class BrokerUnavailable(Exception):
    pass


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        # The broker's addresses in turn: a failed attempt moves to the next node.
        self._addresses = itertools.cycle(broker_urls(settings.amqp_url))
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        self.last_error: str | None = None

    @property
    def broker_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def broker_answers(self, timeout: float) -> bool:
        """True if the broker answers on the relay's connection within `timeout`: a channel
        opened and closed. A connection can look open while the broker behind it has stopped
        answering (a partition); heartbeats notice that only after a while, this at once."""
        connection = self._connection
        if connection is None or connection.is_closed:
            return False

        async def round_trip() -> None:
            channel = await connection.channel()
            await channel.close()

        try:
            await within(round_trip(), timeout)
        except (*_BROKER_ERRORS, TimeoutError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        return True

    async def __aenter__(self) -> OutboxRelay:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The flag as well as the cancel: a library that turns CancelledError into its own
        # error (seen with connects in progress) must not keep the relay running.
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close_broker()
        if self._listener is not None:
            await self._listener.close(timeout=5)

    async def run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                await self._listen()
                await self._open_broker()  # also when idle: /readyz reports the broker
                await self._drain()
                await self._prune()
                backoff = 0.1
                self.last_error = None
                await self._sleep(self._settings.outbox_poll_interval_s, wake_early=True)
            except (BrokerUnavailable, *_DB_ERRORS) as exc:
                if isinstance(exc, BrokerUnavailable):
                    metrics.OUTBOX_PUBLISH_FAILURES.inc()
                self.last_error = str(exc) if isinstance(exc, BrokerUnavailable) else repr(exc)
                log.warning("outbox.relay_failed", error=self.last_error, retry_in_s=backoff)
                await self._sleep(backoff, wake_early=False)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
            except Exception:
                # A bug, not an outage: logged loudly, and the relay lives on (rows wait).
                log.exception("outbox.relay_error")
                await self._sleep(_MAX_BACKOFF_S, wake_early=False)

    async def _sleep(self, seconds: float, *, wake_early: bool) -> None:
        """Sleep; a stop always ends it, a wake-up (NOTIFY, dropped connection) only when
        `wake_early` (backoff after a failure is not cut short by more NOTIFYs)."""
        waits = [asyncio.ensure_future(self._stop.wait())]
        if wake_early:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if wake_early:
            self._wake.clear()

    async def _listen(self) -> None:
        """(Re)open the LISTEN connection. If the database is away, polling still works."""
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            self._listener = await connect(self._settings.database_url)
            await self._listener.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
        except _DB_ERRORS as exc:
            log.warning("outbox.listen_failed", error=repr(exc))
            self._listener = None

    async def _drain(self) -> None:
        try:
            while await self._publish_batch() == self._settings.outbox_batch_size:
                pass
        finally:
            await self._report_backlog()

    async def _publish_batch(self) -> int:
        """Claim up to a batch of unsent rows, publish them in order, mark the confirmed ones.
        Returns how many were published; raises BrokerUnavailable after committing the
        rows confirmed before the broker failed."""
        failure: BaseException | None = None
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock($1, $2)", SERVICE_LOCK_CLASS, OUTBOX_RELAY
            ):
                return 0  # another relay is publishing; it will take these rows too
            rows = await conn.fetch(
                """SELECT id, message_id, routing_key, body FROM outbox
                   WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self._settings.outbox_batch_size,
            )
            if not rows:
                return 0
            sent: list[int] = []
            try:
                exchange = await self._open_broker()
                for row in rows:
                    await self._publish(exchange, row)
                    sent.append(row["id"])
            except (BrokerUnavailable, *_BROKER_ERRORS) as exc:
                failure = exc
                failed_id = rows[len(sent)]["id"]
                await conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                    failed_id,
                    f"{type(exc).__name__}: {exc}"[:1000],
                )
            if sent:
                await conn.execute(
                    """UPDATE outbox SET sent_at = now(), attempts = attempts + 1
                       WHERE id = ANY($1::bigint[])""",
                    sent,
                )
        if failure is not None:
            await self._close_broker()
            if isinstance(failure, BrokerUnavailable):
                raise failure
            raise BrokerUnavailable(f"{type(failure).__name__}: {failure}") from failure
        return len(sent)

    async def _publish(self, exchange: AbstractExchange, row: asyncpg.Record) -> None:
        body = json.dumps(row["body"], separators=(",", ":")).encode()
        await exchange.publish(
            amqp_message(body, message_id=str(row["message_id"])),
            routing_key=row["routing_key"],
            # The service's own messages must reach a queue (a returned one is a failure);
            # events for systems downstream may find none bound (docs/changes.md).
            mandatory=row["routing_key"] not in EVENT_ROUTING_KEYS,
            timeout=self._settings.outbox_publish_timeout_s,
        )
        metrics.OUTBOX_PUBLISHED.labels(row["routing_key"]).inc()

    async def _open_broker(self) -> AbstractExchange:
        if self._exchange is not None and self.broker_connected:
            return self._exchange
        await self._close_broker()
        try:
            self._connection = await aio_pika.connect(
                next(self._addresses),
                timeout=self._settings.outbox_publish_timeout_s,
                heartbeat=self._settings.amqp_heartbeat_s,
            )
            self._connection.close_callbacks.add(self._on_close(self._connection))
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            # Declared here too, not only by the worker: a message published before any
            # worker has run would otherwise have no queue to go to and be dropped.
            self._exchange = await declare(channel, self._settings.retry_delays_s)
        except _BROKER_ERRORS as exc:
            await self._close_broker()
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        log.info("outbox.broker_connected")
        return self._exchange

    def _on_close(self, connection: AbstractConnection) -> Callable[..., None]:
        """A dropped connection is forgotten at once (so /readyz tells), and the loop wakes
        to reconnect, with backoff if that fails."""

        def closed(*_: object) -> None:
            if self._connection is connection:
                self._connection, self._exchange = None, None
            self._wake.set()

        return closed

    async def _close_broker(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(*_BROKER_ERRORS):
                await asyncio.wait_for(connection.close(), timeout=5)

    async def _report_backlog(self) -> None:
        row = await self._pool.fetchrow(
            """SELECT count(*) AS backlog,
                      coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age,
                      count(*) FILTER (WHERE routing_key = $1) AS events,
                      coalesce(extract(epoch FROM now() - min(created_at)
                                                  FILTER (WHERE routing_key = $1)), 0)
                          AS events_age
               FROM outbox WHERE sent_at IS NULL""",
            MEMBERSHIP_CHANGED,
        )
        if row is not None:
            metrics.OUTBOX_BACKLOG.set(row["backlog"])
            metrics.OUTBOX_OLDEST_AGE.set(float(row["age"]))
            metrics.MEMBERSHIP_OUTBOX_BACKLOG.set(row["events"])
            metrics.MEMBERSHIP_OUTBOX_OLDEST_AGE.set(float(row["events_age"]))

    async def _prune(self) -> None:
        if time.monotonic() - self._last_prune < _PRUNE_EVERY_S:
            return
        self._last_prune = time.monotonic()
        deleted = await self._pool.execute(
            """DELETE FROM outbox WHERE id IN (
                   SELECT id FROM outbox WHERE sent_at < now() - $1::interval
                   ORDER BY id LIMIT 10000)""",
            _KEEP_SENT,
        )
        log.debug("outbox.pruned", result=deleted)
