"""The ASGI app: routers mounted, middleware in order, and a lifespan that owns the
PostgreSQL pool and the outbox relay (with its broker connection) and closes them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from api_shim import (
    console,
    contact_lookup,
    contacts,
    docs,
    errors,
    explain,
    export,
    fields,
    health,
    keys,
    lists,
    membership,
    preview,
    simple,
    v1,
    v2,
)
from api_shim.context import AppContext
from api_shim.metrics import RequestMetrics
from api_shim.middleware import AccessLog, BodyLimit, RateLimitHeaders
from api_shim.ratelimit import RateLimiter
from worker.db import create_pool
from worker.relay import OutboxRelay
from worker.settings import Settings

DESCRIPTION = """Segments over contacts, lists and engagement events, in three dialects.

Authenticate with `X-API-Key: <key>` (the v1 API also accepts `Authorization: Bearer <key>`).
Every error answers `{"errors": [{"loc", "msg", "type"}]}`; `loc` is a dotted location in the
request such as `rules_json.any[0].all[2].value`, or null.
"""
_POOL_CLOSE_TIMEOUT_S = 10.0


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(
            settings.database_url,
            min_size=settings.api_pool_min_size,
            max_size=settings.api_pool_max_size,
            statement_timeout_ms=settings.api_statement_timeout_ms,
            application_name="segments-api",
            # A request never waits on a hung database much past its statement timeout.
            command_timeout_s=settings.api_statement_timeout_ms / 1000 + 5,
        )
        try:
            async with contextlib.AsyncExitStack() as stack:
                relay = None
                if settings.outbox_relay_enabled:
                    relay = await stack.enter_async_context(OutboxRelay(pool, settings))
                limiter = RateLimiter(settings.api_rate_limit_per_minute)
                streams = asyncio.Semaphore(max(1, settings.api_pool_max_size - 2))
                app.state.ctx = AppContext(settings, pool, limiter, relay, streams)
                yield
        finally:
            try:
                # Waits for requests still holding connections, but not forever.
                await asyncio.wait_for(pool.close(), timeout=_POOL_CLOSE_TIMEOUT_S)
            except TimeoutError:
                pool.terminate()

    app = FastAPI(
        title="segments",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,  # routes accept both forms themselves (api_shim.routing)
        docs_url=None,  # api_shim.docs serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    docs.install(app)
    console.install(app)
    errors.install(app)
    for router in (
        v2.router,
        preview.router,
        export.router,
        explain.router,
        membership.router,
        v1.router,
        simple.router,
        contacts.router,
        lists.router,
        fields.router,
        keys.router,
        contact_lookup.router,
        health.router,
    ):
        app.include_router(router)
    # Outermost last: metrics see every answer, including a 413 from the body limit.
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(RequestMetrics)
    if settings.api_access_log:
        app.add_middleware(AccessLog)
    return app
