"""The read-only v1 API and the simple API over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, client_with, make_contact, segment_body
from tests.waiting import wait_for
from worker.settings import Settings

SEED_RULES = [
    {"field": "status", "operator": "equals", "value": "active"},
    {"field": "company", "operator": "contains", "value": "Inc"},
]


async def make_v1_segment(conn: asyncpg.Connection, tenant: Tenant, rules: Any) -> uuid.UUID:
    """v1 segments are made in the dashboard (the backing API writes the row directly)."""
    segment_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO segments (account_id, name, description, dialect, rules, status,
                                 total_count, last_built_at)
           VALUES ($1, 'High-Engagement Users', 'Opened at least 3', 'v1', $2, 'DONE', 1248,
                   now())
           RETURNING id""",
        tenant.account_id,
        rules,
    )
    return segment_id


async def test_v1_lists_segments_in_the_seed_shape(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    rules = {
        "matchType": "all",
        "filters": [
            {"field": "opens_count", "operator": "gte", "value": 3},
            {"field": "last_open_at", "operator": "within_days", "value": 90},
        ],
    }
    sid = await make_v1_segment(conn, tenant, rules)
    response = await client.get("/api/v1/segments", headers=tenant.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["pagination"] == {"page": 1, "limit": 50, "total": 1, "totalPages": 1}
    (segment,) = body["data"]
    assert segment["id"] == str(sid)
    assert segment["matchType"] == "all"
    assert segment["filters"] == rules["filters"]
    assert segment["cachedCount"] == 1248
    assert set(segment) == {
        "id",
        "name",
        "description",
        "matchType",
        "filters",
        "contactListIds",
        "cachedCount",
        "lastCountedAt",
        "createdAt",
    }
    assert segment["contactListIds"] == []
    # The v1 segment shows in v2 too, rules in canonical form.
    v2 = (await client.get(f"/api/v2/segments/{sid}/", headers=tenant.headers)).json()
    assert v2["rules_json"] == {
        "any": [
            {
                "all": [
                    {"kind": "field", "field": "opens_count", "operator": "gte", "value": 3},
                    {
                        "kind": "field",
                        "field": "last_open_at",
                        "operator": "within_days",
                        "value": 90,
                    },
                ]
            }
        ]
    }


async def test_v1_shows_v2_segments_in_v1_terms(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rules = {
        "any": [
            {"all": [{"kind": "field", "field": "status", "operator": "equals", "value": "a"}]},
            {"all": [{"kind": "field", "field": "city", "operator": "is_null"}]},
        ]
    }
    await client.post(
        "/api/v2/segments/",
        json=segment_body(tenant.list_id, rules_json=rules),
        headers=tenant.headers,
    )
    (segment,) = (await client.get("/api/v1/segments", headers=tenant.headers)).json()["data"]
    assert segment["matchType"] == "any"
    assert segment["filters"] == [
        {"field": "status", "operator": "eq", "value": "a"},
        {"field": "city", "operator": "not_exists", "value": None},
    ]
    assert segment["cachedCount"] is None
    # The v2 segment's universe is its list: shown beside the filters, not as one of them.
    assert segment["contactListIds"] == [str(tenant.list_id)]


async def test_v1_pagination_and_id(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    rules = {"matchType": "any", "filters": [{"field": "city", "operator": "exists"}]}
    ids = [await make_v1_segment(conn, tenant, rules) for _ in range(3)]
    page = await client.get("/api/v1/segments?page=2&limit=2", headers=tenant.headers)
    assert page.json()["pagination"] == {"page": 2, "limit": 2, "total": 3, "totalPages": 2}
    assert [s["id"] for s in page.json()["data"]] == [str(ids[2])]
    one = await client.get(f"/api/v1/segments?id={ids[1]}", headers=tenant.headers)
    assert [s["id"] for s in one.json()["data"]] == [str(ids[1])]
    assert one.json()["pagination"]["total"] == 1
    for bad in ("not-an-id", str(uuid.uuid4())):
        missing = await client.get(f"/api/v1/segments?id={bad}", headers=tenant.headers)
        assert missing.status_code == 404
    too_many = await client.get("/api/v1/segments?limit=101", headers=tenant.headers)
    assert too_many.status_code == 400
    assert too_many.json()["errors"][0]["loc"] == "limit"


async def test_simple_post_stores_an_all_contacts_segment(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/segments",
        json={"name": "Active Enterprise", "rules": SEED_RULES},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    created = response.json()
    assert isinstance(created["id"], int)
    assert created == {
        "id": 1,  # the account's first segment
        "name": "Active Enterprise",
        "rules": SEED_RULES,
        "contact_list_ids": [],
        "contacts_count": None,  # no worker in this test: the wait ran out
        "status": "PENDING",
        "error": None,
    }
    row = await conn.fetchrow(
        """SELECT dialect, rules, contact_list_ids, generation FROM segments
           WHERE account_id = $1 AND number = $2""",
        tenant.account_id,
        created["id"],
    )
    assert (row["dialect"], row["rules"], row["contact_list_ids"]) == ("simple", SEED_RULES, [])
    listed = (await client.get("/api/segments", headers=tenant.headers)).json()
    assert listed == [created]
    assert (await client.get("/api/segments/", headers=tenant.headers)).json() == [created]


async def test_simple_post_waits_for_the_build_and_returns_its_count(
    api_settings: Settings, tenant: Tenant, conn: asyncpg.Connection
) -> None:

    async def finish_build() -> None:
        # Stands in for the worker: wait for the row, then mark the build DONE.
        async def pending() -> uuid.UUID | None:
            found: uuid.UUID | None = await conn.fetchval(
                "SELECT id FROM segments WHERE account_id = $1 AND name = 'waited'",
                tenant.account_id,
            )
            return found

        segment_id = await wait_for(pending)
        await conn.execute(
            "UPDATE segments SET status = 'DONE', total_count = 142 WHERE id = $1", segment_id
        )

    builder = asyncio.create_task(finish_build())
    async with client_with(api_settings, api_simple_wait_s=30.0) as client:
        response = await client.post(
            "/api/segments", json={"name": "waited", "rules": SEED_RULES}, headers=tenant.headers
        )
    await builder
    assert response.status_code == 200
    assert response.json()["contacts_count"] == 142
    assert response.json()["status"] == "DONE"


async def test_simple_rule_errors_are_located(client: httpx.AsyncClient, tenant: Tenant) -> None:
    rules = [
        {"field": "status", "operator": "equals", "value": "a"},
        {"field": "created_at", "operator": "after", "value": "yesterday"},
        {"field": "nope", "operator": "equals", "value": "x"},
        {"field": "city", "operator": "like", "value": "x"},
    ]
    response = await client.post(
        "/api/segments", json={"name": "bad", "rules": rules}, headers=tenant.headers
    )
    assert response.status_code == 400
    assert [e["loc"] for e in response.json()["errors"]] == [
        "rules[1].value",
        "rules[2].field",
        "rules[3].operator",
    ]
    empty = await client.post(
        "/api/segments", json={"name": "e", "rules": []}, headers=tenant.headers
    )
    assert empty.status_code == 400
    assert empty.json()["errors"][0]["loc"] == "rules"


async def test_simple_shows_v2_segments_and_their_contacts(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    created = await client.post(
        "/api/v2/segments/", json=segment_body(tenant.list_id), headers=tenant.headers
    )
    sid = uuid.UUID(created.json()["id"])
    (listed,) = (await client.get("/api/segments", headers=tenant.headers)).json()
    assert listed["rules"][0] == {"field": "status", "operator": "equals", "value": "subscribed"}
    assert listed["rules"][1]["field"] == "_activity"
    # Its list is its universe: shown beside the rules, so no one reads the rules alone as
    # the membership.
    assert listed["contact_list_ids"] == [str(tenant.list_id)]
    number = listed["id"]
    contact_id = await make_contact(
        conn, tenant.account_id, "alice@acme-inc.com", name="Alice Chen", company="Acme Inc"
    )
    await conn.execute(
        "INSERT INTO segment_members (segment_id, contact_id, account_id) VALUES ($1, $2, $3)",
        sid,
        contact_id,
        tenant.account_id,
    )
    path = f"/api/segments/contacts?segment_id={number}"
    building = await client.get(path, headers=tenant.headers)
    assert building.json() == []  # not DONE yet, and the header says so
    assert building.headers["X-Segment-Status"] == "PENDING"
    await conn.execute("UPDATE segments SET status = 'DONE', total_count = 1 WHERE id = $1", sid)
    (contact,) = (await client.get(path, headers=tenant.headers)).json()
    assert contact["id"] == str(contact_id)
    assert (contact["email"], contact["name"], contact["company"], contact["status"]) == (
        "alice@acme-inc.com",
        "Alice Chen",
        "Acme Inc",
        "subscribed",
    )
    listed_after = (await client.get("/api/segments", headers=tenant.headers)).json()
    assert listed_after[0]["contacts_count"] == 1
    for bad, status in (("abc", 400), ("0", 400), ("99999999999", 404)):
        response = await client.get(
            f"/api/segments/contacts?segment_id={bad}", headers=tenant.headers
        )
        assert response.status_code == status
    missing = await client.get("/api/segments/contacts", headers=tenant.headers)
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["loc"] == "segment_id"
