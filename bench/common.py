"""What the benchmark scripts share: where the data lives and the fixed ids it is built with.

Ids are md5 hashes of readable names, so the loader (in SQL: `md5(text)::uuid`) and the plans
script (in Python: `stable_uuid`) agree on them without a lookup, and a reload is identical.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import UUID

import asyncpg

from segments.demo.data import CAMPAIGNS, CUSTOM_FIELDS, LISTS, ListSpec, stable_uuid

__all__ = ["CAMPAIGNS", "CUSTOM_FIELDS", "LISTS", "ListSpec", "stable_uuid"]

DEFAULT_DSN = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/segments_bench"
)
OUT_DIR = Path(__file__).resolve().parent / "out"  # git-ignored


ACCOUNT_BIG = stable_uuid("bench", "account", "big")
ACCOUNT_SMALL = stable_uuid("bench", "account", "small")


def list_id(account_id: UUID, key: str) -> UUID:
    return stable_uuid(account_id, "list", key)


def campaign_id(account_id: UUID, number: int) -> UUID:
    return stable_uuid(account_id, "campaign", number)


@asynccontextmanager
async def autovacuum_on(conn: asyncpg.Connection) -> AsyncIterator[bool]:
    """PostgreSQL's autovacuum on for the duration, as production servers run it; yields
    whether it had to be turned on. Test machines may switch it off (the CI machines here do,
    in conf.d): then dead rows pile up in what a change workload rewrites (a segment's row on
    every batch that moves its members, segment_members), and a run of minutes measures the
    bloat rather than the service (docs/benchmarks.md, "Autovacuum"). Turned on with ALTER
    SYSTEM and a reload (superuser), and reset afterwards."""
    if await conn.fetchval("SHOW autovacuum") == "on":
        yield False
        return
    await conn.execute("ALTER SYSTEM SET autovacuum = on")
    await conn.execute("SELECT pg_reload_conf()")
    try:
        yield True
    finally:
        await conn.execute("ALTER SYSTEM RESET autovacuum")
        await conn.execute("SELECT pg_reload_conf()")
