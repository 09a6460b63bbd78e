"""Managing an account's data over HTTP, without SQL: lists, custom fields, API keys, a
contact by id or email and its segments, and contact references by email."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, make_contact, segment_body
from tests.test_api_outbox import tap
from tests.waiting import wait_for
from tests.worker_support import wait_status


async def changed_ids(conn: asyncpg.Connection, tenant: Tenant) -> list[list[str]]:
    rows = await conn.fetch(
        """SELECT body FROM outbox
           WHERE routing_key = 'contact.changed' AND body->>'account_id' = $1 ORDER BY id""",
        str(tenant.account_id),
    )
    return [sorted(r["body"]["contact_ids"]) for r in rows]


def errors(response: httpx.Response) -> list[tuple[str | None, str]]:
    return [(e["loc"], e["type"]) for e in response.json()["errors"]]


def field_rules(field: str, operator: str, value: Any) -> dict[str, Any]:
    return {
        "any": [{"all": [{"kind": "field", "field": field, "operator": operator, "value": value}]}]
    }


# --- lists ----------------------------------------------------------------------------------


async def test_lists_are_created_listed_renamed_and_deleted_per_account(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    created = await client.post(
        "/api/v2/lists", json={"name": "Newsletter"}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    list_id = created.json()["id"]
    assert created.json()["members_count"] == 0
    contact = await make_contact(conn, tenant.account_id, "a@example.com")
    await client.post(
        f"/api/v2/lists/{list_id}/members", json={"add": [str(contact)]}, headers=tenant.headers
    )

    listed = await client.get("/api/v2/lists/", headers=tenant.headers)
    by_id = {item["id"]: item for item in listed.json()["items"]}
    assert set(by_id) == {list_id, str(tenant.list_id)}
    assert (by_id[list_id]["name"], by_id[list_id]["members_count"]) == ("Newsletter", 1)

    renamed = await client.patch(
        f"/api/v2/lists/{list_id}", json={"name": "Weekly"}, headers=tenant.headers
    )
    assert renamed.json()["name"] == "Weekly"
    assert (await client.get(f"/api/v2/lists/{list_id}", headers=tenant.headers)).json()[
        "name"
    ] == "Weekly"

    # Another account sees none of it, as if it did not exist.
    for method in ("GET", "PATCH", "DELETE"):
        foreign = await client.request(
            method, f"/api/v2/lists/{list_id}", json={"name": "x"}, headers=other.headers
        )
        assert foreign.status_code == 404, method
        assert errors(foreign) == [("list_id", "not_found")]
    assert str(list_id) not in {
        i["id"] for i in (await client.get("/api/v2/lists", headers=other.headers)).json()["items"]
    }

    before = len(await changed_ids(conn, tenant))
    deleted = await client.delete(f"/api/v2/lists/{list_id}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert (await client.get(f"/api/v2/lists/{list_id}", headers=tenant.headers)).status_code == 404
    # Its member's lists changed: contact.changed, through the outbox.
    assert (await changed_ids(conn, tenant))[before:] == [[str(contact)]]


async def test_list_writes_take_contacts_write_and_reads_take_segments_read(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    reader = await tenant.key_with(conn, "segments:read")
    writer = await tenant.key_with(conn, "contacts:write")
    refused = await client.post("/api/v2/lists", json={"name": "x"}, headers=reader)
    assert refused.status_code == 403
    assert (
        await client.post("/api/v2/lists", json={"name": "x"}, headers=writer)
    ).status_code == 201
    assert (await client.get("/api/v2/lists", headers=writer)).status_code == 403
    assert (await client.get("/api/v2/lists", headers=reader)).status_code == 200
    blank = await client.post("/api/v2/lists", json={"name": "  "}, headers=writer)
    assert errors(blank) == [("name", "value_error")]


async def test_a_list_a_segment_uses_is_not_deleted_and_the_409_names_each_segment(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    list_id = (
        await client.post("/api/v2/lists", json={"name": "VIP"}, headers=tenant.headers)
    ).json()["id"]
    restricted = await client.post(
        "/api/v2/segments/",
        json=segment_body(uuid.UUID(list_id), name="Restricted"),
        headers=tenant.headers,
    )
    by_rule = await client.post(
        "/api/v2/segments/",
        json=segment_body(
            tenant.list_id,
            name="By rule",
            rules_json={
                "any": [
                    {
                        "all": [
                            {
                                "kind": "membership",
                                "operator": "not_in",
                                "list_ids": [list_id.upper()],
                            }
                        ]
                    }
                ]
            },
        ),
        headers=tenant.headers,
    )
    assert restricted.status_code == by_rule.status_code == 200, by_rule.text

    refused = await client.delete(f"/api/v2/lists/{list_id}", headers=tenant.headers)
    assert refused.status_code == 409
    messages = [e["msg"] for e in refused.json()["errors"]]
    assert {e["type"] for e in refused.json()["errors"]} == {"list_in_use"}
    assert len(messages) == 2
    assert "'By rule'" in messages[0] and by_rule.json()["id"] in messages[0]
    assert "'Restricted'" in messages[1] and "PATCH /api/v2/segments/" in messages[1]
    assert (await client.get(f"/api/v2/lists/{list_id}", headers=tenant.headers)).status_code == 200

    for segment in (restricted, by_rule):
        await client.delete(f"/api/v2/segments/{segment.json()['id']}/", headers=tenant.headers)
    assert (
        await client.delete(f"/api/v2/lists/{list_id}", headers=tenant.headers)
    ).status_code == 204


# --- contacts by email ----------------------------------------------------------------------


async def test_list_members_are_named_by_id_or_email(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    a = await make_contact(conn, tenant.account_id, "a@example.com")
    b = await make_contact(conn, tenant.account_id, "b@example.com")
    c = await make_contact(conn, tenant.account_id, "c@example.com")
    path = f"/api/v2/lists/{tenant.list_id}/members"
    added = await client.post(
        path,
        json={"add": [str(a), " B@Example.com ", {"email": "c@example.com"}]},
        headers=tenant.headers,
    )
    assert added.json() == {"added": 3, "removed": 0}, added.text
    removed = await client.post(
        path, json={"remove": ["a@example.com", {"contact_id": str(b)}]}, headers=tenant.headers
    )
    assert removed.json() == {"added": 0, "removed": 2}
    members = await conn.fetch(
        "SELECT contact_id FROM contact_list_members WHERE list_id = $1", tenant.list_id
    )
    assert [m["contact_id"] for m in members] == [c]
    assert await changed_ids(conn, tenant) == [
        sorted([str(a), str(b), str(c)]),
        sorted([str(a), str(b)]),
    ]

    unknown = await client.post(
        path, json={"add": [str(a), "nobody@example.com"]}, headers=tenant.headers
    )
    assert unknown.status_code == 400
    assert errors(unknown) == [("add[1]", "unknown_contact")]
    assert "no contact with email nobody@example.com" in unknown.json()["errors"][0]["msg"]
    both = await client.post(
        path,
        json={"add": [{"contact_id": str(a), "email": "a@example.com"}, {}]},
        headers=tenant.headers,
    )
    assert errors(both) == [("add[0]", "value_error"), ("add[1]", "value_error")]
    assert "exactly one of contact_id and email" in both.json()["errors"][0]["msg"]
    conflict = await client.post(
        path, json={"add": ["a@example.com"], "remove": [str(a)]}, headers=tenant.headers
    )
    assert errors(conflict) == [("remove[0]", "conflicting_change")]


async def test_events_name_their_contact_by_id_or_email(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    mine = await make_contact(conn, tenant.account_id, "me@example.com")
    await make_contact(conn, other.account_id, "them@example.com")
    ok = await client.post(
        "/api/v2/events",
        json={
            "events": [
                {"email": "ME@example.com", "type": "open"},
                {"contact_id": str(mine), "type": "click"},
            ]
        },
        headers=tenant.headers,
    )
    assert ok.json() == {"inserted": 2}, ok.text
    types = await conn.fetch("SELECT type FROM events WHERE contact_id = $1 ORDER BY type", mine)
    assert [r["type"] for r in types] == ["click", "open"]
    assert await changed_ids(conn, tenant) == [[str(mine)]]

    foreign = await client.post(
        "/api/v2/events",
        json={
            "events": [
                {"email": "me@example.com", "type": "open"},
                {"email": "them@example.com", "type": "open"},
            ]
        },
        headers=tenant.headers,
    )
    assert foreign.status_code == 400
    assert errors(foreign) == [("events[1].email", "unknown_contact")]
    assert "create it first with POST /api/v2/contacts" in foreign.json()["errors"][0]["msg"]
    neither = await client.post(
        "/api/v2/events", json={"events": [{"type": "open"}]}, headers=tenant.headers
    )
    assert errors(neither) == [("events[0]", "value_error")]
    assert await conn.fetchval("SELECT count(*) FROM events WHERE contact_id = $1", mine) == 2


async def test_a_member_change_by_email_reaches_the_broker_as_contact_changed(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection, amqp_url: str
) -> None:
    contact = await make_contact(conn, tenant.account_id, "wire@example.com")
    async with tap(amqp_url) as queue:
        response = await client.post(
            f"/api/v2/lists/{tenant.list_id}/members",
            json={"add": ["wire@example.com"]},
            headers=tenant.headers,
        )
        assert response.json()["added"] == 1

        async def arrived() -> dict[str, Any] | None:
            while (message := await queue.get(fail=False, no_ack=True)) is not None:
                body = json.loads(message.body)
                if message.routing_key == "contact.changed" and body["account_id"] == str(
                    tenant.account_id
                ):
                    return body
            return None

        body = await wait_for(arrived, timeout=30)
    assert body["contact_ids"] == [str(contact)]


# --- custom fields --------------------------------------------------------------------------


async def test_fields_are_declared_listed_and_removed_with_clear_refusals(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    declared = await client.put(
        "/api/v2/fields/plan", json={"data_type": "text"}, headers=tenant.headers
    )
    assert declared.json() == {
        "key": "plan",
        "data_type": "text",
        "previous_type": None,
        "rebuilt_segments": [],
    }
    again = await client.put(
        "/api/v2/fields/plan", json={"data_type": "text"}, headers=tenant.headers
    )
    assert again.json()["previous_type"] == "text"
    listed = await client.get("/api/v2/fields", headers=tenant.headers)
    assert listed.json() == {"items": [{"key": "plan", "data_type": "text"}]}
    assert (await client.get("/api/v2/fields", headers=other.headers)).json() == {"items": []}

    builtin = await client.put(
        "/api/v2/fields/email", json={"data_type": "text"}, headers=tenant.headers
    )
    assert errors(builtin) == [("key", "invalid_key")]
    assert "built-in field" in builtin.json()["errors"][0]["msg"]
    spaced = await client.put(
        "/api/v2/fields/a%20b", json={"data_type": "text"}, headers=tenant.headers
    )
    assert errors(spaced) == [("key", "invalid_key")]
    bad_type = await client.put(
        "/api/v2/fields/x", json={"data_type": "int"}, headers=tenant.headers
    )
    assert errors(bad_type) == [("data_type", "literal_error")]
    assert "'number'" in bad_type.json()["errors"][0]["msg"]

    assert (await client.delete("/api/v2/fields/plan", headers=other.headers)).status_code == 404
    assert (await client.delete("/api/v2/fields/plan", headers=tenant.headers)).status_code == 204
    assert (await client.get("/api/v2/fields", headers=tenant.headers)).json() == {"items": []}


async def test_a_field_a_segment_uses_is_not_removed(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    await client.put("/api/v2/fields/score", json={"data_type": "number"}, headers=tenant.headers)
    segment = await client.post(
        "/api/v2/segments/",
        json=segment_body(tenant.list_id, name="High", rules_json=field_rules("score", "gt", 10)),
        headers=tenant.headers,
    )
    assert segment.status_code == 200, segment.text
    refused = await client.delete("/api/v2/fields/score", headers=tenant.headers)
    assert refused.status_code == 409
    assert errors(refused) == [(None, "field_in_use")]
    assert "'High'" in refused.json()["errors"][0]["msg"]


async def test_changing_a_field_type_rebuilds_the_segments_that_use_it(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection, worker: None
) -> None:
    # Values are never rewritten: under the new type, one that does not read as it is null.
    await client.put("/api/v2/fields/score", json={"data_type": "number"}, headers=tenant.headers)
    upserted = await client.post(
        "/api/v2/contacts",
        json={"contacts": [
            {"email": "n@example.com", "attributes": {"score": 42}},
            {"email": "t@example.com", "attributes": {"score": "42"}},
        ]},
        headers=tenant.headers,
    )  # fmt: skip
    ids = {i["email"]: uuid.UUID(i["id"]) for i in upserted.json()["items"]}
    await client.post(
        f"/api/v2/lists/{tenant.list_id}/members", json={"add": list(ids)}, headers=tenant.headers
    )
    numeric = await client.post(
        "/api/v2/segments/",
        json=segment_body(
            tenant.list_id, name="Numeric", rules_json=field_rules("score", "gte", 10)
        ),
        headers=tenant.headers,
    )
    unrelated = await client.post(
        "/api/v2/segments/",
        json=segment_body(
            tenant.list_id,
            name="Everyone",
            rules_json=field_rules("status", "equals", "subscribed"),
        ),
        headers=tenant.headers,
    )
    numeric_id, unrelated_id = uuid.UUID(numeric.json()["id"]), uuid.UUID(unrelated.json()["id"])
    assert (await wait_status(conn, numeric_id, "DONE"))["total_count"] == 1
    unrelated_generation = (await wait_status(conn, unrelated_id, "DONE"))["generation"]

    retyped = await client.put(
        "/api/v2/fields/score", json={"data_type": "text"}, headers=tenant.headers
    )
    assert retyped.json()["previous_type"] == "number"
    assert [s["name"] for s in retyped.json()["rebuilt_segments"]] == ["Numeric"]
    failed = await wait_status(conn, numeric_id, "FAILED")
    assert failed["error_reason"].startswith("the rules no longer fit this account's fields")
    assert "gte" in failed["error_reason"]
    shown = await client.get(f"/api/v2/segments/{numeric_id}/", headers=tenant.headers)
    assert shown.json()["status"] == "FAILED"
    text = await client.post(
        "/api/v2/segments/",
        json=segment_body(
            tenant.list_id, name="Text", rules_json=field_rules("score", "equals", "42")
        ),
        headers=tenant.headers,
    )
    text_id = uuid.UUID(text.json()["id"])
    await wait_status(conn, text_id, "DONE")
    members = await conn.fetch(
        "SELECT contact_id FROM segment_members WHERE segment_id = $1", text_id
    )
    assert [m["contact_id"] for m in members] == [ids["t@example.com"]]  # 42 the number: null

    # Back to number: the failed segment fits again and is built again.
    back = await client.put(
        "/api/v2/fields/score", json={"data_type": "number"}, headers=tenant.headers
    )
    assert sorted(s["name"] for s in back.json()["rebuilt_segments"]) == ["Numeric", "Text"]
    rebuilt = await wait_status(conn, numeric_id, "DONE")
    assert rebuilt["total_count"] == 1
    unrelated_row = await wait_status(conn, unrelated_id, "DONE")
    assert unrelated_row["generation"] == unrelated_generation  # untouched


# --- API keys -------------------------------------------------------------------------------


async def test_keys_are_created_with_scopes_listed_without_secrets_and_revoked(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    created = await client.post(
        "/api/v2/keys",
        json={"scopes": ["segments:read"], "name": "dashboard"},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["key"].startswith("sk_") and new["key"].startswith(new["prefix"])
    assert (new["name"], new["scopes"], new["revoked_at"]) == ("dashboard", ["segments:read"], None)
    key_headers = {"X-API-Key": new["key"]}
    assert (await client.get("/api/v2/segments/", headers=key_headers)).status_code == 200
    assert (
        await client.post("/api/v2/lists", json={"name": "x"}, headers=key_headers)
    ).status_code == 403
    assert (await client.get("/api/v2/keys", headers=key_headers)).status_code == 403

    listed = await client.get("/api/v2/keys", headers=tenant.headers)
    assert new["key"] not in listed.text
    items = {i["id"]: i for i in listed.json()["items"]}
    assert set(items[new["id"]]) == {"id", "name", "prefix", "scopes", "created_at", "revoked_at"}
    assert len(items) == 2  # the tenant's own key and the new one
    assert new["id"] not in (await client.get("/api/v2/keys", headers=other.headers)).text

    assert (
        await client.delete(f"/api/v2/keys/{new['id']}", headers=other.headers)
    ).status_code == 404
    revoked = await client.delete(f"/api/v2/keys/{new['id']}", headers=tenant.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await client.get("/api/v2/segments/", headers=key_headers)).status_code == 401

    unknown_scope = await client.post(
        "/api/v2/keys", json={"scopes": ["admin"]}, headers=tenant.headers
    )
    assert errors(unknown_scope) == [("scopes[0]", "literal_error")]
    empty = await client.post("/api/v2/keys", json={"scopes": []}, headers=tenant.headers)
    assert errors(empty) == [("scopes", "too_short")]
    data_key = await tenant.key_with(conn, "segments:read", "segments:write", "contacts:write")
    assert (
        await client.post("/api/v2/keys", json={"scopes": ["keys:admin"]}, headers=data_key)
    ).status_code == 403


# --- a contact and its segments -------------------------------------------------------------


async def test_a_contact_by_id_or_email_and_the_segments_it_is_in(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    contact = await make_contact(
        conn, tenant.account_id, "ann@example.com", name="Ann", attributes={"plan": "pro"}
    )
    await client.post(
        f"/api/v2/lists/{tenant.list_id}/members",
        json={"add": [str(contact)]},
        headers=tenant.headers,
    )
    built, pending = [
        (
            await client.post(
                "/api/v2/segments/",
                json=segment_body(tenant.list_id, name=name),
                headers=tenant.headers,
            )
        ).json()["id"]
        for name in ("Built", "Pending")
    ]
    # As a build leaves them: Built is DONE with the contact; Pending is not built yet.
    await conn.execute(
        "UPDATE segments SET status = 'DONE', total_count = 1 WHERE id = $1", uuid.UUID(built)
    )
    await conn.executemany(
        "INSERT INTO segment_members (segment_id, contact_id, account_id) VALUES ($1, $2, $3)",
        [(uuid.UUID(s), contact, tenant.account_id) for s in (built, pending)],
    )

    for ref in (str(contact), "ann@example.com", "ANN@Example.com"):
        found = await client.get(f"/api/v2/contacts/{ref}", headers=tenant.headers)
        assert found.status_code == 200, ref
        assert (found.json()["id"], found.json()["name"]) == (str(contact), "Ann")
        assert found.json()["attributes"] == {"plan": "pro"}
        assert found.json()["list_ids"] == [str(tenant.list_id)]
    segments = await client.get("/api/v2/contacts/ann@example.com/segments", headers=tenant.headers)
    assert [(s["id"], s["name"]) for s in segments.json()["items"]] == [(built, "Built")]

    for ref in (str(contact), "ann@example.com"):
        hidden = await client.get(f"/api/v2/contacts/{ref}/segments/", headers=other.headers)
        assert hidden.status_code == 404
        assert errors(hidden) == [("contact", "not_found")]
    missing = await client.get("/api/v2/contacts/nobody@example.com", headers=tenant.headers)
    assert missing.status_code == 404


# --- the OpenAPI document -------------------------------------------------------------------


async def test_every_manage_route_is_documented_with_its_answers_and_errors(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    manage = {
        path: item
        for path, item in spec["paths"].items()
        if path.startswith(("/api/v2/lists", "/api/v2/fields", "/api/v2/keys"))
        or path.startswith("/api/v2/contacts/{contact}")
    }
    assert len(manage) == 9
    for path, item in manage.items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation["summary"], where
            responses = operation["responses"]
            assert {"400", "401", "403", "429"} <= set(responses), where
            assert "422" not in responses, where
            success = next(code for code in responses if code.startswith("2"))
            if success != "204":
                assert responses[success]["content"]["application/json"]["schema"], where
    deletes = {path: item["delete"] for path, item in manage.items() if "delete" in item}
    assert "409" in deletes["/api/v2/lists/{list_id}/"]["responses"]
    assert "409" in deletes["/api/v2/fields/{key}/"]["responses"]
    assert "404" in deletes["/api/v2/keys/{key_id}/"]["responses"]
