"""A worker started on a server without autovacuum says so: the tables it rewrites on every
change batch bloat, and change batches slow down (docs/database.md)."""

from __future__ import annotations

import asyncpg

from worker.db import AUTOVACUUM_OFF, autovacuum_warning


async def test_the_operator_is_told_when_the_server_does_not_vacuum(
    conn: asyncpg.Connection,
) -> None:
    warning = await autovacuum_warning(conn)
    if await conn.fetchval("SHOW autovacuum") == "off":  # as on the CI machines
        assert warning == AUTOVACUUM_OFF
        assert "autovacuum = on" in warning and "VACUUM" in warning
    else:
        assert warning is None
