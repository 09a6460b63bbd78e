"""The changes feed and the count history over HTTP (docs/changes.md): cursor reads, limits,
tenant isolation, scopes, the 410 of a cursor past retention, and history points."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, make_contact, segment_body
from worker.builds import build_segment
from worker.changes import apply_changes
from worker.messages import SegmentMessage

NL = {
    "any": [{"all": [{"kind": "field", "field": "country", "operator": "equals", "value": "nl"}]}]
}


async def built_segment(
    client: httpx.AsyncClient, conn: asyncpg.Connection, tenant: Tenant, countries: list[str]
) -> tuple[str, list[uuid.UUID]]:
    """A segment "country nl" over contacts of these countries, built once."""
    ids = []
    for i, country in enumerate(countries):
        contact_id = await make_contact(
            conn, tenant.account_id, f"m{i}@example.com", country=country
        )
        await conn.execute(
            """INSERT INTO contact_list_members (list_id, contact_id, account_id)
               VALUES ($1, $2, $3)""",
            tenant.list_id,
            contact_id,
            tenant.account_id,
        )
        ids.append(contact_id)
    body = segment_body(tenant.list_id, rules_json=NL)
    response = await client.post("/api/v2/segments/", json=body, headers=tenant.headers)
    segment_id = response.json()["id"]
    message = SegmentMessage(
        schema_version=1, account_id=tenant.account_id, segment_id=segment_id, generation=1
    )
    assert (
        await build_segment(conn, message, "created", statement_timeout_ms=60_000)
    ).outcome == "done"
    return segment_id, ids


async def get(
    client: httpx.AsyncClient, tenant: Tenant, path: str, **params: Any
) -> httpx.Response:
    return await client.get(path, params=params, headers=tenant.headers)


async def test_the_feed_pages_through_the_changes_in_seq_order(
    client: httpx.AsyncClient, conn: asyncpg.Connection, tenant: Tenant
) -> None:
    segment_id, ids = await built_segment(client, conn, tenant, ["nl", "de", "de"])
    await conn.execute("UPDATE contacts SET country = 'nl' WHERE id = ANY($1)", ids[1:])
    await conn.execute("UPDATE contacts SET country = 'be' WHERE id = $1", ids[0])
    await apply_changes(conn, tenant.account_id, ids, statement_timeout_ms=60_000)
    path = f"/api/v2/segments/{segment_id}/changes/"

    first = await get(client, tenant, path, limit=2)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["items"][0] == {
        "seq": 1,
        "change": "initial",
        "total_count": 1,
        "at": body["items"][0]["at"],
        "generation": 1,
    }
    assert body["items"][1]["seq"] == 2 and body["next_after"] == 2
    rest = (await get(client, tenant, path, after=2)).json()
    assert [i["seq"] for i in rest["items"]] == [3, 4] and rest["next_after"] == 4
    moved = {(i["change"], i["contact_id"]) for i in [body["items"][1], *rest["items"]]}
    assert moved == {("left", str(ids[0])), ("entered", str(ids[1])), ("entered", str(ids[2]))}
    assert {i["cause"] for i in rest["items"]} == {"data"}
    assert (await get(client, tenant, path, after=4)).json() == {"items": [], "next_after": 4}


async def test_limits_scopes_and_other_accounts(
    client: httpx.AsyncClient, conn: asyncpg.Connection, tenant: Tenant, other: Tenant
) -> None:
    segment_id, _ = await built_segment(client, conn, tenant, ["nl"])
    for path in (
        f"/api/v2/segments/{segment_id}/changes/",
        f"/api/v2/segments/{segment_id}/history/",
    ):
        assert (await get(client, other, path)).status_code == 404
        unknown = f"/api/v2/segments/{uuid.uuid4()}/" + path.rsplit("/", 2)[1] + "/"
        assert (await get(client, tenant, unknown)).status_code == 404
        writer = await tenant.key_with(conn, "segments:write")
        assert (await client.get(path, headers=writer)).status_code == 403
        reader = await tenant.key_with(conn, "segments:read")
        assert (await client.get(path, headers=reader)).status_code == 200
    path = f"/api/v2/segments/{segment_id}/changes/"
    too_many = await get(client, tenant, path, limit=1001)
    assert too_many.status_code == 400 and too_many.json()["errors"][0]["loc"] == "limit"
    assert (await get(client, tenant, path, limit=1000)).status_code == 200
    assert (await get(client, tenant, path, after=-1)).status_code == 400


async def test_a_cursor_past_retention_is_410_naming_the_oldest_seq_kept(
    client: httpx.AsyncClient, conn: asyncpg.Connection, tenant: Tenant
) -> None:
    segment_id, ids = await built_segment(client, conn, tenant, ["de"])
    await conn.execute("UPDATE contacts SET country = 'nl' WHERE id = $1", ids[0])
    await apply_changes(conn, tenant.account_id, ids, statement_timeout_ms=60_000)
    await conn.execute(
        """UPDATE segment_membership_changes SET at = at - interval '8 days'
           WHERE segment_id = $1 AND seq_last = 1""",
        segment_id,
    )
    path = f"/api/v2/segments/{segment_id}/changes/"
    gone = await get(client, tenant, path, after=0)
    assert gone.status_code == 410
    [error] = gone.json()["errors"]
    assert error["type"] == "cursor_expired" and error["loc"] == "after"
    assert "oldest seq kept is 2" in error["msg"]
    assert gone.headers["Segments-Oldest-Seq"] == "2"
    assert [i["seq"] for i in (await get(client, tenant, path, after=1)).json()["items"]] == [2]


async def test_history_has_a_point_per_minute_with_a_change(
    client: httpx.AsyncClient, conn: asyncpg.Connection, tenant: Tenant
) -> None:
    segment_id, ids = await built_segment(client, conn, tenant, ["nl", "de"])
    await conn.execute("UPDATE contacts SET country = 'nl' WHERE id = $1", ids[1])
    await apply_changes(conn, tenant.account_id, ids, statement_timeout_ms=60_000)
    path = f"/api/v2/segments/{segment_id}/history/"
    points = (await get(client, tenant, path)).json()["points"]
    # Both changes fell in this minute or the next: one point each minute, summed.
    assert sum(p["entered"] for p in points) == 2 and sum(p["left"] for p in points) == 0
    assert points[-1]["total_count"] == 2
    minute = datetime.fromisoformat(points[-1]["at"])
    assert minute.second == 0 and minute.microsecond == 0
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    much_later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    quiet = await get(client, tenant, path, since=later, until=much_later)
    assert quiet.json() == {"points": []}
    backwards = await get(client, tenant, path, since=later, until=datetime.now(UTC).isoformat())
    assert backwards.status_code == 400
    naive = await get(client, tenant, path, since="2026-01-01T00:00:00")
    assert naive.status_code == 400
