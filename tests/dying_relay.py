"""An outbox relay that kills itself (SIGKILL, as a crash would) right after the broker
confirmed its Nth publish, before the rows are marked sent: the window in which a relay's
death makes another publish the same rows again.

    python -m tests.dying_relay DATABASE_URL AMQP_URL N
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg
from aio_pika.abc import AbstractExchange

from worker.db import create_pool
from worker.relay import OutboxRelay
from worker.settings import Settings


class DyingRelay(OutboxRelay):
    def __init__(self, pool: asyncpg.Pool, settings: Settings, die_after: int) -> None:
        super().__init__(pool, settings)
        self.left = die_after

    async def _publish(self, exchange: AbstractExchange, row: asyncpg.Record) -> None:
        await super()._publish(exchange, row)  # returns once the broker confirmed
        self.left -= 1
        if self.left == 0:
            os.kill(os.getpid(), signal.SIGKILL)


async def main(database_url: str, amqp_url: str, die_after: int) -> None:
    settings = Settings(
        database_url=database_url, amqp_url=amqp_url, outbox_batch_size=50, log_level="warning"
    )
    pool = await create_pool(database_url, min_size=1, max_size=2)
    async with DyingRelay(pool, settings, die_after):
        await asyncio.Event().wait()  # until it dies


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
