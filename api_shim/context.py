"""What a request handler may use: opened by the app's lifespan, reached through the request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
from fastapi import Request

from api_shim.ratelimit import RateLimiter
from worker.relay import OutboxRelay
from worker.settings import Settings


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    pool: asyncpg.Pool
    limiter: RateLimiter
    relay: OutboxRelay | None  # None when this process runs no relay
    # Streamed answers (api_shim/streaming.py) hold a connection for as long as the client
    # reads; they take turns for all but two of the pool, so other requests always find one.
    streams: asyncio.Semaphore


def app_context(request: Request) -> AppContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, AppContext), "the app's lifespan has not run"
    return ctx
