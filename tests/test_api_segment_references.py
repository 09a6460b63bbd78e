"""`segment` conditions through the v2 API (docs/rules.md, "segment"): each referenced id is
the same account's, exists, is not the segment itself, makes no cycle and no chain longer
than 5, each a 400 at the id's location; the references are stored with the rules; deleting
a referenced segment is a 409 naming the segments that reference it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, segment_body
from worker.account_delete import delete_account

STATUS = {"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"}


def referencing(*segment_ids: Any, operator: str = "in") -> dict[str, Any]:
    """Rules: subscribed, and in (or not in) the segments."""
    condition = {
        "kind": "segment",
        "operator": operator,
        "segment_ids": [str(s) for s in segment_ids],
    }
    return {"any": [{"all": [STATUS, condition]}]}


async def create(
    client: httpx.AsyncClient, tenant: Tenant, rules: dict[str, Any] | None = None, name: str = "s"
) -> httpx.Response:
    body = segment_body(tenant.list_id, name=name)
    if rules is not None:
        body["rules_json"] = rules
    return await client.post("/api/v2/segments/", json=body, headers=tenant.headers)


async def created(
    client: httpx.AsyncClient, tenant: Tenant, rules: dict[str, Any] | None = None, name: str = "s"
) -> str:
    response = await create(client, tenant, rules, name)
    assert response.status_code == 200, response.text
    segment_id: str = response.json()["id"]
    return segment_id


async def patch_rules(
    client: httpx.AsyncClient, tenant: Tenant, segment_id: str, rules: dict[str, Any]
) -> httpx.Response:
    return await client.patch(
        f"/api/v2/segments/{segment_id}/", json={"rules_json": rules}, headers=tenant.headers
    )


def errors(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 400, response.text
    return [(e["loc"], e["type"]) for e in response.json()["errors"]]


AT = "rules_json.any[0].all[1].segment_ids"


@pytest.fixture(autouse=True)
async def _no_segments_left_behind(conn: asyncpg.Connection, tenant: Tenant) -> AsyncIterator[None]:
    """The segments these tests create are never built here; left PENDING, a later worker
    test's scheduler would take them for stuck builds and flood its queue with them."""
    yield
    await conn.execute("DELETE FROM segments WHERE account_id = $1", tenant.account_id)


async def test_references_are_stored_both_ways_and_returned_as_sent(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    a = await created(client, tenant)
    b = await created(client, tenant)
    rules = referencing(a, b, operator="not_in")
    c = await create(client, tenant, rules)
    assert c.status_code == 200, c.text
    assert c.json()["rules_json"] == rules
    rows = await conn.fetch(
        "SELECT referenced_segment_id FROM segment_references WHERE segment_id = $1",
        uuid.UUID(c.json()["id"]),
    )
    assert {str(r[0]) for r in rows} == {a, b}
    # A rules change replaces them.
    response = await patch_rules(client, tenant, c.json()["id"], referencing(a))
    assert response.status_code == 200, response.text
    rows = await conn.fetch(
        "SELECT referenced_segment_id FROM segment_references WHERE segment_id = $1",
        uuid.UUID(c.json()["id"]),
    )
    assert [str(r[0]) for r in rows] == [a]


async def test_unknown_and_other_accounts_segments_are_400_at_the_id(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    mine = await created(client, tenant)
    theirs = await created(client, other)
    response = await create(client, tenant, referencing(mine, theirs, uuid.uuid4()))
    assert errors(response) == [(f"{AT}[1]", "unknown_segment"), (f"{AT}[2]", "unknown_segment")]
    assert "not a segment of this account" in response.json()["errors"][0]["msg"]
    await client.delete(f"/api/v2/segments/{theirs}/", headers=other.headers)


async def test_a_segment_cannot_reference_itself(client: httpx.AsyncClient, tenant: Tenant) -> None:
    a = await created(client, tenant)
    assert errors(await patch_rules(client, tenant, a, referencing(a))) == [
        (f"{AT}[0]", "segment_self")
    ]


async def test_a_cycle_is_400_at_the_id_that_closes_it(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    a = await created(client, tenant)
    b = await created(client, tenant, referencing(a))
    c = await created(client, tenant, referencing(b))
    other = await created(client, tenant)
    response = await patch_rules(client, tenant, a, referencing(other, c))
    assert errors(response) == [(f"{AT}[1]", "segment_cycle")]
    assert "cycle" in response.json()["errors"][0]["msg"]


async def test_chains_of_references_are_at_most_five_deep(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    chain = [await created(client, tenant)]
    for _ in range(5):  # s1 -> s0, ..., s5 -> s4: five references in a row
        chain.append(await created(client, tenant, referencing(chain[-1])))
    response = await create(client, tenant, referencing(chain[-1]))
    assert errors(response) == [(f"{AT}[0]", "segment_chain_too_long")]
    assert "at most 5" in response.json()["errors"][0]["msg"]
    # Lengthening the chain from below counts the segments above too.
    bottom = await created(client, tenant)
    response = await patch_rules(client, tenant, chain[0], referencing(bottom))
    assert errors(response) == [(f"{AT}[0]", "segment_chain_too_long")]
    # Within the limit, a reference in the middle of the chain is fine.
    assert (await patch_rules(client, tenant, chain[2], referencing(chain[0]))).status_code == 200


async def test_deleting_a_referenced_segment_is_409_naming_the_referring_ones(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    a = await created(client, tenant, name="Base")
    b = await created(client, tenant, referencing(a), name="Engaged of base")
    c = await created(client, tenant, referencing(a, operator="not_in"), name="Rest")
    response = await client.delete(f"/api/v2/segments/{a}/", headers=tenant.headers)
    assert response.status_code == 409, response.text
    found = response.json()["errors"]
    assert [e["type"] for e in found] == ["segment_in_use", "segment_in_use"]
    assert b in found[0]["msg"] and "'Engaged of base'" in found[0]["msg"]
    assert c in found[1]["msg"] and "'Rest'" in found[1]["msg"]
    # Once nothing references it, it goes.
    for referring in (b, c):
        deleted = await client.delete(f"/api/v2/segments/{referring}/", headers=tenant.headers)
        assert deleted.status_code == 204
    assert (
        await client.delete(f"/api/v2/segments/{a}/", headers=tenant.headers)
    ).status_code == 204


async def test_segment_ids_shape_is_checked(client: httpx.AsyncClient, tenant: Tenant) -> None:
    too_many = referencing(*(uuid.uuid4() for _ in range(21)))
    assert errors(await create(client, tenant, too_many)) == [(AT, "too_long")]
    assert errors(await create(client, tenant, referencing())) == [(AT, "too_short")]
    bad = referencing("nope")
    assert errors(await create(client, tenant, bad)) == [(f"{AT}[0]", "uuid_parsing")]


async def test_an_account_with_references_can_be_deleted(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    a = await created(client, tenant)
    await created(client, tenant, referencing(a))
    counts = await delete_account(conn, tenant.account_id)
    assert counts["segments"] == 2
    left = await conn.fetchval(
        "SELECT count(*) FROM segment_references WHERE account_id = $1", tenant.account_id
    )
    assert left == 0
