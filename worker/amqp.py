"""The consumers' broker connection: aio-pika's robust connection with deadlines, and one
log line per loss and per recovery.

- `heartbeat`: a broker that stops answering without closing the connection (a partition,
  a hung node) is noticed within about three heartbeats, and the connection replaced.
- `timeout`: every (re)connection attempt ends after it, so a hung broker never holds a
  reconnect forever.
- aio-pika itself logs each failed reconnection attempt; those lines are silenced in
  worker/logs.py in favour of `amqp.connection_lost` (warning, with its cause) and
  `amqp.reconnected` (info, with how long it was down).
"""

from __future__ import annotations

import time

import structlog
from aio_pika.abc import AbstractRobustConnection

from worker.broker import connect_robust
from worker.settings import Settings

log = structlog.get_logger(__name__)


async def connect_consumers(settings: Settings) -> AbstractRobustConnection:
    # Every node of a cluster in turn (worker.broker), with the deadlines above.
    connection = await connect_robust(
        settings.amqp_url,
        timeout=settings.amqp_timeout_s,
        heartbeat=settings.amqp_heartbeat_s,
        reconnect_interval=settings.amqp_reconnect_interval_s,
    )
    lost_at: list[float] = []

    def on_lost(_: object, cause: BaseException | None = None) -> None:
        if lost_at or connection.close_called:
            return  # one warning per loss, however many attempts follow; none for our close
        lost_at.append(time.monotonic())
        log.warning(
            "amqp.connection_lost",
            cause=f"{type(cause).__name__}: {cause}" if cause else "closed",
            retry_every_s=settings.amqp_reconnect_interval_s,
            hint="reconnecting on its own; unacknowledged messages return to their queues",
        )

    def on_back(_: object) -> None:
        down_s = round(time.monotonic() - lost_at.pop(), 1) if lost_at else None
        lost_at.clear()
        log.info("amqp.reconnected", down_s=down_s)

    connection.close_callbacks.add(on_lost)
    connection.reconnect_callbacks.add(on_back)
    return connection
