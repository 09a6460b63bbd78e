"""The whole service as users run it: `segments api` and `segments worker` as real processes,
segments created over HTTP in all three dialects, data written the way the backing API does
(straight into the shared tables), `contact.changed` published by an outside producer with
aio-pika, and every count and member list checked against the reference evaluator."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest

from tests.reference_db import reference_members
from tests.waiting import wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    base_url: str
    env: dict[str, str]


async def _cli(env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "segments.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, args
    return out.decode()


@pytest.fixture
async def service(
    database_url: str, amqp_url: str, tmp_path: pathlib.Path
) -> AsyncIterator[Service]:
    port = _free_port()
    env = {
        **os.environ,
        "SEGMENTS_DATABASE_URL": database_url,
        "SEGMENTS_AMQP_URL": amqp_url,
        "SEGMENTS_API_PORT": str(port),
        "SEGMENTS_WORKER_METRICS_PORT": "0",
        "SEGMENTS_LOG_FORMAT": "json",
        "SEGMENTS_API_RATE_LIMIT_PER_MINUTE": "100000",  # the test polls
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "segments.cli",
            command,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            # Their logs stay beside the test's other files, for reading when it fails.
            stderr=(tmp_path / f"{command}.log").open("w"),
        )
        for command in ("api", "worker")
    ]
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, timeout=60)
        yield Service(base_url, env)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            assert await asyncio.wait_for(process.wait(), timeout=60) == 0


async def _seed(conn: asyncpg.Connection, account_id: uuid.UUID) -> dict[str, Any]:
    """A small account written the way the backing API writes: straight into the tables."""
    newsletter = await conn.fetchval(
        "INSERT INTO contact_lists (account_id, name) VALUES ($1, 'newsletter') RETURNING id",
        account_id,
    )
    blocked = await conn.fetchval(
        "INSERT INTO contact_lists (account_id, name) VALUES ($1, 'blocked') RETURNING id",
        account_id,
    )
    await conn.execute(
        "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, 'plan', 'text')",
        account_id,
    )
    now = datetime.now(UTC)
    ids = []
    for i in range(40):
        ids.append(
            await conn.fetchval(
                """INSERT INTO contacts (account_id, email, status, country, company, tags,
                       isp_id, attributes)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
                account_id,
                f"person{i}@example.com",
                ["subscribed", "unsubscribed", "bounced"][i % 3],
                ["DE", "fr", "US", None][i % 4],
                ["Acme Inc", "Globex", "", None][i % 4],
                [["VIP"], [], ["news", "vip"]][i % 3],
                [1, 2, None][i % 3],
                {"plan": ["pro", "free"][i % 2]},
            )
        )
    for i, contact in enumerate(ids):
        if i % 5 != 4:
            await conn.execute(
                "INSERT INTO contact_list_members (list_id, contact_id, account_id)"
                " VALUES ($1, $2, $3)",
                newsletter,
                contact,
                account_id,
            )
        if i % 7 == 0:
            await conn.execute(
                "INSERT INTO contact_list_members (list_id, contact_id, account_id)"
                " VALUES ($1, $2, $3)",
                blocked,
                contact,
                account_id,
            )
        for k in range(i % 4):
            await conn.execute(
                "INSERT INTO events (account_id, contact_id, type, occurred_at)"
                " VALUES ($1, $2, $3, $4)",
                account_id,
                contact,
                ["open", "click", "bounce"][k % 3],
                now - timedelta(days=5 * i + k),
            )
    return {"newsletter": newsletter, "blocked": blocked, "contacts": ids}


async def test_segments_over_http_follow_the_data_end_to_end(
    conn: asyncpg.Connection, service: Service, amqp_url: str
) -> None:
    created = json.loads(await _cli(service.env, "account", "create", "e2e"))
    account_id, key = uuid.UUID(created["account_id"]), created["api_key"]
    seeded = await _seed(conn, account_id)
    headers = {"X-API-Key": key}
    engaged = [
        _field("status", "equals", "subscribed"),
        {"kind": "activity", "metric": "open", "operator": "ever",
         "days_window": {"mode": "last", "days": 90}},
        {"kind": "membership", "operator": "not_in", "list_ids": [str(seeded["blocked"])]},
    ]  # fmt: skip
    vip = [
        _field("tags", "has_any", ["vip"]),
        {"kind": "isp", "operator": "not_in", "values": [2]},
        _field("plan", "equals", "PRO"),
    ]
    v2_rules = {"any": [{"all": engaged}, {"all": vip}]}
    simple_rules = [
        {"field": "company", "operator": "contains", "value": "inc"},
        {"field": "status", "operator": "not_equals", "value": "bounced"},
    ]
    async with httpx.AsyncClient(base_url=service.base_url, headers=headers) as client:
        response = await client.post(
            "/api/v2/segments/",
            json={
                "name": "Engaged or VIP",
                "color": "#7cb7de",
                "contact_list_ids": [str(seeded["newsletter"])],
                "rules_json": v2_rules,
            },
        )
        assert response.status_code == 200, response.text
        v2 = response.json()
        assert (v2["status"], v2["total_count"]) == ("PENDING", None)
        simple = await client.post("/api/segments", json={"name": "Inc", "rules": simple_rules})
        assert simple.status_code == 200, simple.text

        async def v2_done() -> dict[str, Any] | None:
            body = (await client.get(f"/api/v2/segments/{v2['id']}/")).json()
            return body if body["status"] == "DONE" else None

        built = await wait_for(v2_done, timeout=60)
        expected = await reference_members(conn, account_id, "v2", v2_rules, [seeded["newsletter"]])
        assert built["total_count"] == len(expected) > 0
        assert await _member_ids(client, v2["id"]) == expected

        simple_expected = await reference_members(conn, account_id, "simple", simple_rules)

        async def simple_done() -> dict[str, Any] | None:
            rows = (await client.get("/api/segments")).json()
            (row,) = [r for r in rows if r["id"] == simple.json()["id"]]
            return row if row["contacts_count"] is not None else None

        assert (await wait_for(simple_done))["contacts_count"] == len(simple_expected)
        v1 = (await client.get("/api/v1/segments", params={"id": v2["id"]})).json()
        assert v1["data"][0]["cachedCount"] == len(expected)

        # The data changes; a producer tells the service, as any producer would.
        movers = seeded["contacts"][:12]
        await conn.execute(
            "UPDATE contacts SET status = 'subscribed', company = 'Initech Inc'"
            " WHERE id = ANY($1::uuid[])",
            movers,
        )
        await conn.execute("DELETE FROM contacts WHERE id = $1", seeded["contacts"][20])
        await _produce_changes(amqp_url, account_id, [*movers, seeded["contacts"][20]])
        moved = await reference_members(conn, account_id, "v2", v2_rules, [seeded["newsletter"]])
        assert moved != expected

        async def followed() -> bool:
            return await _member_ids(client, v2["id"]) == moved

        await wait_for(followed, timeout=60)
        final = (await client.get(f"/api/v2/segments/{v2['id']}/")).json()
        assert (final["status"], final["total_count"]) == ("DONE", len(moved))


def _field(name: str, operator: str, value: Any) -> dict[str, Any]:
    return {"kind": "field", "field": name, "operator": operator, "value": value}


async def _member_ids(client: httpx.AsyncClient, segment_id: str) -> set[uuid.UUID]:
    ids: set[uuid.UUID] = set()
    page = 1
    while True:
        body = (
            await client.get(
                f"/api/v2/segments/{segment_id}/contacts/",
                params={"page": page, "page_size": 100},
            )
        ).json()
        ids |= {uuid.UUID(item["id"]) for item in body["items"]}
        if page >= body["pagination"]["total_pages"]:
            return ids
        page += 1


async def _produce_changes(amqp_url: str, account_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
    """What an outside producer does: plain aio-pika, the documented exchange and body."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("segments")
        body = {
            "schema": 1,
            "account_id": str(account_id),
            "contact_ids": [str(i) for i in ids],
            "changed_at": datetime.now(UTC).isoformat(),
        }
        await exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(uuid.uuid4()),
            ),
            routing_key="contact.changed",
        )
    finally:
        await connection.close()
