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


# The server settings a change workload needs, as production servers run (docs/database.md):
# - autovacuum on: test machines may switch it off (the CI machines here do, in conf.d), and
#   then dead rows pile up in what a change workload rewrites (a segment's row on every batch
#   that moves its members, segment_members): a run of minutes measures the bloat rather
#   than the service (docs/benchmarks.md, "Autovacuum");
# - max_wal_size of 16GB: with the default 1GB, changes at hundreds of contacts a second
#   filled it in 3 to 7 s, so checkpoints ran back to back and nearly every page written
#   after one was logged whole (15 GB of WAL in a minute instead of 3.3 GB; docs/benchmarks.md,
#   "Checkpoints and the change workload").
PRODUCTION = {"autovacuum": "on", "max_wal_size": "16GB"}


@asynccontextmanager
async def production_settings(conn: asyncpg.Connection) -> AsyncIterator[list[str]]:
    """The PRODUCTION settings for the duration, where the server has others; yields those
    it had to set ("name = value"). Set with ALTER SYSTEM and a reload (superuser, no
    restart), and reset afterwards."""
    changed = {
        name: value
        for name, value in PRODUCTION.items()
        if await conn.fetchval("SELECT current_setting($1)", name) != value
    }
    for name, value in changed.items():
        # Names from PRODUCTION only; ALTER SYSTEM takes no bind parameters.
        await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    await conn.execute("SELECT pg_reload_conf()")
    try:
        yield [f"{name} = {value}" for name, value in changed.items()]
    finally:
        for name in changed:
            await conn.execute(f"ALTER SYSTEM RESET {name}")
        await conn.execute("SELECT pg_reload_conf()")
