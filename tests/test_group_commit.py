"""When the change consumer starts a batch (group commit): a lone change at once, changes that
arrive during a batch together right after it, and a burst read at once as one batch. The
policy alone: the batch's database work is replaced by a step the test releases, so these
tests need no broker or database, and wait for no timer."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.waiting import wait_for
from worker.batching import Batch
from worker.consumer import ChangeConsumer
from worker.settings import Settings


@dataclass
class Delivery:
    """What the consumer reads of an incoming message."""

    body: bytes
    type: str | None = None  # a freshness tick has one
    headers: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False
    message_id: str | None = None


def _delivery() -> Any:
    change = {
        "schema": 1,
        "account_id": str(uuid.uuid4()),
        "contact_ids": [str(uuid.uuid4())],
        "changed_at": datetime.now(UTC).isoformat(),
    }
    return Delivery(json.dumps(change).encode())


class RecordingConsumer(ChangeConsumer):
    """Applies a batch by recording it and waiting until the test releases it."""

    def __init__(self) -> None:
        super().__init__(None, None, Settings(change_batch_window_ms=0))  # type: ignore[arg-type]
        self.batches: list[list[Any]] = []
        self.release = asyncio.Event()

    async def _apply(self, batch: Batch[Any]) -> None:
        self.batches.append(batch.deliveries)
        try:
            await self.release.wait()
        finally:
            self._applying = False
        self.flush()


async def _recorded(consumer: RecordingConsumer, count: int) -> None:
    """Until the consumer has started `count` batches (its call_later(0) has run), with a
    deadline rather than a fixed number of event-loop turns."""

    async def started() -> bool:
        return len(consumer.batches) >= count

    await wait_for(started, timeout=5)


async def test_a_lone_change_starts_a_batch_at_once() -> None:
    consumer = RecordingConsumer()
    lone = _delivery()
    await consumer.on_message(lone)
    await _recorded(consumer, 1)
    assert consumer.batches == [[lone]]


async def test_changes_that_arrive_during_a_batch_form_the_next_one_when_it_is_done() -> None:
    consumer = RecordingConsumer()
    first, second, third = _delivery(), _delivery(), _delivery()
    await consumer.on_message(first)
    await _recorded(consumer, 1)
    await consumer.on_message(second)
    await consumer.on_message(third)
    # Nothing is scheduled for them while a batch is applied: they wait in the batcher.
    assert consumer._timer is None and len(consumer.batcher) == 2
    assert consumer.batches == [[first]]  # the others wait for it
    consumer.release.set()
    await _recorded(consumer, 2)
    assert consumer.batches == [[first], [second, third]]


async def test_a_burst_read_in_one_turn_is_one_batch() -> None:
    consumer = RecordingConsumer()
    burst = [_delivery() for _ in range(5)]
    for delivery in burst:
        await consumer.on_message(delivery)
    await _recorded(consumer, 1)
    assert consumer.batches == [burst]
