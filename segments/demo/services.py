"""The API and a worker inside the demo's process, for when none is running (as `segments
run` would start them), stopped cleanly when the demo ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from segments.demo.client import DemoError, api_answers
from worker.runner import run_worker
from worker.settings import Settings

# Starts the API until the event is set. Passed in by the composition root (segments.cli), so
# tests can give the demo an API of their own.
ServeApi = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]


def api_settings(settings: Settings, api_url: str) -> Settings:
    """`settings` with the API listening where `api_url` points."""
    parts = urlsplit(api_url)
    if parts.scheme != "http" or not parts.hostname:
        raise DemoError(f"--api-url {api_url!r}: the demo can only start an API at an http:// URL")
    port = parts.port or 80
    # The demo's own requests are not worth a log line each between its tables.
    return settings.model_copy(
        update={"api_host": parts.hostname, "api_port": port, "api_access_log": False}
    )


class InProcessServices:
    def __init__(self, settings: Settings, serve_api: ServeApi) -> None:
        self._settings = settings
        self._serve_api = serve_api
        self._stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self, api_url: str, timeout_s: float = 30.0) -> None:
        """Start both; return once the worker consumes and the API answers."""
        worker_ready = asyncio.Event()
        self.tasks = [
            asyncio.create_task(self._serve_api(self._settings, self._stop), name="api"),
            asyncio.create_task(
                # One /metrics in one process (the API's), as under `segments run`.
                run_worker(self._settings, self._stop, ready=worker_ready, metrics=False),
                name="worker",
            ),
        ]
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not (worker_ready.is_set() and await api_answers(api_url, timeout_s=1.0)):
            self.raise_if_ended()
            if asyncio.get_running_loop().time() > deadline:
                raise DemoError(f"the in-process API and worker did not start in {timeout_s:.0f}s")
            await asyncio.sleep(0.1)

    def raise_if_ended(self) -> None:
        """Raise DemoError if the API or the worker stopped on its own (a port in use, the
        broker away, ...)."""
        for task in self.tasks:
            if task.done():
                error = None if task.cancelled() else task.exception()
                reason = f"{type(error).__name__}: {error}" if error else "it stopped"
                raise DemoError(f"the in-process {task.get_name()} failed: {reason}")

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
