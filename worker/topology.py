"""The broker topology, declared once, in code, idempotently (worker, API relay and tests).

exchange `segments` (topic) --segment.*-------> quorum queue `segments.build`
                            --contact.changed-> quorum queue `segments.contact_changes`
each work queue Q:
  Q.retry.<N>s  quorum, message TTL N s, dead-letters back into Q (backoff, no sleeps)
  Q.dlq         quorum, bound to `segments.dlx` with key Q: poison messages and messages
                out of attempts, with the reason in the `x-segments-reason` header
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from worker.messages import CONTACT_CHANGED, EXCHANGE

DEAD_LETTER_EXCHANGE = "segments.dlx"
# Backoff before attempt 2, 3, 4, ...; the last delay repeats until MAX_ATTEMPTS.
RETRY_DELAYS_S = (5, 30, 120)
MAX_ATTEMPTS = 5
# Guard against crash loops (a message that kills the worker before it can be settled):
# after this many redeliveries RabbitMQ dead-letters it itself.
DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class WorkQueue:
    name: str
    binding_keys: tuple[str, ...]

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"

    def retry_queue(self, attempt: int) -> str:
        """The delay queue a message goes to after failing `attempt` (1-based) times."""
        return f"{self.name}.retry.{retry_delay_s(attempt)}s"


def retry_delay_s(attempt: int) -> int:
    return RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S)) - 1]


BUILD_QUEUE = WorkQueue("segments.build", ("segment.*",))
CONTACT_CHANGES_QUEUE = WorkQueue("segments.contact_changes", (CONTACT_CHANGED,))
WORK_QUEUES = (BUILD_QUEUE, CONTACT_CHANGES_QUEUE)

_QUORUM: dict[str, Any] = {
    "x-queue-type": "quorum",
    # Dead-lettering that keeps messages (DESIGN.md 7: at-most-once is the default).
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


async def declare(channel: AbstractChannel) -> AbstractExchange:
    """Declare everything; safe to call from every process at every start."""
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    for queue in WORK_QUEUES:
        work = await channel.declare_queue(
            queue.name,
            durable=True,
            arguments={
                **_QUORUM,
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                "x-dead-letter-routing-key": queue.name,
                "x-delivery-limit": DELIVERY_LIMIT,
            },
        )
        for key in queue.binding_keys:
            await work.bind(exchange, routing_key=key)
        dlq = await channel.declare_queue(
            queue.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq.bind(dlx, routing_key=queue.name)
        for delay in sorted(set(RETRY_DELAYS_S)):
            await channel.declare_queue(
                f"{queue.name}.retry.{delay}s",
                durable=True,
                arguments={
                    **_QUORUM,
                    "x-message-ttl": delay * 1000,
                    # Expired messages go back to the work queue through the default exchange.
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": queue.name,
                },
            )
    return exchange
