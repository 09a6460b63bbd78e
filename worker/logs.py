"""Structured logging: JSON in production, key=value on a terminal."""

from __future__ import annotations

import logging
import sys
import threading

import structlog


class _LibraryHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler configure_logging puts on the standard library's root logger."""


def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    use_console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    levelno = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(levelno),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_library_logs(renderer, levelno)


def _route_library_logs(renderer: structlog.typing.Processor, levelno: int) -> None:
    """Libraries (aio-pika, aiormq, uvicorn, asyncio) log through the standard library: render
    their warnings and errors like ours, so a JSON log stays JSON and nothing prints bare."""
    handler = _LibraryHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,  # the traceback inside the line
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LibraryHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(levelno, logging.WARNING))  # their info lines are not ours to show
    # aiormq logs every failed connection attempt bare; the relay (outbox.relay_failed) and
    # the commands (process.failed, with a hint) report the same failure with its context.
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)
    # aio-pika's robust connection warns at every reconnection attempt; worker/amqp.py says
    # it once (amqp.connection_lost, amqp.reconnected). Its errors still show.
    logging.getLogger("aio_pika.robust_connection").setLevel(logging.ERROR)
    handler.addFilter(_drop_closing_channel_noise)
    # An exception nobody caught (in the main thread, in a thread such as /metrics's, or one
    # Python can only ignore, in a finaliser) would print a bare multi-line traceback: log
    # it as one line instead.
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda args: _log_uncaught(
        args.exc_type, args.exc_value, args.exc_traceback
    )


def _log_uncaught(kind: type[BaseException], exc: BaseException | None, tb: object) -> None:
    logging.getLogger("segments").critical(
        "process.uncaught_exception",
        exc_info=(kind, exc, tb),  # type: ignore[arg-type]
    )


def _drop_closing_channel_noise(record: logging.LogRecord) -> bool:
    """aio-pika logs an error from each robust channel's close callback when the connection
    under it is already gone (ChannelInvalidStateError, "channel closed"): one per channel per
    lost connection, and nothing to act on beyond amqp.connection_lost."""
    return not (
        record.name == "aio_pika.tools" and "RobustChannel._on_close" in record.getMessage()
    )
