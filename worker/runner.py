"""`segments worker`: the consumers, the scheduler, the outbox relay and /metrics, with one
lifecycle.

Start: pool and robust AMQP connection, topology declared, consumers subscribed. Stop (the
`stop` event, set by SIGTERM/SIGINT): cancel the subscriptions so no new work arrives, apply
the pending change batch, give in-flight work `shutdown_grace_s` to finish, then close the
channels; anything still unacknowledged goes back to its queue for another worker.
Connection losses are survived: aio-pika's robust connection reconnects and resubscribes, and
work that failed on the database is retried through the delay queues.

With `until_idle` the worker also stops itself, the same way, once it has nothing left to do
(worker/idle.py says what that means).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aio_pika
import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from prometheus_client import start_http_server

from worker.amqp import connect_consumers
from worker.consumer import BuildConsumer, ChangeConsumer
from worker.db import autovacuum_warning, create_pool
from worker.errors import TRANSIENT_ERRORS
from worker.freshness import FreshnessTracker
from worker.idle import IdleProbe, QueuesOnChannel, stop_when_idle
from worker.relay import OutboxRelay
from worker.scheduler import Scheduler
from worker.settings import Settings
from worker.settle import Settler
from worker.topology import BUILD_QUEUE, CONTACT_CHANGES_QUEUE, WORK_QUEUES, declare

log = structlog.get_logger(__name__)


@dataclass
class Consumers:
    builds: BuildConsumer
    changes: ChangeConsumer
    tags: list[tuple[aio_pika.abc.AbstractRobustQueue, str]]
    channels: Mapping[str, AbstractChannel]  # by queue name: "setup" declared the topology

    @property
    def idle(self) -> bool:
        return not self.builds.in_flight.tasks and self.changes.idle


async def _subscribe(
    connection: AbstractRobustConnection,
    pool: asyncpg.Pool,
    settings: Settings,
    freshness: FreshnessTracker,
) -> Consumers:
    setup = await connection.channel()
    await declare(setup, settings.retry_delays_s)
    build_channel = await connection.channel()
    await build_channel.set_qos(prefetch_count=settings.build_concurrency)
    change_channel = await connection.channel()
    await change_channel.set_qos(prefetch_count=settings.change_prefetch)
    delays = settings.retry_delays_s
    builds = BuildConsumer(pool, Settler(build_channel, BUILD_QUEUE, delays), settings)
    changes = ChangeConsumer(
        pool, Settler(change_channel, CONTACT_CHANGES_QUEUE, delays), settings, freshness
    )
    # declare_queue (passive) rather than get_queue(ensure=False): only declared queues are
    # re-subscribed by the robust channel after a reconnect.
    build_queue = await build_channel.declare_queue(BUILD_QUEUE.name, passive=True)
    change_queue = await change_channel.declare_queue(CONTACT_CHANGES_QUEUE.name, passive=True)
    tags = [
        (build_queue, await build_queue.consume(builds.on_message)),
        (change_queue, await change_queue.consume(changes.on_message)),
    ]
    channels = {
        "setup": setup,
        BUILD_QUEUE.name: build_channel,
        CONTACT_CHANGES_QUEUE.name: change_channel,
    }
    return Consumers(builds, changes, tags, channels)


def _idle_probe(
    consumers: Consumers, pool: asyncpg.Pool, settings: Settings, relay: bool
) -> IdleProbe:
    delay_queues = [q.retry_queue(d) for q in WORK_QUEUES for d in set(settings.retry_delays_s)]
    queues = [
        # Each work queue on its consumer's channel (see QueuesOnChannel).
        *(QueuesOnChannel(consumers.channels[q.name], [q.name]) for q in WORK_QUEUES),
        QueuesOnChannel(consumers.channels["setup"], sorted(delay_queues)),
    ]
    return IdleProbe(pool, queues, lambda: consumers.idle, count_outbox=relay)


@asynccontextmanager
async def _metrics_server(settings: Settings) -> AsyncIterator[int]:
    server, thread = start_http_server(settings.worker_metrics_port, settings.worker_metrics_host)
    port = server.server_port
    log.info("worker.metrics", url=f"http://{settings.worker_metrics_host}:{port}/metrics")
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    *,
    metrics: bool = True,
    ready: asyncio.Event | None = None,
    relay: bool | None = None,
    until_idle: bool = False,
) -> None:
    """Run until `stop` is set, or with `until_idle` also until there is nothing left to do
    (then `stop` is set here); `ready` is set once the consumers are subscribed. The outbox
    relay runs here when `relay` (default: the outbox_relay_enabled setting) is true."""
    run_relay = settings.outbox_relay_enabled if relay is None else relay
    pool = await create_pool(
        settings.database_url,
        # No connection at start: a worker starting while PostgreSQL is away still consumes,
        # and its builds retry through the delay queues until the database is back.
        min_size=0,
        # Builds, a change batch's connections, the scheduler, the relay, and one to spare.
        max_size=settings.build_concurrency + settings.change_parallelism + 3,
        statement_timeout_ms=settings.statement_timeout_ms,
        application_name="segments-worker",
    )
    connection = await connect_consumers(settings)
    freshness = FreshnessTracker(settings)
    try:
        await _register(freshness, pool)
        consumers = await _subscribe(connection, pool, settings, freshness)
        scheduler = Scheduler(settings, pool)
        scheduler_task = asyncio.create_task(scheduler.run(stop))
        sweep_task = asyncio.create_task(consumers.changes.sweep_pending(stop))
        ticks = freshness.run(pool, await connection.channel(), stop)
        background = [scheduler_task, sweep_task, asyncio.create_task(ticks)]
        if until_idle:
            probe = _idle_probe(consumers, pool, settings, run_relay)
            background.append(asyncio.create_task(stop_when_idle(probe, stop)))
        async with AsyncExitStack() as stack:
            if run_relay:
                await stack.enter_async_context(OutboxRelay(pool, settings))
            if metrics:
                await stack.enter_async_context(_metrics_server(settings))
            log.info("worker.started", build_concurrency=settings.build_concurrency)
            if ready is not None:
                ready.set()
            await stop.wait()
            await _drain(consumers, settings.shutdown_grace_s)
            await asyncio.gather(*background)
            await _unregister(freshness, pool)
    finally:
        await connection.close()
        await pool.close()
        log.info("worker.stopped")


async def _register(freshness: FreshnessTracker, pool: asyncpg.Pool) -> None:
    """Before consuming, when the database is there (else the tick loop registers later); and
    a word to the operator if the server does not vacuum."""
    try:
        async with pool.acquire() as conn:
            await freshness.register(conn)
            if warning := await autovacuum_warning(conn):
                log.warning("database.autovacuum_off", hint=warning)
    except TRANSIENT_ERRORS as exc:
        log.warning("freshness.register_later", error=f"{type(exc).__name__}: {exc}")


async def _unregister(freshness: FreshnessTracker, pool: asyncpg.Pool) -> None:
    try:
        async with pool.acquire() as conn:
            await freshness.unregister(conn)
    except TRANSIENT_ERRORS as exc:  # its row expires instead
        log.warning("freshness.unregister_failed", error=f"{type(exc).__name__}: {exc}")


async def _drain(consumers: Consumers, grace_s: float) -> None:
    log.info("worker.stopping", grace_s=grace_s)
    for queue, tag in consumers.tags:
        try:
            await queue.cancel(tag)
        except (aio_pika.exceptions.AMQPError, RuntimeError) as exc:
            # The channel is closed (the broker is away): nothing more will be delivered on it.
            log.info("worker.cancel_skipped", queue=queue.name, reason=type(exc).__name__)
    consumers.changes.flush()
    finished = all(
        await asyncio.gather(
            consumers.builds.in_flight.wait(grace_s), consumers.changes.in_flight.wait(grace_s)
        )
    )
    if not finished:
        log.warning(
            "worker.unfinished_at_shutdown",
            hint="their messages return to the queue and another worker redoes them",
        )
