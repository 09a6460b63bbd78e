"""The broker topology, declared once, in code, idempotently (worker, API relay and tests).

exchange `segments` (topic) --segment.*-------> quorum queue `segments.build`
                            --contact.changed-> quorum queue `segments.contact_changes`
each work queue Q:
  Q.retry.<N>s  quorum, message TTL N s, dead-letters back into Q (backoff, no sleeps);
                one per delay of SEGMENTS_RETRY_DELAYS_S
  Q.dlq         quorum, bound to `segments.dlx` with key Q: poison messages and messages
                out of attempts, with the reason in the `x-segments-reason` header

A queue's TTL is one of its arguments, and RabbitMQ refuses to redeclare a queue with other
arguments (PRECONDITION_FAILED). So a delay queue is named for its delay: changing the delays
declares new queues and never redeclares an old one. A delay queue no longer configured keeps
sending what it holds back to its work queue; delete it once it is empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from worker.messages import CONTACT_CHANGED, EXCHANGE
from worker.settings import Settings

DEAD_LETTER_EXCHANGE = "segments.dlx"
# What processes that have no settings at hand declare (benchmarks, tests).
DEFAULT_RETRY_DELAYS_S: tuple[int, ...] = Settings.model_fields["retry_delays_s"].default
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

    def retry_queue(self, delay_s: int) -> str:
        """The delay queue that holds a message for `delay_s` seconds."""
        return f"{self.name}.retry.{delay_s}s"


def retry_delay_s(attempt: int, delays_s: Sequence[int]) -> int:
    """The backoff after failing `attempt` (1-based) times: the delays in turn, the last one
    repeating."""
    return delays_s[min(attempt, len(delays_s)) - 1]


BUILD_QUEUE = WorkQueue("segments.build", ("segment.*",))
CONTACT_CHANGES_QUEUE = WorkQueue("segments.contact_changes", (CONTACT_CHANGED,))
WORK_QUEUES = (BUILD_QUEUE, CONTACT_CHANGES_QUEUE)

_QUORUM: dict[str, Any] = {
    "x-queue-type": "quorum",
    # Dead-lettering that keeps messages (at-most-once is the default).
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}


async def declare(
    channel: AbstractChannel, retry_delays_s: Sequence[int] = DEFAULT_RETRY_DELAYS_S
) -> AbstractExchange:
    """Declare everything; safe to call from every process at every start, with any delays."""
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
        for delay in sorted(set(retry_delays_s)):
            await channel.declare_queue(
                queue.retry_queue(delay),
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
