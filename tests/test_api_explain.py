"""`GET /api/v2/segments/{id}/contacts/{contact_id}/explain/`: why a contact is in a segment,
or not, node by node, with what each condition read; nothing of another account, ever."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, make_contact, make_list, segment_body
from tests.worker_support import wait_status

STATUS = {"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"}
OPENED = {
    "kind": "activity",
    "metric": "open",
    "operator": "ever",
    "days_window": {"mode": "last", "days": 30},
}
VIP = {"kind": "field", "field": "tags", "operator": "has_any", "value": ["vip"]}


def rules(blocklist: uuid.UUID) -> dict[str, Any]:
    """Subscribed, opened in 30 days or tagged VIP, and not on the blocklist."""
    not_blocked = {"not": {"kind": "membership", "operator": "in", "list_ids": [str(blocklist)]}}
    return {"all": [STATUS, {"any": [OPENED, VIP]}, not_blocked]}


async def explain(
    client: httpx.AsyncClient, tenant: Tenant, segment: Any, contact: Any
) -> httpx.Response:
    return await client.get(
        f"/api/v2/segments/{segment}/contacts/{contact}/explain/", headers=tenant.headers
    )


async def add_member(conn: asyncpg.Connection, account: uuid.UUID, list_id: Any, c: Any) -> None:
    await conn.execute(
        "INSERT INTO contact_list_members (list_id, contact_id, account_id) VALUES ($1, $2, $3)",
        list_id,
        c,
        account,
    )


async def test_explain_shows_each_nodes_verdict_and_what_it_read(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection, worker: None
) -> None:
    blocklist = await make_list(conn, tenant.account_id)
    ann = await make_contact(conn, tenant.account_id, "ann@example.com", tags=["VIP"], isp_id=1)
    bob = await make_contact(conn, tenant.account_id, "bob@example.com", status="unsubscribed")
    cy = await make_contact(conn, tenant.account_id, "cy@example.com", tags=["vip"])
    for contact in (ann, bob):
        await add_member(conn, tenant.account_id, tenant.list_id, contact)
    await conn.execute(
        """INSERT INTO events (account_id, contact_id, type, occurred_at)
           VALUES ($1, $2, 'open', now() - interval '2 days'),
                  ($1, $2, 'open', now() - interval '40 days')""",
        tenant.account_id,
        ann,
    )
    body = segment_body(tenant.list_id, rules_json=rules(blocklist))
    created = await client.post("/api/v2/segments/", json=body, headers=tenant.headers)
    assert created.status_code == 200, created.text
    segment_id = created.json()["id"]
    await wait_status(conn, uuid.UUID(segment_id), "DONE")

    before = datetime.now(UTC)
    got = await explain(client, tenant, segment_id, ann)
    assert got.status_code == 200, got.text
    answer = got.json()
    assert (answer["segment_id"], answer["contact_id"]) == (segment_id, str(ann))
    assert (answer["member"], answer["matches"], answer["in_universe"]) == (True, True, True)
    evaluated = datetime.fromisoformat(answer["evaluated_at"])
    assert before <= evaluated <= datetime.now(UTC)
    tree = answer["tree"]
    status, either, not_blocked = tree["all"]
    opened, vip = either["any"]
    assert tree["result"] and status["result"] and either["result"] and not_blocked["result"]
    assert {k: status[k] for k in STATUS} == STATUS  # the rules as written, node for node
    assert status["observed"] == {"stored": "subscribed", "read": "subscribed"}
    assert opened["result"] and opened["observed"]["count"] == 1  # the old open is outside
    since = datetime.fromisoformat(opened["observed"]["from"])
    assert since == evaluated - timedelta(days=30) and opened["observed"]["to"] is None
    assert vip["observed"] == {"stored": ["VIP"], "read": ["vip"]}
    blocked = not_blocked["not"]
    assert not blocked["result"] and blocked["observed"] == {"lists": []}

    # The same contact by email, any case.
    by_email = await explain(client, tenant, segment_id, "Ann@Example.com")
    assert by_email.json()["contact_id"] == str(ann)

    answer = (await explain(client, tenant, segment_id, bob)).json()
    assert (answer["member"], answer["matches"], answer["in_universe"]) == (False, False, True)
    status = answer["tree"]["all"][0]
    assert not status["result"] and status["observed"]["stored"] == "unsubscribed"
    assert answer["tree"]["all"][1]["any"][0]["observed"]["count"] == 0

    # The rules hold for cy, but cy is on none of the segment's lists.
    answer = (await explain(client, tenant, segment_id, cy)).json()
    assert answer["tree"]["result"] and not answer["in_universe"]
    assert not answer["matches"] and not answer["member"]

    # On the blocklist: the `not` turns false, and the list is named.
    await add_member(conn, tenant.account_id, blocklist, ann)
    answer = (await explain(client, tenant, segment_id, ann)).json()
    assert not answer["matches"] and answer["member"]  # not yet updated: no change published
    blocked = answer["tree"]["all"][2]
    name = await conn.fetchval("SELECT name FROM contact_lists WHERE id = $1", blocklist)
    assert blocked["not"]["observed"] == {"lists": [{"id": str(blocklist), "name": name}]}
    assert not blocked["result"] and not answer["tree"]["result"]


async def test_a_simple_segment_is_explained_as_its_canonical_tree(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    contact = await make_contact(conn, tenant.account_id, "dee@example.com", company="")
    created = await client.post(
        "/api/segments",
        json={"name": "no company", "rules": [{"field": "company", "operator": "not_equals",
                                                "value": "acme"}]},
        headers=tenant.headers,
    )  # fmt: skip
    segment_id = await conn.fetchval(
        "SELECT id FROM segments WHERE account_id = $1 AND number = $2",
        tenant.account_id,
        created.json()["id"],
    )
    answer = (await explain(client, tenant, segment_id, contact)).json()
    (group,) = answer["tree"]["any"]
    (condition,) = group["all"]
    assert condition["kind"] == "field" and condition["operator"] == "not_equals"
    assert condition["observed"] == {"stored": "", "read": None}  # '' is null
    assert condition["result"] and answer["matches"] and answer["in_universe"]
    await client.delete(f"/api/segments/{created.json()['id']}", headers=tenant.headers)


async def test_nothing_of_another_account_is_found_or_shown(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    ours = await make_contact(conn, tenant.account_id, "eve@example.com", isp_id=2)
    theirs = await make_contact(conn, other.account_id, "eve@example.com")
    await add_member(conn, tenant.account_id, tenant.list_id, ours)
    # Rows another account wrote about our contact: its list, its segment, its events.
    await add_member(conn, other.account_id, other.list_id, ours)
    their_segment = await client.post(
        "/api/v2/segments/", json=segment_body(other.list_id), headers=other.headers
    )
    their_id = their_segment.json()["id"]
    await conn.execute(
        "INSERT INTO segment_members (segment_id, contact_id, account_id) VALUES ($1, $2, $3)",
        uuid.UUID(their_id),
        ours,
        other.account_id,
    )
    await conn.execute(
        """INSERT INTO events (account_id, contact_id, type, occurred_at)
           VALUES ($1, $2, 'open', now())""",
        other.account_id,
        ours,
    )
    conditions = [
        {"kind": "membership", "operator": "in", "list_ids": [str(tenant.list_id)]},
        {"kind": "segment", "operator": "not_in", "segment_ids": [their_id]},
        {"kind": "activity", "metric": "open", "operator": "never"},
        {"kind": "field", "field": "opens_count", "operator": "equals", "value": 0},
        {"kind": "isp", "operator": "in", "values": [2]},
    ]
    # A segment condition must name the account's own segments: made here in SQL.
    segment_id = await conn.fetchval(
        """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids)
           VALUES ($1, 'isolated', 'v2', $2, $3) RETURNING id""",
        tenant.account_id, {"all": conditions}, [tenant.list_id],
    )  # fmt: skip
    got = await explain(client, tenant, segment_id, ours)
    assert got.status_code == 200, got.text
    membership, segment, never, opens, isp = got.json()["tree"]["all"]
    assert membership["observed"]["lists"] == [
        {"id": str(tenant.list_id), "name": membership["observed"]["lists"][0]["name"]}
    ]
    assert segment["observed"] == {"segments": []} and segment["result"]
    assert never["observed"]["count"] == 0 and never["result"]
    assert opens["observed"] == {"stored": 0, "read": 0} and opens["result"]
    assert isp["observed"] == {"isp_id": 2, "name": "Outlook"} and isp["result"]
    assert got.json()["matches"]
    for text in (str(other.list_id), str(theirs)):  # (their segment is named by the rules)
        assert text not in got.text

    # Another account's segment or contact: 404, as for ones that do not exist.
    for segment, contact, loc in (
        (their_id, ours, "segment_id"),
        (segment_id, theirs, "contact_id"),
        (uuid.uuid4(), ours, "segment_id"),
        (segment_id, uuid.uuid4(), "contact_id"),
        (segment_id, "nobody@example.com", "contact_id"),
    ):
        missing = await explain(client, tenant, segment, contact)
        assert missing.status_code == 404, (segment, contact)
        assert missing.json()["errors"][0]["loc"] == loc
    # Their key does not see our segment, nor our contact through theirs.
    assert (await explain(client, other, segment_id, ours)).status_code == 404
    assert (await explain(client, other, their_id, ours)).status_code == 404
    await conn.execute("DELETE FROM segments WHERE id = $1", segment_id)
    await client.delete(f"/api/v2/segments/{their_id}/", headers=other.headers)


async def test_explain_needs_the_read_scope(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    contact = await make_contact(conn, tenant.account_id, "fay@example.com")
    path = f"/api/v2/segments/{uuid.uuid4()}/contacts/{contact}/explain/"
    assert (await client.get(path)).status_code == 401
    writer = await tenant.key_with(conn, "segments:write", "contacts:write")
    refused = await client.get(path, headers=writer)
    assert refused.status_code == 403 and "segments:read" in refused.text
    reader = await tenant.key_with(conn, "segments:read")
    assert (await client.get(path, headers=reader)).status_code == 404
    assert (await client.get(path.rstrip("/"), headers=reader)).status_code == 404


async def test_rules_that_no_longer_fit_the_fields_are_a_409_saying_what_to_do(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    await client.put("/api/v2/fields/plan", json={"data_type": "text"}, headers=tenant.headers)
    contact = await make_contact(conn, tenant.account_id, "gil@example.com")
    condition = {"kind": "field", "field": "plan", "operator": "equals", "value": "pro"}
    body = segment_body(tenant.list_id, rules_json={"all": [condition]})
    created = await client.post("/api/v2/segments/", json=body, headers=tenant.headers)
    segment_id = created.json()["id"]
    await conn.execute(
        "DELETE FROM contact_fields WHERE account_id = $1 AND key = 'plan'", tenant.account_id
    )
    got = await explain(client, tenant, segment_id, contact)
    assert got.status_code == 409
    assert "PATCH" in got.json()["errors"][0]["msg"]
    await client.delete(f"/api/v2/segments/{segment_id}/", headers=tenant.headers)


async def test_lists_named_deep_in_nested_rules_are_checked_as_the_accounts(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    """(Explaining nested rules found that create refused the account's own lists, other
    than the segment's, when a membership condition was nested below the first release's
    shape.)"""
    blocklist = await make_list(conn, tenant.account_id)
    for list_id, status in ((blocklist, 200), (other.list_id, 400)):
        membership = {"kind": "membership", "operator": "in", "list_ids": [str(list_id)]}
        body = segment_body(tenant.list_id, rules_json={"all": [STATUS, {"not": membership}]})
        created = await client.post("/api/v2/segments/", json=body, headers=tenant.headers)
        assert created.status_code == status, created.text
        if status == 400:
            (error,) = created.json()["errors"]
            assert error["loc"] == "rules_json.all[1].not.list_ids[0]"
        else:
            await client.delete(f"/api/v2/segments/{created.json()['id']}/", headers=tenant.headers)
