"""The `segments` subcommands, one module per group. Each module exports `COMMANDS`, a tuple
of `Command`; segments/cli.py lists the modules and builds the parser from them."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from worker.settings import Settings

Run = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """For commands that take none."""


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Run
    add_arguments: Callable[[argparse.ArgumentParser], None] = no_arguments


def add_segment_arguments(parser: argparse.ArgumentParser) -> None:
    """SEGMENT (a uuid, or a simple-API number) and --account, for commands about one segment
    (resolved by worker.store.resolve_segment)."""
    parser.add_argument(
        "segment",
        metavar="SEGMENT",
        help="the segment's uuid (the v2 API's `id`), or its simple-API number with --account",
    )
    parser.add_argument(
        "--account", type=UUID, metavar="ACCOUNT_ID", help="the account the segment is in"
    )
