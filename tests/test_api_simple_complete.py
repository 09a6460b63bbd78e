"""The simple API completed (README: HTTP API): complete lists, numbers per account, status and
error, DELETE, and a v2 segment's lists shown in its view."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import asyncpg
import httpx
from fastapi import FastAPI

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, http_client
from tests.segment_data import ALL_SUBSCRIBED, fill_segment, insert_segment
from tests.services import unique_name, with_database
from tests.waiting import wait_for
from worker.migrations import SQL_DIR, migrate

CREATE = {"name": "Active", "rules": ALL_SUBSCRIBED}


async def test_contacts_are_all_returned_streamed_with_optional_limit_and_offset(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment_id = await insert_segment(conn, tenant.account_id)
    await fill_segment(conn, tenant.account_id, segment_id, 5000)
    number = await conn.fetchval("SELECT number FROM segments WHERE id = $1", segment_id)
    path = f"/api/segments/contacts?segment_id={number}"
    response = await client.get(path, headers=tenant.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    contacts = response.json()
    assert len(contacts) == 5000  # not the 1,000 it stopped at before
    ids = [c["id"] for c in contacts]
    assert ids == sorted(ids) and len(set(ids)) == 5000
    assert {c["email"] for c in contacts} == {f"c{i}@bulk.example" for i in range(1, 5001)}
    page = (await client.get(f"{path}&limit=10&offset=4995", headers=tenant.headers)).json()
    assert [c["id"] for c in page] == ids[4995:]
    assert (await client.get(f"{path}&offset=6000", headers=tenant.headers)).json() == []
    bad = await client.get(f"{path}&limit=0", headers=tenant.headers)
    assert (bad.status_code, bad.json()["errors"][0]["loc"]) == (400, "limit")


async def test_streams_take_turns_and_leave_connections_to_other_requests(
    api_app: FastAPI, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment_id = await insert_segment(conn, tenant.account_id)
    await fill_segment(conn, tenant.account_id, segment_id, 10)
    streams = api_app.state.ctx.streams
    async with http_client(api_app) as http:
        held = 0
        while not streams.locked():  # other streams hold every turn
            await streams.acquire()
            held += 1
        assert held == 2  # a pool of 4 (the fixture's), two kept for other requests
        waiting = asyncio.create_task(
            http.get("/api/segments/contacts?segment_id=1", headers=tenant.headers)
        )
        other = await http.get("/api/v2/segments/", headers=tenant.headers)
        assert other.status_code == 200
        assert not waiting.done()
        for _ in range(held):
            streams.release()
        assert len((await waiting).json()) == 10


async def test_the_list_holds_every_segment(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    await conn.executemany(
        "INSERT INTO segments (account_id, name, dialect, rules) VALUES ($1, $2, 'simple', $3)",
        [(tenant.account_id, f"s{i}", ALL_SUBSCRIBED) for i in range(1, 1201)],
    )
    listed = (await client.get("/api/segments", headers=tenant.headers)).json()
    assert [s["id"] for s in listed] == list(range(1, 1201))  # not cut at 1,000
    assert listed[1199]["name"] == "s1200"
    some = (await client.get("/api/segments?limit=2&offset=1000", headers=tenant.headers)).json()
    assert [s["id"] for s in some] == [1001, 1002]


async def test_numbers_start_at_one_in_every_account_and_are_never_reused(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    first = await client.post("/api/segments", json=CREATE, headers=tenant.headers)
    second = await client.post("/api/segments", json=CREATE, headers=tenant.headers)
    others = await client.post("/api/segments", json=CREATE, headers=other.headers)
    assert [r.json()["id"] for r in (first, second, others)] == [1, 2, 1]
    assert (await client.delete("/api/segments/2", headers=tenant.headers)).status_code == 204
    third = await client.post("/api/segments", json=CREATE, headers=tenant.headers)
    assert third.json()["id"] == 3  # 2 stays gone: a client holding it gets a 404
    assert (await client.get("/api/segments/2", headers=tenant.headers)).status_code == 404


_INSERT = """INSERT INTO segments (account_id, name, dialect, rules)
              VALUES ($1, 'concurrent', 'simple', '[]') RETURNING number"""


async def test_concurrent_creates_in_one_account_take_distinct_numbers(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    responses = await asyncio.gather(
        *(client.post("/api/segments", json=CREATE, headers=tenant.headers) for _ in range(12))
    )
    assert sorted(r.json()["id"] for r in responses) == list(range(1, 13))


async def test_a_create_waits_for_the_accounts_open_create_and_a_rollback_leaves_no_gap(
    pool: asyncpg.Pool, account_id: uuid.UUID
) -> None:
    async with pool.acquire() as first, pool.acquire() as second:
        pid = await second.fetchval("SELECT pg_backend_pid()")
        transaction = first.transaction()
        await transaction.start()
        assert await first.fetchval(_INSERT, account_id) == 1
        waiting = asyncio.create_task(second.fetchval(_INSERT, account_id))

        async def blocked() -> bool:
            event: str | None = await first.fetchval(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
            )
            return event == "Lock"

        await wait_for(blocked)  # the second create waits on the account's row
        await transaction.rollback()
        assert await waiting == 1  # the rolled back number is given again: no gap


async def test_status_and_error_are_shown(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    await insert_segment(conn, tenant.account_id, status="FAILED", error="field x undeclared")
    await insert_segment(conn, tenant.account_id, status="RUNNING")
    failed, running = (await client.get("/api/segments", headers=tenant.headers)).json()
    assert (failed["status"], failed["error"], failed["contacts_count"]) == (
        "FAILED",
        "field x undeclared",
        None,
    )
    assert (running["status"], running["error"]) == ("RUNNING", None)
    one = await client.get("/api/segments/1", headers=tenant.headers)
    assert one.json() == failed


async def test_delete_is_scoped_to_the_account_and_needs_write(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    segment_id = await insert_segment(conn, tenant.account_id)
    await fill_segment(conn, tenant.account_id, segment_id, 3)
    reader = await tenant.key_with(conn, "segments:read")
    refused = await client.delete("/api/segments/1", headers=reader)
    assert refused.status_code == 403
    elsewhere = await client.delete("/api/segments/1", headers=other.headers)
    assert (elsewhere.status_code, elsewhere.json()["errors"][0]["loc"]) == (404, "number")
    assert await conn.fetchval("SELECT count(*) FROM segments WHERE id = $1", segment_id) == 1
    assert (await client.delete("/api/segments/1", headers=tenant.headers)).status_code == 204
    assert await conn.fetchval("SELECT count(*) FROM segments WHERE id = $1", segment_id) == 0
    members = "SELECT count(*) FROM segment_members WHERE segment_id = $1"
    assert await conn.fetchval(members, segment_id) == 0
    again = await client.delete("/api/segments/1", headers=tenant.headers)
    assert again.status_code == 404
    assert (await client.get("/api/segments", headers=tenant.headers)).json() == []


async def test_another_accounts_segment_is_invisible(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    segment_id = await insert_segment(conn, tenant.account_id)
    await fill_segment(conn, tenant.account_id, segment_id, 2)
    assert (await client.get("/api/segments", headers=other.headers)).json() == []
    for path in ("/api/segments/1", "/api/segments/contacts?segment_id=1"):
        response = await client.get(path, headers=other.headers)
        assert response.status_code == 404, path


async def test_migration_renumbers_existing_segments_per_account(
    database_url: str, tmp_path: Path
) -> None:
    """Segments numbered by the old global sequence get 1, 2, ... per account, in creation
    order, and new ones continue from there."""
    dsn = with_database(database_url, unique_name("segments_renumber"))
    before = tmp_path
    try:
        for path in sorted(SQL_DIR.glob("00[1-6]_*.sql")):
            shutil.copy(path, before / path.name)
        await migrate(dsn, before)
        conn = await asyncpg.connect(dsn)
        try:
            a, b = [
                await conn.fetchval("INSERT INTO accounts (name) VALUES ($1) RETURNING id", n)
                for n in ("a", "b")
            ]
            # Created in the order a3, b1, a1, b2, a2 (by created_at), inserted in another.
            for account, name, second in (
                (a, "a1", 3),
                (b, "b1", 2),
                (a, "a2", 5),
                (b, "b2", 4),
                (a, "a3", 1),
            ):
                await conn.execute(
                    """INSERT INTO segments (account_id, name, rules, created_at)
                       VALUES ($1, $2, '[]', now() + make_interval(secs => $3))""",
                    account,
                    name,
                    float(second),
                )
            assert (await migrate(dsn))[0] == 7  # and whatever came after it
            rows = await conn.fetch("SELECT name, number FROM segments ORDER BY name")
            assert [(r["name"], r["number"]) for r in rows] == [
                ("a1", 2),
                ("a2", 3),
                ("a3", 1),
                ("b1", 1),
                ("b2", 2),
            ]
            added = await conn.fetchval(
                "INSERT INTO segments (account_id, name, rules) VALUES ($1, 'b3', '[]') "
                "RETURNING number",
                b,
            )
            assert added == 3
        finally:
            await conn.close()
    finally:
        server = await asyncpg.connect(database_url)
        try:
            await server.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await server.close()
