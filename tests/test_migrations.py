"""`segments migrate`: creates the database, applies migrations once, safe when concurrent."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.services import unique_name, with_database
from worker.migrations import discover, migrate


async def test_migrate_creates_database_and_is_idempotent(database_url: str) -> None:
    dsn = with_database(database_url, unique_name("segments_migrate"))
    try:
        first = await migrate(dsn)
        second = await migrate(dsn)
        assert first == [m.version for m in discover()]
        assert second == []
    finally:
        await _drop(database_url, dsn)


async def test_concurrent_migrations_apply_each_migration_once(database_url: str) -> None:
    dsn = with_database(database_url, unique_name("segments_migrate"))
    try:
        results = await asyncio.gather(*(migrate(dsn) for _ in range(4)))
        applied = sorted(v for result in results for v in result)
        assert applied == [m.version for m in discover()]
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetchval("SELECT count(*) FROM schema_migrations")
            isps = await conn.fetchval("SELECT count(*) FROM isp_aliases")
        finally:
            await conn.close()
        assert rows == len(applied)
        assert isps >= 12
    finally:
        await _drop(database_url, dsn)


async def test_every_index_has_a_comment_naming_its_query() -> None:
    for migration in discover():
        lines = migration.sql.splitlines()
        for i, line in enumerate(lines):
            if "CREATE INDEX" in line or "CREATE UNIQUE INDEX" in line:
                above = "\n".join(lines[max(0, i - 4) : i])
                assert "Serves:" in above, f"{migration.name}: index without a comment: {line}"


async def _drop(server_dsn: str, dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
