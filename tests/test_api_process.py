"""`segments api` as a real process on a free port, talked to over HTTP."""

from __future__ import annotations

import asyncpg
import httpx

from tests.api_fixtures import api_process, make_tenant, segment_body
from tests.waiting import wait_for


async def test_segments_api_process_serves_publishes_and_stops_cleanly(
    database_url: str, amqp_url: str, conn: asyncpg.Connection
) -> None:
    tenant = await make_tenant(conn)
    with api_process(database_url, amqp_url) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            created = await http.post(
                "/api/v2/segments", json=segment_body(tenant.list_id), headers=tenant.headers
            )
            assert created.status_code == 200, created.text
            assert created.headers["X-RateLimit-Limit"] == "60"  # the default
            segment_id = created.json()["id"]
            got = await http.get(f"/api/v2/segments/{segment_id}/", headers=tenant.headers)
            assert got.json() == created.json()

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await wait_for(ready)

            async def published() -> bool:
                sent = await conn.fetchval(
                    "SELECT sent_at IS NOT NULL FROM outbox WHERE body->>'segment_id' = $1",
                    segment_id,
                )
                return bool(sent)

            await wait_for(published)
            spec = (await http.get("/openapi.json")).json()
            assert "/api/v2/segments/" in spec["paths"]
        assert server.stop() == 0  # SIGTERM: graceful shutdown, exit status 0
        assert "Traceback" not in server.log()
