"""`segments import` and `segments demo`: getting data in."""

from __future__ import annotations

import argparse

from segments.commands import Command
from segments.demo import add_arguments as demo_arguments
from segments.demo.command import run_command as run_demo_command
from segments.importer.command import add_arguments as import_arguments
from segments.importer.command import run_command as run_import
from segments.lifecycle import serve_api, stop_on_signals
from worker.settings import Settings


async def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Load a demo data set and show segments built and kept current, through the API (run
    here, with a worker, if none answers at --api-url)."""
    return await run_demo_command(settings, args, stop_on_signals(), serve_api)


COMMANDS = (
    Command(
        "import",
        "load contacts, events or list members from CSV/NDJSON",
        run_import,
        import_arguments,
    ),
    Command(
        "demo",
        "a tour in a minute: generated data, segments built through the API, counts that "
        "follow changes",
        run_demo,
        demo_arguments,
    ),
)
