"""`segments api`: serve the app with uvicorn in the caller's event loop, so that
`segments run` can run it beside the worker in one process and stop both its own way."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import Iterator

import structlog
import uvicorn

from api_shim.app import create_app
from worker.settings import Settings

log = structlog.get_logger(__name__)


class CannotListen(OSError):
    """The API's address cannot be bound (the port is in use, or the host is not this
    machine's); raised before anything else starts, with what to do."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        if cause.errno == errno.EADDRINUSE:
            hint = (
                f"another program (or another `segments api`/`run`) already listens on port "
                f"{port}: stop it, or serve on a free port with SEGMENTS_API_PORT"
            )
        else:
            hint = "check SEGMENTS_API_HOST (an address of this machine, e.g. 127.0.0.1)"
        super().__init__(f"the API cannot listen on {host}:{port} ({reason}): {hint}")
        self.errno = cause.errno


def listening_socket(host: str, port: int) -> socket.socket:
    """The API's socket, bound before the app starts: a busy port then stops `segments api`
    at once, with the reason, instead of after the lifespan has connected to everything."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CannotListen(host, port, exc) from None
    return sock


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
    sock = listening_socket(settings.api_host, settings.api_port)
    server = uvicorn_server(settings)
    loop = asyncio.get_running_loop()
    signals: tuple[signal.Signals, ...] = ()
    if stop is None:
        stop = asyncio.Event()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(_exit_when_set(stop, server))
    log.info("api.serving", host=settings.api_host, port=sock.getsockname()[1])
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        watcher.cancel()
        for sig in signals:
            loop.remove_signal_handler(sig)
        log.info("api.stopped")


async def _exit_when_set(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True
