"""`segments api`: serve the app with uvicorn in the caller's event loop, so that
`segments run` can run it beside the worker in one process and stop both its own way."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import structlog
import uvicorn

from api_shim.app import create_app
from worker.settings import Settings

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would take SIGINT/SIGTERM for itself and re-raise them once it has shut
        # down, killing whatever else runs in this process; serve() handles them instead.
        yield


def uvicorn_server(settings: Settings) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        lifespan="on",
        log_config=None,  # logging is structlog's (worker.logs); no second configuration
        access_log=False,  # api_shim.middleware.AccessLog logs each request, as structlog does
        proxy_headers=False,
        timeout_keep_alive=30,  # idle clients must not hold connections forever
    )
    return _Server(config)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set or, without one, until SIGINT or SIGTERM. Shutdown is
    graceful: requests in flight finish, then the lifespan stops the relay and closes the
    pool."""
    server = uvicorn_server(settings)
    loop = asyncio.get_running_loop()
    signals: tuple[signal.Signals, ...] = ()
    if stop is None:
        stop = asyncio.Event()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_exit_when_set(stop, server))
    log.info("api.serving", host=settings.api_host, port=settings.api_port)
    try:
        await server.serve()
    finally:
        watcher.cancel()
        for sig in signals:
            loop.remove_signal_handler(sig)
        log.info("api.stopped")


async def _exit_when_set(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True
