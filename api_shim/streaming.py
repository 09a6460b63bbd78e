"""Answers streamed from the database: a connection held, in one read-only snapshot, for as
long as the client reads, and released when it is done or gone.

The status line and headers go out before the first row, so whatever can fail (404, 400,
409) is checked before streaming starts. If the database fails midway, the stream is cut
(the chunked body never ends): the client sees an incomplete answer, never a short one
that looks whole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

from api_shim.context import AppContext
from worker.db import Conn

log = structlog.get_logger(__name__)

Produce = Callable[[Conn], AsyncIterator[bytes]]


async def from_pool(
    ctx: AppContext, produce: Produce, *, event: str, **fields: Any
) -> AsyncIterator[bytes]:
    """The chunks `produce` makes from a pooled connection, inside a read-only repeatable
    read transaction (one consistent snapshot across all the cursor's fetches); logs
    `<event>.done`, `.cancelled` (client gone) or `.failed` with bytes sent and duration.
    Waits for a turn first when other streams hold all the connections they may."""
    started = time.monotonic()
    sent = 0
    try:
        async with (
            ctx.streams,
            ctx.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            async for chunk in produce(conn):
                sent += len(chunk)
                yield chunk
    except asyncio.CancelledError:
        log.info(f"{event}.cancelled", bytes=sent, **fields)
        raise
    except Exception:
        log.exception(f"{event}.failed", bytes=sent, **fields)
        raise
    seconds = round(time.monotonic() - started, 3)
    log.info(f"{event}.done", bytes=sent, seconds=seconds, **fields)


async def json_array(items: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A JSON array of runs of comma-separated JSON values, one run per chunk."""
    yield b"["
    first = True
    async for run in items:
        if run:
            yield run if first else b"," + run
            first = False
    yield b"]"
