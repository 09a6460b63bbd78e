"""segment_members is vacuumed far sooner than PostgreSQL's default (sql/016): its reads are
index-only only on pages a vacuum has marked all-visible (docs/database.md)."""

from __future__ import annotations

import asyncpg


async def test_segment_members_is_vacuumed_after_one_percent_of_it_changed(
    conn: asyncpg.Connection,
) -> None:
    options = await conn.fetchval(
        "SELECT reloptions FROM pg_class WHERE oid = 'segment_members'::regclass"
    )
    assert set(options) == {
        "autovacuum_vacuum_threshold=10000",
        "autovacuum_vacuum_scale_factor=0.01",
        "autovacuum_vacuum_insert_threshold=10000",
        "autovacuum_vacuum_insert_scale_factor=0.01",
    }
    # The defaults stay for every other table.
    assert (
        await conn.fetchval("SELECT reloptions FROM pg_class WHERE oid = 'segments'::regclass")
        is None
    )
