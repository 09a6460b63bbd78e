"""`segments api`, `segments worker`, `segments run`: the long-running parts of the service."""

from __future__ import annotations

import argparse

import structlog

from segments.commands import Command
from segments.lifecycle import serve_api, stop_on_signals, until_stopped
from worker.migrations import migrate
from worker.runner import run_worker
from worker.settings import Settings

log = structlog.get_logger(__name__)


async def run_api(settings: Settings, args: argparse.Namespace) -> int:
    await migrate(settings.database_url)
    stop = stop_on_signals()
    return await until_stopped(stop, [serve_api(settings, stop)])


async def run_worker_process(settings: Settings, args: argparse.Namespace) -> int:
    await migrate(settings.database_url)
    stop = stop_on_signals()
    return await until_stopped(stop, [run_worker(settings, stop, until_idle=args.until_idle)])


def worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--until-idle",
        action="store_true",
        help="exit (status 0) once there is nothing left to do, for tests and batch jobs: the"
        " build and contact-change queues and their delay queues have no message ready, this"
        " worker holds none, no change waits in segment_pending_changes and (if it runs the"
        " relay) the outbox is sent, throughout a quiet half second. Waits out retries.",
    )


async def run_all(settings: Settings, args: argparse.Namespace) -> int:
    """Everything on one machine: the API with its outbox relay, the consumers, the scheduler."""
    await migrate(settings.database_url)
    stop = stop_on_signals()
    base = f"http://{settings.api_host}:{settings.api_port}"
    log.info(
        "run.starting",
        api=base,
        docs=f"{base}/docs",
        api_metrics=f"{base}/metrics",
        worker_metrics=f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics",
        stop="Ctrl-C",
    )
    # One relay is enough in one process: the API's.
    worker = run_worker(settings, stop, relay=False)
    return await until_stopped(stop, [serve_api(settings, stop), worker])


COMMANDS = (
    Command("api", "serve the HTTP API (and the outbox relay)", run_api),
    Command(
        "worker",
        "build segments and keep them current (consumers, scheduler, outbox relay)",
        run_worker_process,
        worker_arguments,
    ),
    Command("run", "migrate, then run every part of the service on this machine", run_all),
)
