"""Deadlines that hold when the network hangs.

`asyncio.wait_for` cancels the late awaitable and then waits for it to finish, and a client
library cleaning up after a cancel on a hung connection (asyncpg sends a cancel request and
resets the connection, aiormq closes a channel) can itself hang just as long. `within`
answers at the deadline and lets the cancelled work end in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """The result of `awaitable`, or TimeoutError after `seconds` without waiting for its
    cancellation to complete."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        return task.result()
    task.cancel()
    task.add_done_callback(_consume)  # its late error, if any, is of no interest now
    raise TimeoutError(f"no answer within {seconds} s")


def _consume(task: asyncio.Future[Any]) -> None:
    with contextlib.suppress(BaseException):
        task.exception()
