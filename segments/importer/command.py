"""`segments import` as a command: arguments in, exit code out.

Exit codes: 0 loaded (with --skip-invalid, also when rows were rejected and skipped);
1 rows were rejected, so nothing was loaded; 2 the import could not run (usage, file,
account, database), with a message saying what to do. stdout carries only the JSON summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO
from uuid import UUID

import asyncpg
import structlog

from segments.importer import FORMATS, KINDS, ImportOptions, InputError, Progress, run_import
from worker.db import connect
from worker.settings import Settings

log = structlog.get_logger(__name__)

# A load of millions of rows runs statements of minutes; builds' 5-minute bound is too short.
STATEMENT_TIMEOUT_MS = 3_600_000

OK, REJECTED, FAILED = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help="what the file holds")
    parser.add_argument("file", help="a .csv, .ndjson or .jsonl file (optionally .gz); - is stdin")
    parser.add_argument(
        "--account", required=True, type=UUID, metavar="ACCOUNT_ID", help="the account to load into"
    )
    parser.add_argument("--format", choices=FORMATS, help="default: from the file's name")
    parser.add_argument(
        "--list", type=UUID, metavar="LIST_ID", help="members: the list of rows without list_id"
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="load the valid rows even if some are rejected"
    )
    parser.add_argument(
        "--rejects", type=Path, metavar="PATH", help='write every rejected row {"line","reason"}'
    )
    parser.add_argument(
        "--show-rejects", type=int, default=20, metavar="N", help="rejected rows to print"
    )


async def run_command(
    settings: Settings,
    args: argparse.Namespace,
    out: IO[str] = sys.stdout,
    err: IO[str] = sys.stderr,
) -> int:
    options = ImportOptions(
        kind=args.kind,
        path=args.file,
        account_id=args.account,
        format=args.format,
        list_id=args.list,
        skip_invalid=args.skip_invalid,
        rejects_path=args.rejects,
        show_rejects=max(args.show_rejects, 0),
    )
    try:
        conn = await connect(settings.database_url, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
    except (OSError, asyncpg.PostgresError) as exc:
        return _fail(
            err,
            f"cannot connect to PostgreSQL ({exc}): check SEGMENTS_DATABASE_URL and that the "
            "server is running; `segments migrate` creates the database",
        )
    try:
        summary = await run_import(conn, options, progress=Progress(args.kind, err), report=err)
    except InputError as exc:
        return _fail(err, str(exc))
    except asyncpg.UndefinedTableError:
        return _fail(err, "the database has no segments tables: run `segments migrate` first")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return _fail(
            err,
            f"the load failed and nothing was loaded ({type(exc).__name__}: {exc}); "
            "fix the cause and run the same command again",
        )
    except Exception:  # a bug: never let it pass for exit code 1 ("rows rejected")
        log.exception("import.crashed")
        return _fail(err, "the import crashed (a bug, logged above); nothing was loaded")
    finally:
        if not conn.is_closed():
            await conn.close()
    print(summary.to_json(), file=out, flush=True)
    if summary.rejected and not options.skip_invalid:
        print(
            f"segments import: {summary.rejected:,} of {summary.read:,} rows rejected, so "
            "nothing was loaded: fix them, or pass --skip-invalid to load the other rows",
            file=err,
        )
        return REJECTED
    if summary.rejected:
        print(f"segments import: skipped {summary.rejected:,} rejected rows", file=err)
    return OK


def _fail(err: IO[str], message: str) -> int:
    print(f"segments import: {message}", file=err, flush=True)
    return FAILED
