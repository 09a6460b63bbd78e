"""The broker topology declares idempotently, with any retry delays, and retry queues route
back to their work queue."""

from __future__ import annotations

import aio_pika

from tests.waiting import wait_for
from worker.topology import BUILD_QUEUE, DEFAULT_RETRY_DELAYS_S, WORK_QUEUES, declare, retry_delay_s


def test_each_retry_waits_the_next_delay_and_the_last_one_repeats() -> None:
    assert DEFAULT_RETRY_DELAYS_S == (5, 30, 120)
    assert [retry_delay_s(attempt, (5, 30, 120)) for attempt in range(1, 6)] == [
        5,
        30,
        120,
        120,
        120,
    ]
    assert BUILD_QUEUE.retry_queue(30) == "segments.build.retry.30s"


async def test_declare_twice_and_retry_queue_returns_messages(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare(channel)
        await declare(channel)  # idempotent: same arguments, no error
        # Other delays on the same broker: new queues, no PRECONDITION_FAILED on the old ones.
        await declare(channel, (1, 30))
        for queue in WORK_QUEUES:
            await channel.get_queue(queue.dead_letter_queue)
            for delay in (1, 5, 30, 120):
                await channel.get_queue(queue.retry_queue(delay))
        # A message placed in a retry queue comes back to the work queue after its TTL.
        await channel.default_exchange.publish(
            aio_pika.Message(b'{"probe": true}', delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=BUILD_QUEUE.retry_queue(1),
        )
        work = await channel.get_queue(BUILD_QUEUE.name)

        async def returned() -> aio_pika.abc.AbstractIncomingMessage | None:
            return await work.get(fail=False)

        message = await wait_for(returned, timeout=30)
        await message.ack()
        assert message.body == b'{"probe": true}'
        assert message.headers["x-death"][0]["reason"] == "expired"
    finally:
        await connection.close()
