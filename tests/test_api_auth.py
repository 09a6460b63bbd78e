"""Keys, scopes, tenant isolation and the per-key rate limit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from api_shim.ratelimit import RateLimiter
from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, client_with, segment_body
from worker.settings import Settings


async def test_missing_unknown_and_revoked_keys_are_401(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    for headers in ({}, {"X-API-Key": "sk_nope"}, {"X-API-Key": ""}):
        response = await client.get("/api/v2/segments/", headers=headers)
        assert response.status_code == 401
        assert response.json()["errors"][0]["type"] == "unauthorized"
    await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE account_id = $1", tenant.account_id
    )
    revoked = await client.get("/api/v2/segments/", headers=tenant.headers)
    assert revoked.status_code == 401


async def test_bearer_token_works_on_v1_only(client: httpx.AsyncClient, tenant: Tenant) -> None:
    bearer = {"Authorization": f"Bearer {tenant.key}"}
    assert (await client.get("/api/v1/segments", headers=bearer)).status_code == 200
    assert (await client.get("/api/v2/segments/", headers=bearer)).status_code == 401
    assert (await client.get("/api/segments", headers=bearer)).status_code == 401


async def test_scopes_are_enforced(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    read_only = await tenant.key_with(conn, "segments:read")
    write_only = await tenant.key_with(conn, "segments:write")
    contacts_only = await tenant.key_with(conn, "contacts:write")
    body = segment_body(tenant.list_id)
    created = await client.post("/api/v2/segments/", json=body, headers=write_only)
    assert created.status_code == 200
    sid = created.json()["id"]
    cases = [
        (read_only, "POST", "/api/v2/segments/", body, 403),
        (read_only, "PATCH", f"/api/v2/segments/{sid}/", {"name": "x"}, 403),
        (read_only, "DELETE", f"/api/v2/segments/{sid}/", None, 403),
        (read_only, "POST", f"/api/v2/segments/{sid}/rebuild/", None, 403),
        (read_only, "POST", "/api/segments", {"name": "x", "rules": []}, 403),
        (read_only, "POST", "/api/v2/contacts/changes", {"contact_ids": [sid]}, 403),
        (write_only, "GET", "/api/v2/segments/", None, 403),
        (write_only, "GET", "/api/v1/segments", None, 403),
        (write_only, "GET", "/api/segments", None, 403),
        (contacts_only, "GET", f"/api/v2/segments/{sid}/", None, 403),
        (read_only, "GET", f"/api/v2/segments/{sid}/", None, 200),
        (read_only, "GET", "/api/segments/contacts?segment_id=9000000000", None, 404),
        (contacts_only, "POST", "/api/v2/contacts/changes", {"contact_ids": [sid]}, 202),
    ]
    for headers, method, path, json, status in cases:
        response = await client.request(method, path, json=json, headers=headers)
        assert response.status_code == status, (method, path, response.text)
        if status == 403:
            assert response.json()["errors"][0]["type"] == "missing_scope"


async def test_another_accounts_segment_is_404_everywhere(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    created = await client.post(
        "/api/v2/segments/", json=segment_body(tenant.list_id), headers=tenant.headers
    )
    sid = created.json()["id"]
    simple = await client.post(
        "/api/segments",
        json={"name": "s", "rules": [{"field": "city", "operator": "equals", "value": "x"}]},
        headers=tenant.headers,
    )
    number = simple.json()["id"]
    for method, path, json in [
        ("GET", f"/api/v2/segments/{sid}/", None),
        ("PATCH", f"/api/v2/segments/{sid}/", {"name": "stolen"}),
        ("DELETE", f"/api/v2/segments/{sid}/", None),
        ("POST", f"/api/v2/segments/{sid}/rebuild/", None),
        ("GET", f"/api/v2/segments/{sid}/contacts/", None),
        ("GET", f"/api/v1/segments?id={sid}", None),
        ("GET", f"/api/segments/contacts?segment_id={number}", None),
    ]:
        response = await client.request(method, path, json=json, headers=other.headers)
        assert response.status_code == 404, (method, path)
    assert (await client.get("/api/v2/segments/", headers=other.headers)).json()["items"] == []
    assert (await client.get("/api/v1/segments", headers=other.headers)).json()["data"] == []
    assert (await client.get("/api/segments", headers=other.headers)).json() == []
    mine = await client.get(f"/api/v2/segments/{sid}/", headers=tenant.headers)
    assert mine.json()["name"] == "Active Gmail Subscribers"


async def test_rate_limit_headers_on_every_authenticated_answer(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    ok = await client.get("/api/v2/segments/", headers=tenant.headers)
    missing = await client.get(f"/api/v2/segments/{uuid.uuid4()}/", headers=tenant.headers)
    for response in (ok, missing):
        assert response.headers["X-RateLimit-Limit"] == "100000"
        assert int(response.headers["X-RateLimit-Remaining"]) >= 0
        assert "X-RateLimit-Reset" in response.headers


@pytest.fixture
async def limited_client(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client_with(api_settings, api_rate_limit_per_minute=3) as http:
        yield http


async def test_rate_limit_answers_429_with_retry_after_per_key(
    limited_client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    remaining = []
    for _ in range(3):
        response = await limited_client.get("/api/v2/segments/", headers=tenant.headers)
        assert response.status_code == 200
        remaining.append(response.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    refused = await limited_client.get("/api/v2/segments/", headers=tenant.headers)
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["type"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    # Another key has its own bucket.
    assert (await limited_client.get("/api/v2/segments/", headers=other.headers)).status_code == 200
    metrics = (await limited_client.get("/metrics")).text
    assert "segments_http_rate_limited_total" in metrics


def test_token_bucket_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    key = uuid.uuid4()
    assert all(limiter.take(key).allowed for _ in range(60))
    refused = limiter.take(key)
    assert not refused.allowed
    assert refused.retry_after_s == 1
    now[0] += 1.0  # one token per second at 60/min
    assert limiter.take(key).allowed
    assert not limiter.take(key).allowed
    now[0] += 120
    decision = limiter.take(key)
    assert (decision.allowed, decision.remaining) == (True, 59)  # capped at the burst size
