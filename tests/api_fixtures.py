"""Fixtures and helpers of the HTTP API tests: the real app (lifespan, pool, relay) against
the session's database and RabbitMQ vhost, driven over HTTP with httpx.

Test modules take them with `from tests.api_fixtures import *`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api_shim.app import create_app
from tests.services import unique_name
from tests.waiting import wait_until
from worker.accounts import ALL_SCOPES, create_account, create_api_key
from worker.settings import Settings

__all__ = [
    "ApiProcess",
    "Tenant",
    "api_app",
    "api_process",
    "api_settings",
    "client",
    "client_with",
    "http_client",
    "make_contact",
    "make_list",
    "make_tenant",
    "other",
    "segment_body",
    "tenant",
]


@pytest.fixture
def api_settings(database_url: str, amqp_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        amqp_url=amqp_url,
        api_rate_limit_per_minute=100_000,
        api_simple_wait_s=0.2,
        outbox_poll_interval_s=0.5,
        api_pool_max_size=4,
    )


@pytest.fixture
async def api_app(api_settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(api_app) as http:
        yield http


@contextlib.asynccontextmanager
async def http_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


@contextlib.asynccontextmanager
async def client_with(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app of its own, started with these settings changed."""
    app = create_app(settings.model_copy(update=changes))
    async with app.router.lifespan_context(app), http_client(app) as http:
        yield http


@dataclass(frozen=True)
class Tenant:
    account_id: uuid.UUID
    key: str
    list_id: uuid.UUID  # one contact list of the account

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    async def key_with(self, conn: asyncpg.Connection, *scopes: str) -> dict[str, str]:
        return {"X-API-Key": await create_api_key(conn, self.account_id, scopes)}


async def make_tenant(conn: asyncpg.Connection) -> Tenant:
    account = await create_account(conn, unique_name("api"), ALL_SCOPES)
    return Tenant(account.account_id, account.api_key, await make_list(conn, account.account_id))


@pytest.fixture
async def tenant(conn: asyncpg.Connection) -> Tenant:
    return await make_tenant(conn)


@pytest.fixture
async def other(conn: asyncpg.Connection) -> Tenant:
    """A second account, for isolation tests."""
    return await make_tenant(conn)


async def make_list(conn: asyncpg.Connection, account_id: uuid.UUID) -> uuid.UUID:
    list_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO contact_lists (account_id, name) VALUES ($1, $2) RETURNING id",
        account_id,
        unique_name("list"),
    )
    return list_id


async def make_contact(
    conn: asyncpg.Connection, account_id: uuid.UUID, email: str, **columns: Any
) -> uuid.UUID:
    columns = {"status": "subscribed", **columns}
    names = ["account_id", "email", *columns]  # column names come from the test's code
    values = [account_id, email, *columns.values()]
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    contact_id: uuid.UUID = await conn.fetchval(
        f"INSERT INTO contacts ({', '.join(names)}) VALUES ({placeholders}) RETURNING id",
        *values,
    )
    return contact_id


def segment_body(list_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    """The product brief's own example of creating a v2 segment, on the given list."""
    body: dict[str, Any] = {
        "name": "Active Gmail Subscribers",
        "color": "#7cb7de",
        "contact_list_ids": [str(list_id)],
        "rules_json": {
            "any": [
                {
                    "all": [
                        {
                            "kind": "field",
                            "field": "status",
                            "operator": "equals",
                            "value": "subscribed",
                        },
                        {
                            "kind": "activity",
                            "metric": "open",
                            "operator": "count_gte",
                            "value": 1,
                            "days_window": {"mode": "last", "days": 30},
                        },
                    ]
                }
            ]
        },
    }
    body.update(overrides)
    return body


@dataclass
class ApiProcess:
    """`segments api` running as its own process, and where it answers."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as an orchestrator stops it; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def api_process(
    database_url: str, amqp_url: str, subcommand: str = "api", **env: str
) -> Iterator[ApiProcess]:
    """Start `segments api` (or `run`) on a free port; yield once /healthz answers; stop it
    after."""
    port = _free_port()
    console_script = Path(sys.executable).parent / "segments"
    command = (
        [str(console_script)] if console_script.exists() else [sys.executable, "-m", "segments.cli"]
    )
    environment = {
        **os.environ,
        "SEGMENTS_DATABASE_URL": database_url,
        "SEGMENTS_AMQP_URL": amqp_url,
        "SEGMENTS_API_PORT": str(port),
        "SEGMENTS_LOG_FORMAT": "json",
        **env,
    }
    with tempfile.NamedTemporaryFile(prefix="segments-api-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            [*command, subcommand], env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    server = ApiProcess(f"http://127.0.0.1:{port}", process, Path(log.name))
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        if process.poll() is None:
            try:
                server.stop()
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        server.log_path.unlink(missing_ok=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


_POLL_INTERVAL_S = 0.1


def _wait_until_healthy(server: ApiProcess, timeout: float = 60.0) -> None:
    """Poll /healthz with a deadline (a fixture of sync tests too, so no event loop here)."""

    def healthy() -> bool:
        if server.process.poll() is not None:
            raise RuntimeError(f"segments api exited early:\n{server.log()}")
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200
        return False

    try:
        wait_until(healthy, timeout=timeout, interval=_POLL_INTERVAL_S)
    except AssertionError:
        raise AssertionError(
            f"segments api did not answer within {timeout}s:\n{server.log()}"
        ) from None
