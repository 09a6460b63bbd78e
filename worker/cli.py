"""The `segments` command line. This is the composition root: it wires settings, logging and
the parts of the service together, so it is the one module that may start the API too."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from worker.accounts import create_account
from worker.db import connect
from worker.logs import configure_logging
from worker.migrations import migrate
from worker.settings import Settings, load_settings

log = structlog.get_logger(__name__)

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    applied = await migrate(settings.database_url)
    log.info("migrate.done", applied=applied)
    return 0


async def cmd_account_create(settings: Settings, args: argparse.Namespace) -> int:
    await migrate(settings.database_url)
    conn = await connect(settings.database_url)
    try:
        account = await create_account(conn, args.name)
    finally:
        await conn.close()
    print(json.dumps({"account_id": str(account.account_id), "api_key": account.api_key}))
    return 0


async def cmd_explain(settings: Settings, args: argparse.Namespace) -> int:
    from worker.explain import explain_segment

    conn = await connect(settings.database_url)
    try:
        print(await explain_segment(conn, args.segment_id, analyze=args.analyze))
    finally:
        await conn.close()
    return 0


async def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from worker.importer.command import run_command

    return await run_command(settings, args)


async def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    await migrate(settings.database_url)
    stop = _stop_on_signals()
    return await _until_stopped(stop, [_serve_api(settings, stop)])


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: the signal to finish in-flight work and exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from worker.runner import run_worker

    await migrate(settings.database_url)
    stop = _stop_on_signals()
    return await _until_stopped(stop, [run_worker(settings, stop)])


async def _serve_api(settings: Settings, stop: asyncio.Event) -> None:
    """The API (with its outbox relay) until `stop`."""
    from api_shim.server import serve

    try:
        await serve(settings, stop)
    except SystemExit as exc:  # uvicorn exits the process when it cannot bind its port
        raise RuntimeError("the API could not start (is SEGMENTS_API_PORT in use?)") from exc


async def _until_stopped(stop: asyncio.Event, parts: list[Coroutine[Any, Any, None]]) -> int:
    """Run the parts until `stop` is set or one of them ends; then stop all, cleanly."""
    tasks = [asyncio.create_task(part) for part in parts]
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({*tasks, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()  # whichever ended first (a signal, or a part that failed), end the rest
    await asyncio.gather(*tasks, return_exceptions=True)
    failures = [t.exception() for t in tasks if t.exception() is not None]
    for failure in failures:
        log.error("process.failed", error=f"{type(failure).__name__}: {failure}")
    return 1 if failures else 0


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Everything on one machine: the API with its outbox relay, the consumers, the scheduler."""
    from worker.runner import run_worker

    await migrate(settings.database_url)
    stop = _stop_on_signals()
    base = f"http://{settings.api_host}:{settings.api_port}"
    log.info(
        "run.starting",
        api=base,
        docs=f"{base}/docs",
        api_metrics=f"{base}/metrics",
        worker_metrics=f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics",
        stop="Ctrl-C",
    )
    return await _until_stopped(stop, [_serve_api(settings, stop), run_worker(settings, stop)])


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Load a demo data set and show segments built and kept current, through the API (run
    here, with a worker, if none answers at --api-url)."""
    from worker.demo.command import run_command

    return await run_command(settings, args, _stop_on_signals(), _serve_api)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segments", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the database if missing and apply sql/ migrations")
    account = sub.add_parser("account", help="manage accounts")
    account_sub = account.add_subparsers(dest="account_command", required=True)
    create = account_sub.add_parser("create", help='prints {"account_id":..., "api_key":...}')
    create.add_argument("name")
    explain = sub.add_parser("explain", help="print a segment's compiled SQL and its plan")
    explain.add_argument("segment_id")
    explain.add_argument("--analyze", action="store_true", help="run it (EXPLAIN ANALYZE)")
    from worker.importer.command import add_arguments as add_import_arguments

    add_import_arguments(
        sub.add_parser("import", help="load contacts, events or list members from CSV/NDJSON")
    )
    sub.add_parser("api", help="serve the HTTP API (and the outbox relay)")
    sub.add_parser("worker", help="consume segment and contact messages; refresh schedule")
    sub.add_parser("run", help="migrate, then run every part of the service on this machine")
    from worker.demo import add_arguments as add_demo_arguments

    add_demo_arguments(
        sub.add_parser("demo", help="load demo data, build segments through the API, watch them")
    )
    return parser


_COMMANDS: dict[str, Command] = {
    "migrate": cmd_migrate,
    "account": cmd_account_create,
    "explain": cmd_explain,
    "import": cmd_import,
    "api": cmd_api,
    "worker": cmd_worker,
    "run": cmd_run,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        return asyncio.run(_COMMANDS[args.command](settings, args))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        log.error(
            "cli.connection_failed",
            error=str(exc),
            hint="is PostgreSQL running and SEGMENTS_DATABASE_URL right?",
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
