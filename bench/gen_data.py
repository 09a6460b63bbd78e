"""Load the benchmark data set into its own database (default `segments_bench`).

    .venv/bin/python -m bench.gen_data --contacts 1000000 --events 10000000

One big account (N contacts, M events, five overlapping lists) and one small account (a tenth
of each) so that account scoping is exercised. Everything is generated server-side with
INSERT ... SELECT FROM generate_series under a fixed random seed (the generator of
`segments demo`, segments/demo/data.py): a reload gives the same data.
A run with the same sizes reuses what is loaded (--force reloads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg

from bench.common import (
    ACCOUNT_BIG,
    ACCOUNT_SMALL,
    DEFAULT_DSN,
)
from segments.demo.data import generate_rows, insert_account_setup
from worker.migrations import database_name, migrate

GENERATOR_VERSION = 2  # bump when the distributions change, so old data is not reused
T = TypeVar("T")


@dataclass(frozen=True)
class Spec:
    """What is loaded; a database holding the same spec is reused."""

    contacts: int
    events: int
    small_contacts: int
    small_events: int
    version: int = GENERATOR_VERSION


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def timed(label: str, work: Awaitable[T]) -> T:
    start = time.perf_counter()
    result = await work
    log(f"{label}: {time.perf_counter() - start:.1f}s")
    return result


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


async def loaded_spec(dsn: str) -> Spec | None:
    """The spec of the data already in the database, or None (no database, or no data)."""
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", database_name(dsn)
        )
    finally:
        await admin.close()
    if not exists:
        return None
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('bench_dataset')") is None:
            return None
        raw = await conn.fetchval("SELECT spec::text FROM bench_dataset")
    finally:
        await conn.close()
    return None if raw is None else Spec(**json.loads(raw))


async def recreate_database(dsn: str) -> None:
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        name = database_name(dsn).replace('"', '""')
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    await migrate(dsn)


async def loader_connection(dsn: str) -> asyncpg.Connection:
    """A session tuned for bulk loading: no timeouts, big sort and index-build memory, and
    foreign-key triggers off (the generated data is consistent by construction)."""
    conn: asyncpg.Connection = await asyncpg.connect(
        dsn,
        server_settings={
            "TimeZone": "UTC",
            "statement_timeout": "0",
            "work_mem": "1GB",
            "maintenance_work_mem": "2GB",
            "max_parallel_maintenance_workers": "2",
            "session_replication_role": "replica",
            "synchronous_commit": "off",
        },
    )
    return conn


async def drop_secondary_indexes(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """Drop the data tables' indexes that no constraint needs; returns (name, definition)
    to rebuild them after the load (building once is far faster than maintaining per row)."""
    rows = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
           FROM pg_index i
           WHERE i.indrelid IN ('contacts'::regclass, 'contact_list_members'::regclass,
                                'events'::regclass)
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
           ORDER BY 1"""
    )
    for row in rows:
        await conn.execute(f"DROP INDEX {row['name']}")
    return [(row["name"], row["def"]) for row in rows]


async def insert_reference_rows(conn: asyncpg.Connection, now: datetime) -> None:
    for account_id, name in ((ACCOUNT_BIG, "bench big"), (ACCOUNT_SMALL, "bench small")):
        await conn.execute(
            "INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)",
            account_id,
            name,
            now,
        )
        await insert_account_setup(conn, account_id, now)


async def load_account(
    conn: asyncpg.Connection, account_id: UUID, contacts: int, events: int, now: datetime
) -> None:
    """The account's rows from the demo's generator, its events in one time-ordered run."""
    label = "big" if account_id == ACCOUNT_BIG else "small"
    await timed(
        f"{label}: {contacts:,} contacts, their list members, {events:,} events",
        generate_rows(conn, account_id, contacts, events, now, event_chunks=1),
    )


async def rebuild_indexes(conn: asyncpg.Connection, indexes: list[tuple[str, str]]) -> None:
    for name, definition in indexes:
        await timed(f"index {name}", conn.execute(definition))


async def vacuum_analyze(conn: asyncpg.Connection) -> None:
    # VACUUM also sets the visibility map, which index-only scans need to skip the heap.
    for table in ("contacts", "contact_list_members", "events", "contact_lists", "accounts"):
        await timed(f"VACUUM ANALYZE {table}", conn.execute(f"VACUUM (ANALYZE) {table}"))
    # Flush the load's dirty pages now, so that a benchmark started right after does not
    # compete with the checkpointer writing gigabytes.
    await timed("CHECKPOINT", conn.execute("CHECKPOINT"))


async def record_spec(conn: asyncpg.Connection, spec: Spec, now: datetime) -> None:
    await conn.execute(
        """CREATE TABLE bench_dataset (spec jsonb NOT NULL, now timestamptz NOT NULL,
                                       loaded_at timestamptz NOT NULL DEFAULT now())"""
    )
    await conn.execute(
        "INSERT INTO bench_dataset (spec, now) VALUES ($1::jsonb, $2)",
        json.dumps(asdict(spec)),
        now,
    )


async def summarise(conn: asyncpg.Connection) -> None:
    """Print the shape of what was loaded, to check the distributions at a glance."""
    queries = {
        "rows": """SELECT 'contacts', count(*) FROM contacts UNION ALL
                   SELECT 'members', count(*) FROM contact_list_members UNION ALL
                   SELECT 'events', count(*) FROM events""",
        "events by type": "SELECT type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC",
        "status": "SELECT status, count(*) FROM contacts GROUP BY 1 ORDER BY 2 DESC",
        "sizes": """SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class
                    WHERE relname IN ('contacts', 'contact_list_members', 'events')""",
    }
    for title, sql in queries.items():
        rows = await conn.fetch(sql)
        log(
            title
            + ": "
            + ", ".join(
                f"{r[0]}={r[1]:,}" if isinstance(r[1], int) else f"{r[0]}={r[1]}" for r in rows
            )
        )


async def load(dsn: str, spec: Spec) -> None:
    await timed("create and migrate database", recreate_database(dsn))
    conn = await loader_connection(dsn)
    try:
        now = await conn.fetchval("SELECT date_trunc('second', now())")
        indexes = await drop_secondary_indexes(conn)
        await insert_reference_rows(conn, now)
        await load_account(conn, ACCOUNT_BIG, spec.contacts, spec.events, now)
        await load_account(conn, ACCOUNT_SMALL, spec.small_contacts, spec.small_events, now)
        await rebuild_indexes(conn, indexes)
        await vacuum_analyze(conn)
        await record_spec(conn, spec, now)
        await summarise(conn)
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> None:
    spec = Spec(
        contacts=args.contacts,
        events=args.events,
        small_contacts=max(1, args.contacts // 10),
        small_events=max(1, args.events // 10),
    )
    if not args.force and await loaded_spec(args.dsn) == spec:
        log(f"{database_name(args.dsn)} already holds {spec}; reusing it (--force reloads)")
        return
    start = time.perf_counter()
    await load(args.dsn, spec)
    log(f"loaded {spec} in {time.perf_counter() - start:.0f}s at {datetime.now(UTC):%H:%M}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="database to (re)create and load")
    parser.add_argument("--contacts", type=int, default=1_000_000, help="big account's contacts")
    parser.add_argument("--events", type=int, default=10_000_000, help="big account's events")
    parser.add_argument("--force", action="store_true", help="reload even if already loaded")
    return parser.parse_args()


def main() -> None:
    asyncio.run(main_async(parse_args()))


if __name__ == "__main__":
    main()
