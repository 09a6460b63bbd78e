"""`segments migrate`: create the database if missing, apply sql/NNN_*.sql in order, once.

Safe to run from many processes at once: a session advisory lock serialises them, and each
migration is applied and recorded in one transaction.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog

from worker.db import connect
from worker.locks import MIGRATIONS, SERVICE_LOCK_CLASS

log = structlog.get_logger(__name__)


SQL_DIR = Path(os.environ.get("SEGMENTS_SQL_DIR", Path(__file__).resolve().parent.parent / "sql"))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(sql_dir.glob("[0-9][0-9][0-9]_*.sql")):
        version = int(path.name.split("_", 1)[0])
        migrations.append(Migration(version, path.stem, path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number in {sql_dir}: {versions}")
    return migrations


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/") or "postgres"


async def create_database_if_missing(dsn: str) -> bool:
    """Create the DSN's database from the server's `postgres` database; True if created."""
    name = database_name(dsn)
    admin = await connect(_with_database(dsn, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await admin.execute(f"CREATE DATABASE {quoted}")
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another process won the race (PostgreSQL reports it either way): fine.
            return False
        log.info("migrate.database_created", database=name)
        return True
    finally:
        await admin.close()


# Migrations change every account's rows at once (a Citus deployment runs them as DDL and
# multi-shard statements); their connection is named so that checks of routing can skip it.
MIGRATE_APPLICATION = "segments-migrate"


async def migrate(dsn: str, sql_dir: Path = SQL_DIR) -> list[int]:
    """Apply pending migrations; returns the versions applied by this call."""
    await create_database_if_missing(dsn)
    migrations = discover(sql_dir)
    conn = await connect(dsn, application_name=MIGRATE_APPLICATION)
    try:
        await conn.execute("SELECT pg_advisory_lock($1, $2)", SERVICE_LOCK_CLASS, MIGRATIONS)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    int PRIMARY KEY,
                   name       text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        done = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    log.warning(
                        "migrate.changed_after_apply",
                        migration=migration.name,
                        hint="applied migrations must not be edited; add a new one instead",
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("migrate.applied", migration=migration.name)
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", SERVICE_LOCK_CLASS, MIGRATIONS)
        await conn.close()
