"""The v2 segments API over HTTP (README: HTTP API), against the real database."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, make_contact, segment_body

PALETTE = "#cc9ccb #f0f080 #ecd12d #dadabc #7cb7de #b6d8d5 #065358 #dbe3b4 #c1cceb #944c6d"


async def create(client: httpx.AsyncClient, tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v2/segments/", json=segment_body(tenant.list_id, **overrides), headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def outbox_rows(conn: asyncpg.Connection, segment_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT routing_key, body FROM outbox WHERE body->>'segment_id' = $1 ORDER BY id",
        segment_id,
    )


async def test_create_answers_200_with_the_full_object_pending(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    body = segment_body(tenant.list_id, description="from the brief")
    response = await client.post("/api/v2/segments/", json=body, headers=tenant.headers)
    assert response.status_code == 200
    segment = response.json()
    assert set(segment) >= {
        "id",
        "name",
        "color",
        "description",
        "rules_json",
        "contact_list_ids",
        "status",
        "total_count",
        "created_at",
        "updated_at",
        "display_fields",
        "fresh_as_of",
        "timezone",
        "last_built_at",
    }
    assert segment["status"] == "PENDING"
    assert segment["total_count"] is None
    # Not built yet: nothing to be fresh about.
    assert (segment["fresh_as_of"], segment["last_built_at"]) == (None, None)
    assert segment["timezone"] == "UTC"
    assert segment["display_fields"] == []
    assert segment["rules_json"] == body["rules_json"]
    assert segment["contact_list_ids"] == [str(tenant.list_id)]
    assert segment["description"] == "from the brief"
    assert segment["created_at"].endswith("Z")
    uuid.UUID(segment["id"])


async def test_create_writes_row_and_outbox_message_in_one_go(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment = await create(client, tenant)
    row = await conn.fetchrow("SELECT * FROM segments WHERE id = $1", uuid.UUID(segment["id"]))
    assert row["dialect"] == "v2"
    assert row["generation"] == 1
    assert row["time_relative"] is True  # "opened in the last 30 days" drifts with the clock
    assert row["account_id"] == tenant.account_id
    messages = await outbox_rows(conn, segment["id"])
    assert [m["routing_key"] for m in messages] == ["segment.created"]
    assert messages[0]["body"] == {
        "schema": 1,
        "account_id": str(tenant.account_id),
        "segment_id": segment["id"],
        "generation": 1,
    }


async def test_rules_without_clock_are_not_time_relative(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    rules = {"any": [{"all": [{"kind": "field", "field": "city", "operator": "is_null"}]}]}
    segment = await create(client, tenant, rules_json=rules)
    relative = await conn.fetchval(
        "SELECT time_relative FROM segments WHERE id = $1", uuid.UUID(segment["id"])
    )
    assert relative is False


async def test_every_palette_colour_is_accepted_and_others_are_not(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for color in [*PALETTE.split(), "#f7819b", "#f9c8cb"]:
        await create(client, tenant, color=color)
    response = await client.post(
        "/api/v2/segments/",
        json=segment_body(tenant.list_id, color="#123456"),
        headers=tenant.headers,
    )
    assert response.status_code == 400
    assert [e["loc"] for e in response.json()["errors"]] == ["color"]


async def test_missing_fields_are_located(client: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/api/v2/segments/", json={"color": "#7cb7de", "extra": 1}, headers=tenant.headers
    )
    assert response.status_code == 400
    locs = {e["loc"]: e["type"] for e in response.json()["errors"]}
    assert locs == {
        "name": "missing",
        "contact_list_ids": "missing",
        "rules_json": "missing",
        "extra": "extra_forbidden",
    }


async def test_empty_contact_list_ids_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = segment_body(tenant.list_id, contact_list_ids=[])
    response = await client.post("/api/v2/segments/", json=body, headers=tenant.headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["loc"] == "contact_list_ids"


async def test_rule_errors_carry_their_exact_location(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    rules = {
        "any": [
            {"all": [{"kind": "field", "field": "status", "operator": "equals", "value": "a"}]},
            {
                "all": [
                    {"kind": "field", "field": "city", "operator": "is_null"},
                    {"kind": "field", "field": "tags", "operator": "has_any", "value": []},
                    {"kind": "field", "field": "opens_count", "operator": "gt", "value": "x"},
                ]
            },
        ]
    }
    body = segment_body(tenant.list_id, rules_json=rules)
    response = await client.post("/api/v2/segments/", json=body, headers=tenant.headers)
    assert response.status_code == 400
    assert [e["loc"] for e in response.json()["errors"]] == [
        "rules_json.any[1].all[1].value",
        "rules_json.any[1].all[2].value",
    ]


async def test_lists_of_another_account_are_located_400(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    rules = {
        "any": [
            {"all": [{"kind": "membership", "operator": "in", "list_ids": [str(other.list_id)]}]}
        ]
    }
    body = segment_body(
        tenant.list_id, contact_list_ids=[str(tenant.list_id), str(other.list_id)], rules_json=rules
    )
    response = await client.post("/api/v2/segments/", json=body, headers=tenant.headers)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["loc"], e["type"]) for e in errors] == [
        ("contact_list_ids[1]", "unknown_list"),
        ("rules_json.any[0].all[0].list_ids[0]", "unknown_list"),
    ]


async def test_get_and_trailing_slash_is_optional(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    segment = await create(client, tenant)
    for path in (f"/api/v2/segments/{segment['id']}/", f"/api/v2/segments/{segment['id']}"):
        response = await client.get(path, headers=tenant.headers)
        assert response.status_code == 200
        assert response.json() == segment
    for path in ("/api/v2/segments", "/api/v2/segments/"):
        response = await client.get(path, headers=tenant.headers)
        assert response.status_code == 200
    no_slash = await client.post(
        "/api/v2/segments", json=segment_body(tenant.list_id), headers=tenant.headers
    )
    assert no_slash.status_code == 200


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient, tenant: Tenant) -> None:
    missing = await client.get(f"/api/v2/segments/{uuid.uuid4()}/", headers=tenant.headers)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["type"] == "not_found"
    malformed = await client.get("/api/v2/segments/not-a-uuid/", headers=tenant.headers)
    assert malformed.status_code == 400
    assert malformed.json()["errors"][0]["loc"] == "segment_id"


async def test_patch_name_colour_description_does_not_rebuild(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment = await create(client, tenant)
    sid = uuid.UUID(segment["id"])
    await conn.execute("UPDATE segments SET status = 'DONE', total_count = 3 WHERE id = $1", sid)
    response = await client.patch(
        f"/api/v2/segments/{sid}/",
        json={"name": "Renamed", "color": "#f9c8cb", "description": "d"},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    patched = response.json()
    assert (patched["name"], patched["color"], patched["description"]) == (
        "Renamed",
        "#f9c8cb",
        "d",
    )
    assert (patched["status"], patched["total_count"]) == ("DONE", 3)
    assert patched["updated_at"] > segment["updated_at"]
    assert await conn.fetchval("SELECT generation FROM segments WHERE id = $1", sid) == 1
    assert len(await outbox_rows(conn, str(sid))) == 1  # segment.created only


async def test_patch_rules_bumps_generation_and_publishes_updated(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment = await create(client, tenant)
    sid = uuid.UUID(segment["id"])
    await conn.execute("UPDATE segments SET status = 'DONE', total_count = 3 WHERE id = $1", sid)
    rules = {
        "any": [
            {"all": [{"kind": "field", "field": "email", "operator": "contains", "value": "@"}]}
        ]
    }
    response = await client.patch(
        f"/api/v2/segments/{sid}", json={"rules_json": rules}, headers=tenant.headers
    )
    assert response.status_code == 200
    assert response.json()["status"] == "PENDING"
    assert response.json()["total_count"] is None
    assert response.json()["rules_json"] == rules
    row = await conn.fetchrow("SELECT generation, time_relative FROM segments WHERE id = $1", sid)
    assert (row["generation"], row["time_relative"]) == (2, False)
    messages = await outbox_rows(conn, str(sid))
    assert [m["routing_key"] for m in messages] == ["segment.created", "segment.updated"]
    assert messages[1]["body"]["generation"] == 2
    # Sending the same rules again changes nothing.
    again = await client.patch(
        f"/api/v2/segments/{sid}", json={"rules_json": rules}, headers=tenant.headers
    )
    assert again.status_code == 200
    assert await conn.fetchval("SELECT generation FROM segments WHERE id = $1", sid) == 2


async def test_patch_list_ids_rebuilds_and_is_checked(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    segment = await create(client, tenant)
    foreign = await client.patch(
        f"/api/v2/segments/{segment['id']}/",
        json={"contact_list_ids": [str(other.list_id)]},
        headers=tenant.headers,
    )
    assert foreign.status_code == 400
    assert foreign.json()["errors"][0]["loc"] == "contact_list_ids[0]"
    second = await conn.fetchval(
        "INSERT INTO contact_lists (account_id, name) VALUES ($1, 'b') RETURNING id",
        tenant.account_id,
    )
    response = await client.patch(
        f"/api/v2/segments/{segment['id']}/",
        json={"contact_list_ids": [str(tenant.list_id), str(second)]},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    assert response.json()["contact_list_ids"] == [str(tenant.list_id), str(second)]
    generation = await conn.fetchval(
        "SELECT generation FROM segments WHERE id = $1", uuid.UUID(segment["id"])
    )
    assert generation == 2


async def test_patch_display_fields_from_field_names(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    await conn.execute(
        "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, 'plan', 'text')",
        tenant.account_id,
    )
    segment = await create(client, tenant)
    response = await client.patch(
        f"/api/v2/segments/{segment['id']}/",
        json={"display_fields": ["first_name", "status", "plan"]},
        headers=tenant.headers,
    )
    assert response.status_code == 200
    assert response.json()["display_fields"] == [
        {
            "label": "First name",
            "contact_column_name": "first_name",
            "data_type": "text",
            "choices": None,
        },
        {
            "label": "Status",
            "contact_column_name": "status",
            "data_type": "text",
            "choices": ["subscribed", "unsubscribed", "bounced", "complained", "pending"],
        },
        {"label": "Plan", "contact_column_name": "plan", "data_type": "text", "choices": None},
    ]
    assert response.json()["status"] == "PENDING"
    bad = await client.patch(
        f"/api/v2/segments/{segment['id']}/",
        json={"display_fields": ["email", "nope", "email"]},
        headers=tenant.headers,
    )
    assert bad.status_code == 400
    assert [e["loc"] for e in bad.json()["errors"]] == ["display_fields[1]", "display_fields[2]"]


async def test_patch_null_name_is_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    segment = await create(client, tenant)
    response = await client.patch(
        f"/api/v2/segments/{segment['id']}/", json={"name": None}, headers=tenant.headers
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["loc"] == "name"


async def test_delete(client: httpx.AsyncClient, tenant: Tenant) -> None:
    segment = await create(client, tenant)
    response = await client.delete(f"/api/v2/segments/{segment['id']}/", headers=tenant.headers)
    assert response.status_code == 204
    gone = await client.get(f"/api/v2/segments/{segment['id']}/", headers=tenant.headers)
    assert gone.status_code == 404
    again = await client.delete(f"/api/v2/segments/{segment['id']}/", headers=tenant.headers)
    assert again.status_code == 404


async def test_rebuild_publishes_current_generation_and_resets_failed(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment = await create(client, tenant)
    sid = uuid.UUID(segment["id"])
    await conn.execute(
        "UPDATE segments SET status = 'FAILED', error_reason = 'timed out', generation = 4 "
        "WHERE id = $1",
        sid,
    )
    failed = (await client.get(f"/api/v2/segments/{sid}/", headers=tenant.headers)).json()
    assert (failed["status"], failed["error_reason"]) == ("FAILED", "timed out")
    assert failed["total_count"] is None
    response = await client.post(f"/api/v2/segments/{sid}/rebuild/", headers=tenant.headers)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["error_reason"]) == ("PENDING", None)
    messages = await outbox_rows(conn, str(sid))
    assert messages[-1]["routing_key"] == "segment.rebuild"
    assert messages[-1]["body"]["generation"] == 4
    # A DONE segment stays DONE while it is rebuilt.
    await conn.execute("UPDATE segments SET status = 'DONE', total_count = 9 WHERE id = $1", sid)
    done = await client.post(f"/api/v2/segments/{sid}/rebuild", headers=tenant.headers)
    assert (done.json()["status"], done.json()["total_count"]) == ("DONE", 9)


async def test_total_count_is_null_unless_done(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment = await create(client, tenant)
    sid = uuid.UUID(segment["id"])
    for status, shown in (("RUNNING", None), ("FAILED", None), ("DONE", 5)):
        await conn.execute(
            "UPDATE segments SET status = $2, total_count = 5 WHERE id = $1", sid, status
        )
        got = (await client.get(f"/api/v2/segments/{sid}/", headers=tenant.headers)).json()
        assert got["total_count"] == shown, status
        listed = (await client.get("/api/v2/segments/", headers=tenant.headers)).json()
        assert listed["items"][0]["total_count"] == shown


async def test_list_paginates_searches_and_orders(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    names = ["alpha", "Bravo", "charlie", "delta 50%", "echo"]
    ids = [(await create(client, tenant, name=name))["id"] for name in names]
    await conn.execute(
        "UPDATE segments SET status = 'DONE', total_count = $2 WHERE id = $1",
        uuid.UUID(ids[1]),
        100,
    )
    await conn.execute(
        "UPDATE segments SET status = 'DONE', total_count = $2 WHERE id = $1",
        uuid.UUID(ids[3]),
        7,
    )

    async def page(**params: Any) -> dict[str, Any]:
        response = await client.get("/api/v2/segments/", params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    default = await page()
    assert default["pagination"] == {"page": 1, "page_size": 25, "total_count": 5, "total_pages": 1}
    assert [i["name"] for i in default["items"]] == names[::-1]  # last updated first
    assert set(default["items"][0]) == {
        "id",
        "name",
        "color",
        "status",
        "total_count",
        "created_at",
        "updated_at",
    }
    by_name = await page(order_by="name", ordering="asc", page_size=2, page=2)
    assert by_name["pagination"] == {"page": 2, "page_size": 2, "total_count": 5, "total_pages": 3}
    assert [i["name"] for i in by_name["items"]] == ["charlie", "delta 50%"]
    by_count = await page(order_by="total_count", ordering="desc")
    assert [i["name"] for i in by_count["items"]][:2] == ["Bravo", "delta 50%"]
    by_created = await page(order_by="created_at", ordering="asc")
    assert [i["name"] for i in by_created["items"]] == names
    assert [i["name"] for i in (await page(search="A"))["items"]] == [
        "delta 50%",
        "charlie",
        "Bravo",
        "alpha",
    ]
    assert [i["name"] for i in (await page(search="50%"))["items"]] == ["delta 50%"]
    assert (await page(search="_"))["items"] == []  # literal, not a LIKE wildcard
    assert (await page(page=9))["items"] == []


async def test_list_parameters_are_validated(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for params, loc in (
        ({"page_size": 101}, "page_size"),
        ({"page": 0}, "page"),
        ({"ordering": "up"}, "ordering"),
        ({"order_by": "color"}, "order_by"),
    ):
        response = await client.get("/api/v2/segments/", params=params, headers=tenant.headers)
        assert response.status_code == 400
        assert response.json()["errors"][0]["loc"] == loc


async def test_contacts_are_empty_until_done_then_paginated(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment = await create(client, tenant)
    sid = uuid.UUID(segment["id"])
    ids = [
        await make_contact(conn, tenant.account_id, f"user{i}@example.com", name=f"User {i}")
        for i in range(5)
    ]
    await conn.executemany(
        "INSERT INTO segment_members (segment_id, contact_id, account_id) VALUES ($1, $2, $3)",
        [(sid, contact_id, tenant.account_id) for contact_id in ids],
    )
    path = f"/api/v2/segments/{sid}/contacts/"
    pending = (await client.get(path, headers=tenant.headers)).json()
    assert pending["items"] == []
    assert pending["pagination"]["total_count"] == 0
    await conn.execute("UPDATE segments SET status = 'DONE', total_count = 5 WHERE id = $1", sid)
    first = (await client.get(path, params={"page_size": 2}, headers=tenant.headers)).json()
    assert first["pagination"] == {"page": 1, "page_size": 2, "total_count": 5, "total_pages": 3}
    assert len(first["items"]) == 2
    assert {"id", "email", "name", "status", "added_at"} <= set(first["items"][0])
    everyone = (await client.get(path, params={"page_size": 100}, headers=tenant.headers)).json()
    assert sorted(i["id"] for i in everyone["items"]) == sorted(str(i) for i in ids)
    found = (await client.get(path, params={"search": "USER3"}, headers=tenant.headers)).json()
    assert [i["email"] for i in found["items"]] == ["user3@example.com"]
    # A deleted contact is not shown even before the next build removes it.
    await conn.execute("DELETE FROM contacts WHERE id = $1", ids[0])
    after = (await client.get(path, headers=tenant.headers)).json()
    assert after["pagination"]["total_count"] == 4


async def test_rule_and_display_field_errors_name_the_valid_choices(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    undeclared = "not a contact field and not a custom field declared for this account"
    rules = {
        "any": [
            {
                "all": [
                    {"kind": "field", "field": "emial", "operator": "equals", "value": "a"},
                    {"kind": "field", "field": "city", "operator": "like", "value": "x"},
                ]
            }
        ]
    }
    body = segment_body(tenant.list_id, rules_json=rules)
    response = await client.post("/api/v2/segments/", json=body, headers=tenant.headers)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "loc": "rules_json.any[0].all[0].field",
            "msg": f"unknown field 'emial': {undeclared}; did you mean 'email'?",
            "type": "unknown_field",
        },
        {
            "loc": "rules_json.any[0].all[1].operator",
            "msg": "unknown operator 'like' for field 'city' of type text; expected one of "
            "contains, equals, in, is_not_null, is_null, not_contains, not_equals, not_in, "
            "starts_with",
            "type": "unknown_operator",
        },
    ]
    segment = await create(client, tenant)
    bad = await client.patch(
        f"/api/v2/segments/{segment['id']}/",
        json={"display_fields": ["email", "frist_name"]},
        headers=tenant.headers,
    )
    assert bad.status_code == 400
    assert bad.json()["errors"] == [
        {
            "loc": "display_fields[1]",
            "msg": f"unknown field 'frist_name': {undeclared}; did you mean one of "
            "'first_name', 'last_name'?",
            "type": "unknown_field",
        }
    ]


NESTED = {
    "all": [
        {
            "any": [
                {"kind": "activity", "metric": "open", "operator": "ever"},
                {"kind": "activity", "metric": "click", "operator": "count_gte", "value": 2},
            ]
        },
        {"not": {"kind": "field", "field": "tags", "operator": "has_any", "value": ["churn-risk"]}},
    ]
}


async def test_nested_rules_are_stored_and_returned_as_sent(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await create(client, tenant, rules_json=NESTED)
    assert created["rules_json"] == NESTED
    shown = await client.get(f"/api/v2/segments/{created['id']}/", headers=tenant.headers)
    assert shown.json()["rules_json"] == NESTED
    patched = await client.patch(
        f"/api/v2/segments/{created['id']}/",
        json={"rules_json": {"any": [NESTED, {"not": NESTED}]}},
        headers=tenant.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["rules_json"] == {"any": [NESTED, {"not": NESTED}]}


async def test_a_bad_nested_node_is_a_400_at_its_location(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    bad = {"all": [{"any": [{"not": {"kind": "field", "field": "email", "operator": "equals"}}]}]}
    body = segment_body(tenant.list_id, rules_json=bad)
    response = await client.post("/api/v2/segments/", json=body, headers=tenant.headers)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["loc"] == "rules_json.all[0].any[0].not.value"


async def test_lists_named_deep_in_a_nested_tree_are_checked_as_the_accounts(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    """A membership condition under `not` or a nested `all` names a list of the account (the
    chaos suite's workload found these refused) and one of another account is still a 400."""

    def nested(list_id: uuid.UUID) -> dict[str, Any]:
        member = {"kind": "membership", "operator": "in", "list_ids": [str(list_id)]}
        return {"any": [{"all": [{"not": member}]}, {"all": [{"any": [member]}]}]}

    body = segment_body(tenant.list_id, rules_json=nested(tenant.list_id))
    answer = await client.post("/api/v2/segments", json=body, headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    body = segment_body(tenant.list_id, rules_json=nested(other.list_id))
    answer = await client.post("/api/v2/segments", json=body, headers=tenant.headers)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["type"] == "unknown_list"
