"""The outbox relay against the real RabbitMQ: what goes on the wire, in what order, and what
happens while the broker is unreachable (cut with a TCP proxy in front of it)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from fastapi import FastAPI

from api_shim.app import create_app
from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, http_client, segment_body
from tests.tcp_proxy import TcpProxy, through
from tests.waiting import wait_for
from worker.settings import Settings
from worker.topology import declare


@contextlib.asynccontextmanager
async def tap(amqp_url: str) -> AsyncIterator[AbstractQueue]:
    """A private queue that receives a copy of everything published to `segments`."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await declare(channel)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        yield queue
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app), http_client(app) as client:
        yield app, client


class Received:
    """Messages taken from a tap queue, looked up by the segment they are about."""

    def __init__(self, queue: AbstractQueue) -> None:
        self.queue = queue
        self.messages: list[AbstractIncomingMessage] = []

    async def about(self, segment_id: str, count: int = 1) -> list[AbstractIncomingMessage]:
        async def probe() -> list[AbstractIncomingMessage] | None:
            while (message := await self.queue.get(fail=False, no_ack=True)) is not None:
                self.messages.append(message)
            found = [m for m in self.messages if body(m).get("segment_id") == segment_id]
            return found if len(found) >= count else None

        return await wait_for(probe, timeout=30)


def body(message: AbstractIncomingMessage) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(message.body)
    return decoded


async def create_segment(client: httpx.AsyncClient, tenant: Tenant) -> str:
    response = await client.post(
        "/api/v2/segments/", json=segment_body(tenant.list_id), headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    segment_id: str = response.json()["id"]
    return segment_id


async def outbox_row(conn: asyncpg.Connection, segment_id: str, key: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        """SELECT message_id, body, sent_at, attempts, last_error FROM outbox
           WHERE body->>'segment_id' = $1 AND routing_key = $2""",
        segment_id,
        key,
    )
    assert row is not None
    return row


async def test_relay_publishes_contract_messages_woken_by_notify(
    api_settings: Settings, amqp_url: str, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    # Polling every 10 minutes: only NOTIFY can make the message go out within the wait.
    settings = api_settings.model_copy(update={"outbox_poll_interval_s": 600.0})
    async with tap(amqp_url) as queue, running_app(settings) as (app, client):
        relay = app.state.ctx.relay
        await wait_for(lambda: _true(relay.broker_connected))
        segment_id = await create_segment(client, tenant)
        (message,) = await Received(queue).about(segment_id)
        row = await outbox_row(conn, segment_id, "segment.created")
        assert message.routing_key == "segment.created"
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.message_id == str(row["message_id"])
        assert body(message) == {
            "schema": 1,
            "account_id": str(tenant.account_id),
            "segment_id": segment_id,
            "generation": 1,
        }

        async def marked_sent() -> bool:
            return (await outbox_row(conn, segment_id, "segment.created"))["sent_at"] is not None

        await wait_for(marked_sent)


async def _true(value: bool) -> bool:
    return value


async def test_polling_picks_up_rows_written_without_notify(
    api_settings: Settings, amqp_url: str, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment_id = str(uuid.uuid4())
    async with tap(amqp_url) as queue, running_app(api_settings):
        await conn.execute(
            "INSERT INTO outbox (routing_key, body) VALUES ('segment.refresh', $1)",
            {
                "schema": 1,
                "account_id": str(tenant.account_id),
                "segment_id": segment_id,
                "generation": 1,
            },
        )
        (message,) = await Received(queue).about(segment_id)
        assert message.routing_key == "segment.refresh"


async def test_messages_of_one_segment_keep_their_order(
    client: httpx.AsyncClient, amqp_url: str, tenant: Tenant
) -> None:
    async with tap(amqp_url) as queue:
        segment_id = await create_segment(client, tenant)
        rules = {"any": [{"all": [{"kind": "field", "field": "city", "operator": "is_null"}]}]}
        for request in (
            client.patch(
                f"/api/v2/segments/{segment_id}/",
                json={"rules_json": rules},
                headers=tenant.headers,
            ),
            client.post(f"/api/v2/segments/{segment_id}/rebuild/", headers=tenant.headers),
        ):
            assert (await request).status_code == 200
        messages = await Received(queue).about(segment_id, count=3)
    assert [(m.routing_key, body(m)["generation"]) for m in messages] == [
        ("segment.created", 1),
        ("segment.updated", 2),
        ("segment.rebuild", 2),
    ]


async def test_two_relays_publish_each_row_once(
    api_settings: Settings, amqp_url: str, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    async with (
        tap(amqp_url) as queue,
        running_app(api_settings) as (_, first),
        running_app(api_settings) as (_, second),
    ):
        ids = [await create_segment(c, tenant) for c in (first, second) * 10]

        async def all_sent() -> bool:
            unsent = await conn.fetchval(
                """SELECT count(*) FROM outbox
                   WHERE body->>'segment_id' = ANY($1::text[]) AND sent_at IS NULL""",
                ids,
            )
            return bool(unsent == 0)

        await wait_for(all_sent)
        received = Received(queue)
        for segment_id in ids:
            await received.about(segment_id)
    # Every message is in the queue before its row is marked sent: count them all now.
    counts = [sum(body(m).get("segment_id") == i for m in received.messages) for i in ids]
    assert counts == [1] * len(ids)


async def test_broker_down_then_back(
    api_settings: Settings, amqp_url: str, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    broker = urlsplit(amqp_url)
    proxy = TcpProxy(broker.hostname or "127.0.0.1", broker.port or 5672)
    port = await proxy.start()
    proxied = through(amqp_url, port)
    settings = api_settings.model_copy(update={"amqp_url": proxied})
    try:
        async with tap(amqp_url) as queue, running_app(settings) as (app, client):
            relay = app.state.ctx.relay
            await wait_for(lambda: _true(relay.broker_connected))
            await proxy.stop()
            await wait_for(lambda: _true(not relay.broker_connected))
            assert (await client.get("/readyz")).status_code == 503

            segment_id = await create_segment(client, tenant)  # 200 with the broker down

            async def failures_reported() -> bool:
                metrics = (await client.get("/metrics")).text
                return "segments_outbox_publish_failures_total" in metrics

            await wait_for(failures_reported)
            readiness = await client.get("/readyz")
            assert readiness.status_code == 503
            assert readiness.json()["broker"] == "unavailable"
            assert readiness.json()["broker_error"]
            assert readiness.json()["outbox"]["backlog"] >= 1
            assert (await outbox_row(conn, segment_id, "segment.created"))["sent_at"] is None

            await proxy.start()
            (message,) = await Received(queue).about(segment_id)
            assert body(message)["generation"] == 1

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await wait_for(ready)
            assert (await outbox_row(conn, segment_id, "segment.created"))["sent_at"] is not None
    finally:
        await proxy.stop()
