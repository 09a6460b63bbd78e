"""How the long-running commands start and stop: signals, running parts side by side, and the
API server (the one place that starts `api_shim`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any

import structlog

from segments.hints import describe
from worker.settings import Settings

log = structlog.get_logger(__name__)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the signal to finish in-flight work and exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_api(settings: Settings, stop: asyncio.Event) -> None:
    """The API (with its outbox relay) until `stop`."""
    from api_shim.server import serve  # imported here: `segments worker` never loads the API

    try:
        await serve(settings, stop)
    except SystemExit as exc:  # uvicorn exits the process when its app cannot start
        raise RuntimeError("the API could not start (see the lines above)") from exc


async def until_stopped(stop: asyncio.Event, parts: list[Coroutine[Any, Any, None]]) -> int:
    """Run the parts until `stop` is set or one of them ends; then stop all, cleanly."""
    tasks = [asyncio.create_task(part) for part in parts]
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({*tasks, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()  # whichever ended first (a signal, or a part that failed), end the rest
    await asyncio.gather(*tasks, return_exceptions=True)
    failures = [t.exception() for t in tasks if t.exception() is not None]
    for failure in failures:
        if failure is not None:
            log.error("process.failed", **describe(failure))
    return 1 if failures else 0
