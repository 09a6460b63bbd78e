"""Several broker addresses (the nodes of a RabbitMQ cluster) in SEGMENTS_AMQP_URL: the worker
and the relay start on whichever answers and move to another when theirs is lost.

Each "node" here is a TCP proxy in front of the one local RabbitMQ, so a node is lost by
cutting its proxy, never by stopping the shared server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.tcp_proxy import TcpProxy, through
from tests.test_worker_builds import SUBSCRIBED_IN_DE, _people
from tests.worker_support import (
    SegmentLock,
    publish_segment,
    publisher,
    running_worker,
    save_segment,
    wait_status,
    worker_settings,
)
from worker.broker import broker_urls
from worker.outbox import enqueue_segment


@pytest.fixture
async def nodes(amqp_url: str) -> AsyncIterator[list[TcpProxy]]:
    """Two "nodes": proxies to the local broker."""
    port = urlsplit(amqp_url).port or 5672
    proxies = [TcpProxy("127.0.0.1", port) for _ in range(2)]
    for proxy in proxies:
        await proxy.start()
    yield proxies
    for proxy in proxies:
        await proxy.stop()


def test_the_setting_takes_one_address_or_several() -> None:
    assert broker_urls("amqp://a/") == ("amqp://a/",)
    assert broker_urls(" amqp://a/ , amqp://b/,") == ("amqp://a/", "amqp://b/")
    with pytest.raises(ValueError, match="SEGMENTS_AMQP_URL is empty"):
        broker_urls(" , ")


async def test_a_worker_carries_on_through_another_node_when_its_node_is_lost(
    conn: asyncpg.Connection,
    pool: asyncpg.Pool,
    account_id: uuid.UUID,
    amqp_url: str,
    database_url: str,
    nodes: list[TcpProxy],
) -> None:
    await _people(conn, account_id)
    segments = [await save_segment(conn, account_id, SUBSCRIBED_IN_DE) for _ in range(3)]
    addresses = ",".join(through(amqp_url, node.port) for node in nodes)
    settings = worker_settings(database_url, addresses, outbox_relay_enabled=False)
    async with publisher(amqp_url) as exchange, running_worker(settings):
        async with SegmentLock(pool, segments[0]["id"]):
            for segment in segments:
                await publish_segment(exchange, "segment.created", segment)
            await wait_status(conn, segments[0]["id"], "RUNNING")
            assert nodes[0].connections > 0 and nodes[1].connections == 0, "starts on the first"
            await nodes[0].stop()  # lost for good, with a build in flight and others queued
        for segment in segments:
            row = await wait_status(conn, segment["id"], "DONE", timeout=60)
            assert row["total_count"] == 2


async def test_the_relay_and_the_worker_start_when_the_first_address_is_down(
    conn: asyncpg.Connection,
    account_id: uuid.UUID,
    amqp_url: str,
    database_url: str,
    nodes: list[TcpProxy],
) -> None:
    await _people(conn, account_id)
    await nodes[0].stop()
    addresses = ",".join(through(amqp_url, node.port) for node in nodes)
    segment: dict[str, Any] = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    # Through the outbox: the worker's own relay must publish it through the second node.
    await enqueue_segment(conn, "segment.created", account_id, segment["id"], segment["generation"])
    async with running_worker(worker_settings(database_url, addresses)):
        row = await wait_status(conn, segment["id"], "DONE", timeout=60)
    assert row["total_count"] == 2
