"""What a request handler may use: opened by the app's lifespan, reached through the request."""

from __future__ import annotations

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


def app_context(request: Request) -> AppContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, AppContext), "the app's lifespan has not run"
    return ctx
