"""Shared fixtures: one fresh, migrated database per test session, dropped at the end.

Tests isolate from each other by account: each test that writes data makes its own account,
and every query the service runs is scoped to one account.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from tests.property_support import Database
from tests.services import postgres_server, rabbitmq_server, unique_name, with_database
from tests.statement_capture import TESTS_APPLICATION, StatementLog
from tests.worker_support import publisher, running_worker, worker_settings
from worker.db import create_pool
from worker.migrations import migrate

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_STATEMENTS = StatementLog()


def pytest_configure(config: pytest.Config) -> None:
    _STATEMENTS.install()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when the service sent a statement Citus could not route to one account
    (docs/scaling.md)."""
    if exitstatus != 0 or not _STATEMENTS.statements:
        return
    violations = _STATEMENTS.violations(SQL_DIR)
    if not violations:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [
        f"{len(violations)} statement(s) the service sent are not pinned to one account, so "
        "Citus could not route them to one shard group. Filter every distributed table by "
        "account_id (or join it on account_id), or add the statement to MULTI_SHARD in "
        "tests/statement_capture.py with the reason it must span accounts:"
    ]
    for statement, problems in violations.items():
        lines += [f"  - {statement[:300]}", *(f"      {p}" for p in problems)]
    if reporter is not None:
        reporter.write_line("\n".join(lines), red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with postgres_server() as server_dsn:
        dsn = with_database(server_dsn, unique_name("segments_test"))
        asyncio.run(migrate(dsn))
        yield dsn
        asyncio.run(_drop_database(server_dsn, dsn))


async def _drop_database(server_dsn: str, dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ vhost of this test session, deleted at the end."""
    with rabbitmq_server() as url:
        yield url


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    # Named, so the statement capture tells the tests' own queries from the service's.
    pool = await create_pool(
        database_url, min_size=1, max_size=8, application_name=TESTS_APPLICATION
    )
    yield pool
    await pool.close()


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as connection:
        yield connection


@pytest.fixture
async def account_id(conn: asyncpg.Connection) -> uuid.UUID:
    """A fresh account for one test."""
    value: uuid.UUID = await conn.fetchval(
        "INSERT INTO accounts (name) VALUES ($1) RETURNING id", unique_name("test")
    )
    return value


@pytest.fixture
async def exchange(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractExchange]:
    """The segments exchange on this session's vhost, publishing with confirms."""
    async with publisher(amqp_url) as exchange:
        yield exchange


@pytest.fixture
async def worker(database_url: str, amqp_url: str) -> AsyncIterator[None]:
    """A worker running in this event loop for the test."""
    async with running_worker(worker_settings(database_url, amqp_url)):
        yield


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    """A connection the property tests' hypothesis (sync) functions drive."""
    database = Database(database_url)
    yield database
    database.close()
