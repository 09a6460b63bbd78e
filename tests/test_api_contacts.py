"""Contact ingestion over HTTP: data and its contact.changed outbox rows, in one transaction."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, make_contact


async def changed_messages(conn: asyncpg.Connection, tenant: Tenant) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT body FROM outbox
           WHERE routing_key = 'contact.changed' AND body->>'account_id' = $1 ORDER BY id""",
        str(tenant.account_id),
    )
    return [r["body"] for r in rows]


async def test_upsert_creates_then_updates_only_the_keys_sent(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    first = await client.post(
        "/api/v2/contacts",
        json={
            "contacts": [
                {
                    "email": "a@example.com",
                    "name": "Ann",
                    "company": "Acme",
                    "tags": ["VIP"],
                    "attributes": {"plan": "pro", "seats": 3},
                },
                {"email": "b@example.com", "status": "pending"},
            ]
        },
        headers=tenant.headers,
    )
    assert first.status_code == 200, first.text
    items = first.json()["items"]
    assert [(i["email"], i["created"]) for i in items] == [
        ("a@example.com", True),
        ("b@example.com", True),
    ]
    second = await client.post(
        "/api/v2/contacts",
        json={
            "contacts": [
                {"email": " A@Example.com ", "company": None, "attributes": {"seats": 5}},
                {"email": "c@example.com"},
            ]
        },
        headers=tenant.headers,
    )
    assert [(i["email"], i["created"]) for i in second.json()["items"]] == [
        ("a@example.com", False),
        ("c@example.com", True),
    ]
    assert second.json()["items"][0]["id"] == items[0]["id"]
    rows = {
        r["email"]: r
        for r in await conn.fetch("SELECT * FROM contacts WHERE account_id = $1", tenant.account_id)
    }
    ann = rows["a@example.com"]
    assert (ann["name"], ann["company"], ann["tags"], ann["status"]) == (
        "Ann",
        None,
        ["VIP"],
        "subscribed",
    )
    assert ann["attributes"] == {"plan": "pro", "seats": 5}
    assert rows["b@example.com"]["status"] == "pending"
    messages = await changed_messages(conn, tenant)
    assert len(messages) == 3
    assert messages[0]["schema"] == 1
    assert sorted(messages[0]["contact_ids"]) == sorted(i["id"] for i in items)
    assert messages[0]["changed_at"].endswith("Z")
    # Created contacts are new to every segment: no hints. Updated ones: the keys sent, the
    # custom fields by key, and updated_at.
    assert "changed" not in messages[0]
    assert messages[1]["contact_ids"] == [second.json()["items"][1]["id"]]
    assert "changed" not in messages[1]
    assert messages[2]["contact_ids"] == [items[0]["id"]]
    assert messages[2]["changed"] == {
        "fields": ["company", "seats", "updated_at"],
        "events": [],
        "lists": False,
    }


async def test_upsert_rejects_bad_contacts_with_locations(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    response = await client.post(
        "/api/v2/contacts",
        json={
            "contacts": [
                {"email": "ok@example.com"},
                {"email": "not an email"},
                {"email": "ok@example.com", "status": "zombie"},
                {"email": "x@example.com", "name": "nul\u0000"},
                {"email": "y@example.com", "attributes": {"k": "\u0000"}},
            ]
        },
        headers=tenant.headers,
    )
    assert response.status_code == 400
    assert [e["loc"] for e in response.json()["errors"]] == [
        "contacts[1].email",
        "contacts[2].status",
        "contacts[3].name",
        "contacts[4].attributes",
    ]
    duplicate = await client.post(
        "/api/v2/contacts",
        json={"contacts": [{"email": "d@example.com"}, {"email": "d@example.com"}]},
        headers=tenant.headers,
    )
    assert duplicate.status_code == 400
    assert duplicate.json()["errors"][0]["loc"] == "contacts[1].email"
    assert await changed_messages(conn, tenant) == []


async def test_events_append_and_unknown_contacts_are_located(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    mine = await make_contact(conn, tenant.account_id, "m@example.com")
    theirs = await make_contact(conn, other.account_id, "t@example.com")
    campaign = str(uuid.uuid4())
    response = await client.post(
        "/api/v2/events",
        json={
            "events": [
                {"contact_id": str(mine), "type": "open", "campaign_id": campaign},
                {"contact_id": str(mine), "type": "click", "occurred_at": "2026-01-02T03:04:05"},
            ]
        },
        headers=tenant.headers,
    )
    assert response.status_code == 200
    assert response.json() == {"inserted": 2}
    rows = await conn.fetch(
        "SELECT type, campaign_id, occurred_at FROM events WHERE contact_id = $1 ORDER BY type",
        mine,
    )
    assert [r["type"] for r in rows] == ["click", "open"]
    assert rows[0]["occurred_at"].isoformat() == "2026-01-02T03:04:05+00:00"  # no offset: UTC
    assert str(rows[1]["campaign_id"]) == campaign
    (message,) = await changed_messages(conn, tenant)
    assert message["contact_ids"] == [str(mine)]
    assert message["changed"] == {"fields": [], "events": ["click", "open"], "lists": False}
    foreign = await client.post(
        "/api/v2/events",
        json={
            "events": [
                {"contact_id": str(mine), "type": "open"},
                {"contact_id": str(theirs), "type": "open"},
            ]
        },
        headers=tenant.headers,
    )
    assert foreign.status_code == 400
    assert foreign.json()["errors"][0]["loc"] == "events[1].contact_id"
    assert await conn.fetchval("SELECT count(*) FROM events WHERE contact_id = $1", theirs) == 0
    out_of_range = await client.post(
        "/api/v2/events",
        json={
            "events": [
                {"contact_id": str(mine), "type": "open", "occurred_at": "0001-01-01T00:00+05:00"}
            ]
        },
        headers=tenant.headers,
    )
    assert out_of_range.status_code == 400
    assert out_of_range.json()["errors"][0]["loc"] == "events[0].occurred_at"


async def test_list_members_add_and_remove(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    a = await make_contact(conn, tenant.account_id, "a@example.com")
    b = await make_contact(conn, tenant.account_id, "b@example.com")
    path = f"/api/v2/lists/{tenant.list_id}/members"
    added = await client.post(path, json={"add": [str(a), str(b)]}, headers=tenant.headers)
    assert added.json() == {"added": 2, "removed": 0}
    again = await client.post(
        path, json={"add": [str(a)], "remove": [str(b)]}, headers=tenant.headers
    )
    assert again.json() == {"added": 0, "removed": 1}
    members = await conn.fetch(
        "SELECT contact_id FROM contact_list_members WHERE list_id = $1", tenant.list_id
    )
    assert [m["contact_id"] for m in members] == [a]
    messages = await changed_messages(conn, tenant)
    assert [sorted(m["contact_ids"]) for m in messages] == [sorted([str(a), str(b)]), [str(b)]]
    assert [m["changed"] for m in messages] == [{"fields": [], "events": [], "lists": True}] * 2
    noop = await client.post(path, json={"add": [str(a)]}, headers=tenant.headers)
    assert noop.json() == {"added": 0, "removed": 0}
    assert len(await changed_messages(conn, tenant)) == 2  # nothing changed, nothing sent
    foreign_list = await client.post(
        f"/api/v2/lists/{other.list_id}/members", json={"add": [str(a)]}, headers=tenant.headers
    )
    assert foreign_list.status_code == 404
    theirs = await make_contact(conn, other.account_id, "t@example.com")
    foreign_contact = await client.post(path, json={"add": [str(theirs)]}, headers=tenant.headers)
    assert foreign_contact.status_code == 400
    assert foreign_contact.json()["errors"][0]["loc"] == "add[0]"
    both = await client.post(
        path, json={"add": [str(a)], "remove": [str(a)]}, headers=tenant.headers
    )
    assert both.status_code == 400
    assert both.json()["errors"][0]["loc"] == "remove[0]"


async def test_changes_split_into_messages_of_1000_ids(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(2500)]
    response = await client.post(
        "/api/v2/contacts/changes", json={"contact_ids": [*ids, ids[0]]}, headers=tenant.headers
    )
    assert response.status_code == 202
    assert response.json() == {"contact_ids": 2500, "messages": 3}
    messages = await changed_messages(conn, tenant)
    assert [len(m["contact_ids"]) for m in messages] == [1000, 1000, 500]
    assert [i for m in messages for i in m["contact_ids"]] == ids
    assert {m["account_id"] for m in messages} == {str(tenant.account_id)}
    empty = await client.post(
        "/api/v2/contacts/changes", json={"contact_ids": []}, headers=tenant.headers
    )
    assert empty.status_code == 400
    assert empty.json()["errors"][0]["loc"] == "contact_ids"
    bad = await client.post(
        "/api/v2/contacts/changes", json={"contact_ids": ["x"]}, headers=tenant.headers
    )
    assert bad.json()["errors"][0]["loc"] == "contact_ids[0]"


async def test_changes_carry_the_hints_given(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    ids = [str(uuid.uuid4())]
    hinted = await client.post(
        "/api/v2/contacts/changes",
        json={"contact_ids": ids, "changed": {"fields": ["status"], "lists": True}},
        headers=tenant.headers,
    )
    assert hinted.status_code == 202, hinted.text
    (message,) = await changed_messages(conn, tenant)
    assert message["changed"] == {"fields": ["status"], "events": [], "lists": True}
    bad = await client.post(
        "/api/v2/contacts/changes",
        json={"contact_ids": ids, "changed": {"events": ["opened"]}},
        headers=tenant.headers,
    )
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["loc"] == "changed.events[0]"
    assert len(await changed_messages(conn, tenant)) == 1
