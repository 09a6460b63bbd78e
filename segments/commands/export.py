"""`segments export SEGMENT_ID`: a segment's members as CSV or NDJSON, read straight from the
database through the same query and encoders as the API's export (worker/exports)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import structlog

from segments.commands import Command, add_segment_arguments
from worker.db import connect
from worker.exports.columns import DEFAULT_COLUMNS, UnknownColumn, parse_column_list
from worker.exports.formats import FORMATS
from worker.exports.plan import SegmentNotReady, export_chunks, plan_export
from worker.settings import Settings
from worker.store import SegmentNotFound, resolve_segment

log = structlog.get_logger(__name__)


def export_arguments(parser: argparse.ArgumentParser) -> None:
    add_segment_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, default="csv", help="default: csv")
    parser.add_argument(
        "--columns",
        metavar="COLUMNS",
        help="comma-separated contact columns and attr.KEY custom fields; default: "
        + ",".join(DEFAULT_COLUMNS)
        + " and every declared custom field",
    )
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        metavar="PATH",
        help="write here (whole, or not at all) instead of to standard output",
    )


async def run_export(settings: Settings, args: argparse.Namespace) -> int:
    conn = await connect(settings.database_url)
    started = time.monotonic()
    try:
        segment_id = await resolve_segment(conn, args.segment, args.account)
        plan = await plan_export(
            conn,
            segment_id,
            args.format,
            parse_column_list(args.columns),
            account_id=args.account,
        )
        written = 0
        # One snapshot for the whole read (a cursor lives in a transaction anyway).
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            with _output(args.output) as out:
                async for chunk in export_chunks(conn, plan):
                    out.write(chunk)
                    written += len(chunk)
    except (SegmentNotFound, SegmentNotReady, UnknownColumn, ValueError) as exc:
        log.error("export.refused", error=str(exc) or type(exc).__name__)
        return 2
    except BrokenPipeError:
        # The reader went away (`segments export ... | head`): not a failure of the export.
        # Standard output goes to /dev/null so that Python's flush at exit stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        await conn.close()
    seconds = round(time.monotonic() - started, 3)
    log.info("export.done", segment_id=str(segment_id), bytes=written, seconds=seconds)
    return 0


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[BinaryIO]:
    """Standard output, or `path` written through a temporary file renamed at the end, so a
    failed export never leaves a short file that looks complete."""
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as out:
            yield out
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


COMMANDS = (
    Command(
        "export",
        "write a segment's members as CSV or NDJSON (to a file or standard output)",
        run_export,
        export_arguments,
    ),
)
