"""A v2 segment's timezone (docs/rules.md, timezones) over HTTP: set on create and PATCH, validated
with its location, returned, and a change is a rules change (new generation, rebuild)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, segment_body

THIS_WEEK = {
    "any": [
        {
            "all": [
                {
                    "kind": "field",
                    "field": "created_at",
                    "operator": "in_calendar",
                    "value": {"unit": "week", "offset": 0},
                }
            ]
        }
    ]
}


async def post(client: httpx.AsyncClient, tenant: Tenant, **overrides: Any) -> httpx.Response:
    return await client.post(
        "/api/v2/segments/", json=segment_body(tenant.list_id, **overrides), headers=tenant.headers
    )


async def test_timezone_defaults_to_utc_and_is_returned(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    plain = await post(client, tenant)
    assert plain.status_code == 200, plain.text
    assert plain.json()["timezone"] == "UTC"
    sydney = await post(client, tenant, timezone="Australia/Sydney", rules_json=THIS_WEEK)
    assert sydney.status_code == 200, sydney.text
    assert sydney.json()["timezone"] == "Australia/Sydney"
    row = await conn.fetchrow(
        "SELECT timezone, local_calendar, time_relative FROM segments WHERE id = $1",
        uuid.UUID(sydney.json()["id"]),
    )
    assert dict(row) == {
        "timezone": "Australia/Sydney",
        "local_calendar": True,
        "time_relative": True,
    }
    got = await client.get(f"/api/v2/segments/{sydney.json()['id']}", headers=tenant.headers)
    assert got.json()["timezone"] == "Australia/Sydney"


async def test_unknown_timezones_are_400_at_timezone_with_a_hint(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for bad, hint in (
        ("europe/amsterdam", "did you mean 'Europe/Amsterdam'?"),
        ("Mars/Olympus", "IANA name"),
        ("", None),
        (7, None),
    ):
        response = await post(client, tenant, timezone=bad)
        assert response.status_code == 400, bad
        (error,) = response.json()["errors"]
        assert error["loc"] == "timezone", bad
        if hint:
            assert hint in error["msg"], error


async def test_patch_timezone_is_a_rules_change(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    created = await post(client, tenant, rules_json=THIS_WEEK)
    sid = uuid.UUID(created.json()["id"])
    await conn.execute("UPDATE segments SET status = 'DONE', total_count = 3 WHERE id = $1", sid)
    url = f"/api/v2/segments/{sid}"
    response = await client.patch(url, json={"timezone": "Asia/Kathmandu"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["timezone"] == "Asia/Kathmandu"
    assert response.json()["status"] == "PENDING"
    assert await conn.fetchval("SELECT generation FROM segments WHERE id = $1", sid) == 2
    keys = await conn.fetch(
        "SELECT routing_key FROM outbox WHERE body->>'segment_id' = $1 ORDER BY id", str(sid)
    )
    assert [k[0] for k in keys] == ["segment.created", "segment.updated"]
    # The same timezone again changes nothing; a bad one is located.
    same = await client.patch(url, json={"timezone": "Asia/Kathmandu"}, headers=tenant.headers)
    assert same.status_code == 200
    assert await conn.fetchval("SELECT generation FROM segments WHERE id = $1", sid) == 2
    bad = await client.patch(url, json={"timezone": "Kathmandu"}, headers=tenant.headers)
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["loc"] == "timezone"
    # Rules without calendar periods clear the local-midnight refresh.
    rolling = {
        "any": [
            {
                "all": [
                    {"kind": "field", "field": "created_at", "operator": "within_days", "value": 7}
                ]
            }
        ]
    }
    await client.patch(url, json={"rules_json": rolling}, headers=tenant.headers)
    assert await conn.fetchval("SELECT local_calendar FROM segments WHERE id = $1", sid) is False


async def test_calendar_rule_errors_are_located(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rules = {
        "any": [
            {
                "all": [
                    {
                        "kind": "field",
                        "field": "email",
                        "operator": "in_calendar",
                        "value": {"unit": "week", "offset": 0},
                    },
                    {
                        "kind": "field",
                        "field": "created_at",
                        "operator": "in_calendar",
                        "value": {"unit": "fortnight", "offset": 0},
                    },
                    {
                        "kind": "activity",
                        "metric": "open",
                        "operator": "ever",
                        "days_window": {"mode": "calendar", "unit": "day", "offset": 2},
                    },
                ]
            }
        ]
    }
    response = await post(client, tenant, rules_json=rules)
    assert response.status_code == 400
    locs = [e["loc"] for e in response.json()["errors"]]
    assert locs == [
        "rules_json.any[0].all[0].operator",
        "rules_json.any[0].all[1].value.unit",
        "rules_json.any[0].all[2].days_window.offset",
    ]
