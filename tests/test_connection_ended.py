"""A pooled connection that the server ended while it sat idle (a PostgreSQL restart,
pg_terminate_backend) is a passing outage, not a bug.

asyncpg reads the server's FATAL on an idle connection as a protocol error: until the socket's
close is read too, the next query on it fails with InternalClientError ("cannot switch to
state 12; another operation (2) is in progress"), not with "connection was closed". The chaos
suite's PostgreSQL restarts met it in the worker, whose batch task died while holding a
retried change (its messages were then never settled, and stayed unacknowledged), in the
relay and in the API (500 instead of 503).

The window between the FATAL and the close is short; a proxy that does not pass the close on
holds it open, so the tests meet the state every time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api_shim.errors import install
from tests.tcp_proxy import TcpProxy, through
from tests.waiting import wait_for
from worker.db import create_pool
from worker.errors import is_transient
from worker.freshness import FreshnessTracker
from worker.messages import ContactChanged
from worker.settings import Settings

# Long enough for the client's event loop to read the FATAL the proxy passed on.
_READ_S = 0.3


class HalfOpenProxy(TcpProxy):
    """Passes everything on, except the server closing a connection: the client's side stays
    open, as when the FIN is still on its way."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.server_closed_at: float | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.update((writer, up_writer))
        for coro in (self._pipe(reader, up_writer), self._from_server(up_reader, writer)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _from_server(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
        self.server_closed_at = time.monotonic()

    def closed_a_while_ago(self) -> bool:
        at = self.server_closed_at
        return at is not None and time.monotonic() - at > _READ_S


@pytest.fixture
async def half_open(database_url: str) -> AsyncIterator[tuple[HalfOpenProxy, asyncpg.Pool]]:
    """A proxy and a pool of one connection through it."""
    target = urlsplit(database_url)
    proxy = HalfOpenProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    pool = await create_pool(through(database_url, proxy.port), min_size=1, max_size=1)
    try:
        yield proxy, pool
    finally:
        pool.terminate()  # close() would wait for the server's close, which the proxy keeps
        await proxy.stop()


async def _end_its_connection(
    proxy: HalfOpenProxy, pool: asyncpg.Pool, conn: asyncpg.Connection
) -> None:
    """The server ends the pool's idle connection; the client has read the FATAL, not the
    close."""
    proxy.server_closed_at = None
    pid = await pool.fetchval("SELECT pg_backend_pid()")
    assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)

    async def fatal_read() -> bool:
        return proxy.closed_a_while_ago()

    await wait_for(fatal_read)


async def test_the_ended_connection_fails_as_transient_and_the_next_query_gets_a_new_one(
    half_open: tuple[HalfOpenProxy, asyncpg.Pool], conn: asyncpg.Connection
) -> None:
    proxy, pool = half_open
    await _end_its_connection(proxy, pool, conn)
    with pytest.raises(asyncpg.InternalClientError) as raised:  # asyncpg's symptom
        await pool.fetchval("SELECT 1")
    assert is_transient(raised.value)  # retried with backoff, not handled as a bug
    assert await pool.fetchval("SELECT 1") == 1  # the pool dropped it: a retry succeeds


async def test_a_retried_change_is_held_though_the_pool_connection_was_ended(
    half_open: tuple[HalfOpenProxy, asyncpg.Pool], conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    """The worker's batch task writes this hold before a retried change goes to its delay
    queue; an error out of it killed the task, and the batch's messages were never settled."""
    proxy, pool = half_open
    await _end_its_connection(proxy, pool, conn)
    changed_at = datetime.now(UTC)
    change = ContactChanged(
        schema_version=1, account_id=account_id, contact_ids=[uuid.uuid4()], changed_at=changed_at
    )
    await asyncio.wait_for(FreshnessTracker(Settings()).hold_retry(pool, change, 30), 20)
    held = await conn.fetchval(
        "DELETE FROM freshness_holds WHERE scope_account_id = $1 RETURNING held_before",
        account_id,
    )
    assert held is not None and held < changed_at


async def test_the_api_answers_503_not_500() -> None:
    app = FastAPI()
    install(app)

    @app.get("/ended")
    async def ended() -> None:
        raise asyncpg.InternalClientError("cannot switch to state 12; another operation (2)")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        answer = await client.get("/ended")
    assert answer.status_code == 503
    assert answer.json()["errors"][0]["type"] == "unavailable"
