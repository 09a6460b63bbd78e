"""Settling a delivery, in one place: every handler returns a Decision and only this module
acks, retries or dead-letters.

- Ack: done (or nothing to do).
- Retry: a copy goes to the queue's delay queue for its attempt (TTL, then back to the work
  queue; the delays are SEGMENTS_RETRY_DELAYS_S), then the original is acked. The copy is
  confirmed before the ack, so a crash in between means a duplicate, never a loss.
- DeadLetter: a copy goes to the dead-letter exchange with the reason in its headers, then the
  original is acked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
)

from worker.metrics import MESSAGES
from worker.topology import DEAD_LETTER_EXCHANGE, WorkQueue, retry_delay_s

log = structlog.get_logger(__name__)

ATTEMPT_HEADER = "x-segments-attempt"
REASON_HEADER = "x-segments-reason"
DETAIL_HEADER = "x-segments-detail"
_MAX_DETAIL = 2000


@dataclass(frozen=True)
class Ack:
    reason: str = "ok"


@dataclass(frozen=True)
class Retry:
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class DeadLetter:
    reason: str  # a short code: bad_message, attempts_exhausted, ...
    detail: str


Decision = Ack | Retry | DeadLetter


ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"


def original_routing_key(message: AbstractIncomingMessage) -> str | None:
    """The key the message was first published with (a retried copy comes back through the
    default exchange, keyed by the queue's name)."""
    value = (message.headers or {}).get(ORIGINAL_ROUTING_KEY_HEADER)
    return value if isinstance(value, str) else message.routing_key


def attempt_of(message: AbstractIncomingMessage) -> int:
    """1 for a first delivery, n for the n-th attempt after retries."""
    value = (message.headers or {}).get(ATTEMPT_HEADER, 1)
    return value if isinstance(value, int) and value >= 1 else 1


class Settler:
    def __init__(
        self, channel: AbstractChannel, queue: WorkQueue, retry_delays_s: Sequence[int]
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.retry_delays_s = retry_delays_s
        self._dlx: AbstractExchange | None = None

    async def settle(self, message: AbstractIncomingMessage, decision: Decision) -> bool:
        """False if the channel died first: the broker gives the delivery out again."""
        try:
            await self._settle(message, decision)
            return True
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            # The channel died under us: the broker still holds the delivery unacknowledged
            # and gives it out again; consumers are idempotent, so that is safe.
            log.warning(
                "message.settle_lost",
                queue=self.queue.name,
                message_id=message.message_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            return False

    async def _settle(self, message: AbstractIncomingMessage, decision: Decision) -> None:
        match decision:
            case Ack():
                await message.ack()
                outcome = "acked"
            case Retry():
                attempt = attempt_of(message)
                delay_s = retry_delay_s(attempt, self.retry_delays_s)
                await self.channel.default_exchange.publish(
                    self._copy(message, {ATTEMPT_HEADER: attempt + 1}),
                    routing_key=self.queue.retry_queue(delay_s),
                )
                await message.ack()
                outcome = "retried"
                log.info(
                    "message.retry",
                    queue=self.queue.name,
                    reason=decision.reason,
                    attempt=attempt,
                    delay_s=delay_s,
                    detail=decision.detail[:_MAX_DETAIL],
                )
            case DeadLetter():
                headers = {
                    REASON_HEADER: decision.reason,
                    DETAIL_HEADER: decision.detail[:_MAX_DETAIL],
                }
                dlx = await self._dead_letter_exchange()
                await dlx.publish(self._copy(message, headers), routing_key=self.queue.name)
                await message.ack()
                outcome = "dead_lettered"
                log.error(
                    "message.dead_lettered",
                    queue=self.queue.name,
                    reason=decision.reason,
                    detail=decision.detail[:_MAX_DETAIL],
                    message_id=message.message_id,
                    hint=f"inspect and replay from {self.queue.dead_letter_queue}",
                )
        MESSAGES.labels(self.queue.name, outcome, decision.reason).inc()

    async def _dead_letter_exchange(self) -> AbstractExchange:
        if self._dlx is None:
            self._dlx = await self.channel.get_exchange(DEAD_LETTER_EXCHANGE, ensure=False)
        return self._dlx

    @staticmethod
    def _copy(
        message: AbstractIncomingMessage, extra_headers: Mapping[str, str | int]
    ) -> aio_pika.Message:
        headers = dict(message.headers or {})
        headers.update(extra_headers)
        headers[ORIGINAL_ROUTING_KEY_HEADER] = original_routing_key(message) or ""
        return aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            timestamp=message.timestamp,
        )
