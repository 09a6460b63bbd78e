"""`segments import contacts|events|members FILE`: bulk loads from CSV or NDJSON.

The file is streamed in chunks. A thread reads and validates the next chunk (readers,
models) while PostgreSQL takes the previous one (load): COPY into a TEMP table, reject what
only the database can judge (contacts or lists of another account, an email twice), merge
the rest into the account's data. All of it is ONE transaction, which at the end also writes
the contact.changed outbox rows for every contact that changed, and commits only if no row
was rejected (or --skip-invalid was given). So the messages exist if and only if the data
committed, and a failure anywhere leaves the account's data as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import asyncpg

from segments.importer import load
from segments.importer.models import (
    KINDS,
    Kind,
    RowContext,
    RowError,
    Validate,
    csv_header_problem,
    validator,
)
from segments.importer.progress import Progress
from segments.importer.readers import (
    FORMATS,
    BadRow,
    CsvRows,
    Format,
    InputError,
    Row,
    detect_format,
    ndjson_rows,
    open_text,
)
from worker.db import Conn
from worker.messages import EVENT_TYPES, MAX_CONTACT_IDS, ChangeHints
from worker.outbox import enqueue_contacts_changed

__all__ = [
    "FORMATS",
    "KINDS",
    "ImportOptions",
    "ImportSummary",
    "InputError",
    "Progress",
    "run_import",
]


@dataclass(frozen=True)
class ImportOptions:
    kind: Kind
    path: str  # "-" for stdin
    account_id: UUID
    format: Format | None = None  # None: from the file name
    list_id: UUID | None = None  # members: the list of rows that name none
    skip_invalid: bool = False  # load the valid rows even if some are rejected
    rejects_path: Path | None = None  # every rejected row as NDJSON {"line", "reason"}
    show_rejects: int = 20  # rejected rows printed to `report`
    chunk_rows: int = 20_000  # rows per COPY


@dataclass
class ImportSummary:
    kind: str
    read: int = 0  # data rows in the file
    loaded: int = 0  # rows applied (0 when the load was refused)
    rejected: int = 0
    contacts_changed: int = 0  # distinct contacts whose data changed
    messages: int = 0  # contact.changed outbox rows written
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))


async def run_import(
    conn: Conn,
    options: ImportOptions,
    *,
    progress: Progress | None = None,
    report: IO[str] | None = None,
    stdin: IO[bytes] | None = None,
) -> ImportSummary:
    """Import one file into one account. Rejected rows are printed to `report` (at most
    `show_rejects`) and written to `rejects_path`. Raises InputError when the file or the
    options cannot be imported at all, before anything is loaded."""
    started = time.monotonic()
    fmt = detect_format(options.path, options.format)
    context = await _context(conn, options)
    summary = ImportSummary(kind=options.kind)
    with _rejects_file(options.rejects_path) as rejects_out:
        await _session_settings(conn)
        await load.create_staging(conn, options.kind)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL work_mem = '256MB'")
                # Between chunks the transaction waits on the file: stdin may be slow.
                await conn.execute("SET LOCAL idle_in_transaction_session_timeout = '30min'")
                with open_text(options.path, stdin) as stream:
                    rows, validate = _rows(options.kind, fmt, context, stream)
                    await _load(conn, options, validate, rows, summary, progress)
                if progress:
                    progress.phase("read", read=summary.read, rejected=summary.rejected)
                await _finish(conn, options, summary, progress, report, rejects_out)
        except _Refused:
            pass  # rolled back: rows were rejected, so nothing is loaded
        finally:
            if not conn.is_closed():
                await load.drop_staging(conn)
    summary.seconds = _since(started)
    return summary


class _Refused(Exception):
    """Rows were rejected without --skip-invalid: roll the whole import back."""


async def _session_settings(conn: Conn) -> None:
    """Room for the TEMP tables in memory (default 8MB). PostgreSQL accepts this only before
    the session's first use of a TEMP table; a pooled connection may be past that."""
    with contextlib.suppress(asyncpg.PostgresError):  # then slower, not wrong
        await conn.execute("SET temp_buffers = '256MB'")


async def _context(conn: Conn, options: ImportOptions) -> RowContext:
    account = await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", options.account_id)
    if account is None:
        raise InputError(
            f"there is no account {options.account_id}: check --account, or create one with "
            "`segments account create NAME`"
        )
    if options.list_id is not None:
        found = await conn.fetchval(
            "SELECT 1 FROM contact_lists WHERE id = $1 AND account_id = $2",
            options.list_id,
            options.account_id,
        )
        if found is None:
            raise InputError(f"--list {options.list_id} is not a list of this account")
    fields = await conn.fetch(
        "SELECT key, data_type FROM contact_fields WHERE account_id = $1", options.account_id
    )
    return RowContext(
        field_types={r["key"]: r["data_type"] for r in fields},
        default_list=options.list_id,
        account_id=options.account_id,
    )


def _rows(
    kind: Kind, fmt: Format, context: RowContext, stream: IO[str]
) -> tuple[Iterable[Row | BadRow], Validate]:
    if fmt == "ndjson":
        return ndjson_rows(stream), validator(kind, context)
    rows = CsvRows(stream)
    problem = csv_header_problem(kind, rows.header, context)
    if problem:
        raise InputError(f"line {rows.header_line}: {problem}")
    return rows, validator(kind, context, rows.header)


@dataclass
class _Chunk:
    read: int  # rows read
    valid: int  # of which valid, in `payload`
    payload: bytes  # the valid rows, encoded for COPY
    rejects: list[tuple[int, str]]


def _next_chunk(kind: Kind, rows: Iterator[Row | BadRow], validate: Validate, size: int) -> _Chunk:
    """Read, validate and encode up to `size` rows. CPU-bound: runs in a thread."""
    read = 0
    records: list[tuple[Any, ...]] = []
    rejects: list[tuple[int, str]] = []
    for item in rows:
        read += 1
        if isinstance(item, BadRow):
            rejects.append((item.line, item.reason))
        else:
            try:
                records.append(validate(item.values, item.line))
            except RowError as exc:
                rejects.append((item.line, str(exc)))
        if read >= size:
            break
    return _Chunk(read, len(records), load.encode_chunk(kind, records), rejects)


async def _load(
    conn: Conn,
    options: ImportOptions,
    validate: Validate,
    rows: Iterable[Row | BadRow],
    summary: ImportSummary,
    progress: Progress | None,
) -> None:
    """Validate and load the file chunk by chunk, counting into `summary`. A thread validates
    the next chunk while PostgreSQL loads the previous one."""
    with _responsive_event_loop():
        iterator = iter(rows)
        await _pipeline(conn, options, validate, iterator, summary, progress)


@contextlib.contextmanager
def _responsive_event_loop() -> Iterator[None]:
    """While the validating thread computes, the event loop thread waits for the GIL for up
    to the switch interval (5 ms) every time PostgreSQL answers; with a dozen statements per
    chunk that idles the database noticeably. A shorter interval, for the import only."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.0005))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


async def _pipeline(
    conn: Conn,
    options: ImportOptions,
    validate: Validate,
    iterator: Iterator[Row | BadRow],
    summary: ImportSummary,
    progress: Progress | None,
) -> None:
    loading: asyncio.Task[None] | None = None
    try:
        while True:
            chunk = await asyncio.to_thread(
                _next_chunk, options.kind, iterator, validate, options.chunk_rows
            )
            if loading is not None:
                await loading
            if not chunk.read:
                return
            summary.read += chunk.read
            loading = asyncio.create_task(_load_chunk(conn, options, chunk, summary))
            if progress:
                progress.rows(summary.read, summary.rejected + len(chunk.rejects))
    finally:
        if loading is not None and not loading.done():
            # Never leave the connection halfway through a statement; the error is the caller's.
            await asyncio.gather(loading, return_exceptions=True)


async def _load_chunk(
    conn: Conn, options: ImportOptions, chunk: _Chunk, summary: ImportSummary
) -> None:
    await load.stage(conn, options.kind, chunk.payload, chunk.rejects)
    summary.rejected += len(chunk.rejects)
    summary.rejected += await load.check(conn, options.kind, options.account_id)
    if options.skip_invalid or not summary.rejected:
        summary.loaded += await load.merge(conn, options.kind, options.account_id)
    # else: the import will be refused; the remaining chunks are still checked, so that
    # one run reports every rejected row.


async def _finish(
    conn: Conn,
    options: ImportOptions,
    summary: ImportSummary,
    progress: Progress | None,
    report: IO[str] | None,
    rejects_out: IO[str] | None,
) -> None:
    """Report rejected rows; then refuse the import, or publish what changed."""
    if summary.rejected:
        await _report(conn, options, summary.rejected, report, rejects_out)
        if not options.skip_invalid:
            summary.loaded = 0
            raise _Refused
    if progress:
        progress.phase("publishing", loaded=summary.loaded)
    # aclosing: the cursor is closed before the next statement, even on an error.
    async with contextlib.aclosing(load.changed_batches(conn, MAX_CONTACT_IDS)) as batches:
        async for ids in batches:
            summary.contacts_changed += len(ids)
            summary.messages += await enqueue_contacts_changed(
                conn, options.account_id, ids, _HINTS[options.kind]
            )
    if progress:
        progress.phase("committing", contacts_changed=summary.contacts_changed)


# What an import changes about its contacts (change hints): contacts may be created, so a
# contacts import says nothing (anything may have changed).
_HINTS: dict[Kind, ChangeHints | None] = {
    "contacts": None,
    "events": ChangeHints(events=list(EVENT_TYPES)),
    "members": ChangeHints(lists=True),
}


async def _report(
    conn: Conn,
    options: ImportOptions,
    total: int,
    report: IO[str] | None,
    rejects_out: IO[str] | None,
) -> None:
    shown = 0
    async with contextlib.aclosing(load.rejects(conn)) as rejected:
        async for line, reason in rejected:
            if rejects_out is not None:
                rejects_out.write(json.dumps({"line": line, "reason": reason}) + "\n")
            if report is not None and shown < options.show_rejects:
                print(f"line {line}: {reason}", file=report)
                shown += 1
            elif rejects_out is None:
                break
    if report is not None and total > shown:
        where = (
            f"all of them are in {options.rejects_path}"
            if options.rejects_path
            else "--rejects PATH writes them all"
        )
        print(f"... and {total - shown:,} more rejected rows ({where})", file=report)


@contextlib.contextmanager
def _rejects_file(path: Path | None) -> Iterator[IO[str] | None]:
    if path is None:
        yield None
        return
    try:
        out = path.open("w", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the rejects file {path}: {exc.strerror}") from None
    with out:
        yield out


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
