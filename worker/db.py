"""PostgreSQL connections: every connection speaks UTC, decodes JSON and has timeouts set."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection of our own or one borrowed from a pool: every query function takes either.
Conn = asyncpg.Connection | PoolConnectionProxy

# Timeouts are off by default in PostgreSQL; a service must never wait forever.
_SERVER_SETTINGS = {
    "TimeZone": "UTC",
    "lock_timeout": "30s",
    "idle_in_transaction_session_timeout": "5min",
    # asyncpg prepares every statement; after five runs PostgreSQL may switch a statement to
    # a generic plan, which cannot see the values (list ids, lowered arrays, candidate ids)
    # and was measured many times slower here; planning each run costs far less
    # (docs/benchmarks.md, recommendation 5).
    "plan_cache_mode": "force_custom_plan",
}


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


def _server_settings(statement_timeout_ms: int, application_name: str) -> dict[str, str]:
    # application_name shows in pg_stat_activity: an operator sees which part holds a session.
    return {
        **_SERVER_SETTINGS,
        "statement_timeout": str(statement_timeout_ms),
        "application_name": application_name,
    }


# Opening a connection ends after this: a database that accepts TCP and then says nothing
# (a partition) must not hold a pool or the relay's listener forever.
CONNECT_TIMEOUT_S = 10.0


async def connect(
    dsn: str, statement_timeout_ms: int = 300_000, application_name: str = "segments"
) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(
        dsn,
        server_settings=_server_settings(statement_timeout_ms, application_name),
        timeout=CONNECT_TIMEOUT_S,
    )
    await _init_connection(conn)
    return conn


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    statement_timeout_ms: int = 300_000,
    application_name: str = "segments",
    command_timeout_s: float | None = None,
) -> asyncpg.Pool:
    """`command_timeout_s` bounds every query on the client side too (the server's
    statement_timeout cannot fire when the network between us hangs)."""
    pool: asyncpg.Pool | None = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings=_server_settings(statement_timeout_ms, application_name),
        timeout=CONNECT_TIMEOUT_S,
        command_timeout=command_timeout_s,
    )
    assert pool is not None  # create_pool only returns None when awaited lazily
    return pool


# What an operator reads at the worker's start when the server does not vacuum by itself.
AUTOVACUUM_OFF = (
    "PostgreSQL's autovacuum is off: the rows the worker rewrites on every change batch "
    "(segments, segment_members, outbox) are never cleaned up, and change batches slow down "
    "(2x after minutes of changes, docs/database.md). Turn it on (autovacuum = on in "
    "postgresql.conf, then reload), or VACUUM those tables on a schedule."
)


async def autovacuum_warning(conn: Conn) -> str | None:
    """AUTOVACUUM_OFF if the server runs without autovacuum (test servers often do)."""
    return AUTOVACUUM_OFF if await conn.fetchval("SHOW autovacuum") == "off" else None


async def fetch_count(conn: Conn, sql: str, *args: object) -> int:
    """The single value of a heavy `SELECT count(*)`. Not fetchval(): asyncpg fetches its row
    with a row limit, and PostgreSQL runs a statement with a row limit without parallel
    workers, and a segment query at 1M contacts is then much slower (docs/benchmarks.md)."""
    rows = await conn.fetch(sql, *args)
    value: int = rows[0][0]
    return value


async def cursor_batches(
    conn: Conn, sql: str, *args: object, batch_size: int
) -> AsyncIterator[list[asyncpg.Record]]:
    """The rows of `sql`, `batch_size` at a time, through a server-side cursor: memory holds
    one batch whatever the result's size. A cursor lives in a transaction the caller holds."""
    cursor = await conn.cursor(sql, *args)
    while rows := await cursor.fetch(batch_size):
        yield rows
