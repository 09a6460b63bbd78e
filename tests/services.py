"""Finding the PostgreSQL server and RabbitMQ broker the tests run on.

Order: SEGMENTS_TEST_DATABASE_URL if set; the local server on 127.0.0.1:5432 when it answers
(as `postgres`, then `root`); otherwise a throwaway container from testcontainers (a laptop
with Docker and nothing installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
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


LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/"


async def _amqp_answers(url: str) -> bool:
    import aio_pika

    try:
        connection = await aio_pika.connect(url, timeout=3)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError):
        return False
    await connection.close()
    return True


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def rabbitmq_server() -> Iterator[str]:
    """An AMQP URL of a vhost that belongs to this test run alone.

    SEGMENTS_TEST_AMQP_URL if set; else a fresh vhost on the local broker (made and deleted
    with rabbitmqctl); else a throwaway broker from testcontainers.
    """
    explicit = os.environ.get("SEGMENTS_TEST_AMQP_URL")
    if explicit:
        yield explicit
        return
    if shutil.which("rabbitmqctl") and asyncio.run(_amqp_answers(LOCAL_AMQP)):
        vhost = unique_name("segments_test")
        _rabbitmqctl("add_vhost", vhost)
        try:
            _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
            yield f"{LOCAL_AMQP}{vhost}"
        finally:
            _rabbitmqctl("delete_vhost", vhost)
        return
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13-management-alpine") as container:
        params = container.get_connection_params()
        yield f"amqp://guest:guest@{params.host}:{params.port}/"
