"""Finding the PostgreSQL server the tests run on.

Order: SEGMENTS_TEST_DATABASE_URL if set; the local server on 127.0.0.1:5432 when it answers
(as `postgres`, then `root`); otherwise a throwaway container from testcontainers (a laptop
with Docker and nothing installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

LOCAL_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql://root@127.0.0.1:5432/postgres",
)


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A DSN of a server where the tests may create and drop databases."""
    explicit = os.environ.get("SEGMENTS_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    for dsn in LOCAL_CANDIDATES:
        if asyncio.run(_answers(dsn)):
            yield dsn
            return
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:15-alpine", driver=None) as container:
        yield container.get_connection_url()


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
