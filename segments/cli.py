"""segments: dynamic contact segments for an email platform.

Start here: `segments run` serves everything on this machine (the API at
http://127.0.0.1:8000, interactive docs at /docs); in another terminal,
`segments account create NAME` prints an API key for it. In production run the parts
separately: `segments api`, and any number of `segments worker`.

Settings come from SEGMENTS_* environment variables (the README's Configuration table);
`segments COMMAND --help` tells more about each command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import structlog

from segments.commands import Command, admin, data, export, manage, service
from segments.hints import SETUP_ERRORS, describe
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
        command.add_arguments(
            sub.add_parser(command.name, help=command.help, description=_sentence(command.help))
        )
    return parser


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    run = next(command.run for command in COMMANDS if command.name == args.command)
    try:
        return asyncio.run(run(settings, args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whoever read the output went away (`segments explain ... | head`): nothing to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SETUP_ERRORS as exc:
        log.error("cli.connection_failed", **describe(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
