"""Waiting on conditions with deadlines: tests never sleep a fixed time and hope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Poll `probe` until it returns something truthy; fail with a clear message at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {probe.__qualname__}")
        await asyncio.sleep(interval)


def wait_until(probe: Callable[[], T | None], *, timeout: float, interval: float = 0.1) -> T:
    """`wait_for` for code with no event loop (sync fixtures)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {probe.__qualname__}")
        time.sleep(interval)
