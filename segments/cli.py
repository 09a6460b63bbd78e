"""segments: dynamic contact segments for an email platform.

Run the whole service on one machine with `segments run`, or its parts separately
(`segments api`, any number of `segments worker`). Settings come from SEGMENTS_* environment
variables (see the README's Configuration table)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import structlog

from segments.commands import Command, admin, data, export, manage, service
from worker.logs import configure_logging
from worker.settings import load_settings

log = structlog.get_logger(__name__)

COMMANDS: tuple[Command, ...] = (
    *admin.COMMANDS,
    *data.COMMANDS,
    *export.COMMANDS,
    *manage.COMMANDS,
    *service.COMMANDS,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segments", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_arguments(sub.add_parser(command.name, help=command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    run = next(command.run for command in COMMANDS if command.name == args.command)
    try:
        return asyncio.run(run(settings, args))
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
