"""The Citus profile in deploy/citus/ fits the schema the migrations make.

Citus cannot run here, so this checks what it would refuse: keys.sql applies to a freshly
migrated database, after which every primary key, unique constraint and foreign key between
distributed tables includes the distribution column, and distribute.sql places every table
(distributed by account, reference, or kept on the coordinator) exactly once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.services import unique_name, with_database
from tests.statement_capture import REFERENCE_TABLES, distribution
from worker.migrations import migrate

ROOT = Path(__file__).resolve().parent.parent
CITUS = ROOT / "deploy" / "citus"
TABLES = distribution(ROOT / "sql")


def _placed(kind: str) -> list[str]:
    text = (CITUS / "distribute.sql").read_text()
    return re.findall(rf"{kind}\('(\w+)'", text)


@pytest.fixture
async def keyed(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A fresh database, migrated, with keys.sql applied; dropped afterwards."""
    server = database_url.rsplit("/", 1)[0] + "/postgres"
    dsn = with_database(server, unique_name("segments_citus"))
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute((CITUS / "keys.sql").read_text())
        yield conn
    finally:
        await conn.close()
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'DROP DATABASE "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_distribute_places_every_table_once(keyed: asyncpg.Connection) -> None:
    tables = {
        r[0]
        for r in await keyed.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    distributed = _placed("create_distributed_table")
    reference = _placed("create_reference_table")
    local = _placed("citus_add_local_table_to_metadata")
    placed = distributed + reference + local
    assert sorted(placed) == sorted(tables), "every table placed exactly once"
    assert set(distributed) == set(TABLES)
    assert set(reference) >= REFERENCE_TABLES


async def test_keys_include_the_distribution_column(keyed: asyncpg.Connection) -> None:
    rows = await keyed.fetch(
        """SELECT c.conrelid::regclass::text AS table_name, c.contype, c.conname,
                  c.confrelid::regclass::text AS target,
                  ARRAY(SELECT a.attname::text FROM pg_attribute a
                        WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)) AS columns,
                  ARRAY(SELECT a.attname::text FROM pg_attribute a
                        WHERE a.attrelid = c.confrelid AND a.attnum = ANY(c.confkey)) AS refs
           FROM pg_constraint c
           WHERE c.connamespace = 'public'::regnamespace AND c.contype IN ('p', 'u', 'f')"""
    )
    problems = []
    for r in rows:
        table, target = r["table_name"], r["target"]
        column = TABLES.get(table)
        if r["contype"] in ("p", "u"):
            if column is not None and column not in r["columns"]:
                problems.append(f"{r['conname']}: {r['columns']} lacks {column}")
        elif target in TABLES:
            if column is None:
                problems.append(f"{r['conname']}: {table} (not distributed) -> {target}")
            elif column not in r["columns"] or TABLES[target] not in r["refs"]:
                problems.append(f"{r['conname']}: {r['columns']} -> {r['refs']}")
    assert problems == []
