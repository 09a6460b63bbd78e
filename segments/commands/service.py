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
    """Everything on one machine: the API with its outbox relay, the consumers, the scheduler.

    One process, one /metrics: the API's serves the worker's series too (prometheus_client's
    default registry holds both), so the worker opens no metrics port of its own; two
    endpoints serving the same series would be counted twice by a Prometheus scraping both.
    """
    await migrate(settings.database_url)
    stop = stop_on_signals()
    base = f"http://{settings.api_host}:{settings.api_port}"
    log.info(
        "run.starting",
        api=base,
        console=f"{base}/console/",
        docs=f"{base}/docs",
        metrics=f"{base}/metrics",
        stop="Ctrl-C",
    )
    # One relay is enough in one process: the API's; and one /metrics, the API's.
    worker = run_worker(settings, stop, relay=False, metrics=False)
    return await until_stopped(stop, [serve_api(settings, stop), worker])


COMMANDS = (
    Command(
        "api",
        "serve the HTTP API at SEGMENTS_API_HOST:SEGMENTS_API_PORT; its messages reach the "
        "workers through RabbitMQ",
        run_api,
    ),
    Command(
        "worker",
        "build segments and keep them current as contacts change (run as many as you need)",
        run_worker_process,
        worker_arguments,
    ),
    Command(
        "run",
        "start here: migrate, then run the API and a worker together in this one process",
        run_all,
    ),
)
