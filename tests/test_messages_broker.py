"""The envelope through a real RabbitMQ: the publication time comes back to the millisecond.

A float header would not: AMQP clients encode it as 32-bit, which moved 1796417384.21 to
1796417408.0 and put segments_build_start_delay_seconds off by tens of seconds.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from worker.messages import PUBLISHED_AT_MS_HEADER, amqp_message, published_at

_TOLERANCE_S = 0.005


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(amqp_url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def test_publication_time_survives_the_broker_to_the_millisecond(
    channel: AbstractChannel,
) -> None:
    queue = await channel.declare_queue(exclusive=True)
    before = time.time()
    await channel.default_exchange.publish(amqp_message(b"{}"), routing_key=queue.name)
    after = time.time()

    received = await queue.get(timeout=10, fail=True)
    assert received is not None
    await received.ack()
    header = (received.headers or {})[PUBLISHED_AT_MS_HEADER]
    assert isinstance(header, int)  # not a float: no 32-bit rounding on the way
    sent = published_at(received)
    assert sent is not None
    assert before - _TOLERANCE_S <= sent <= after + _TOLERANCE_S
