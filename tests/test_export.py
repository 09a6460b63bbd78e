"""Bulk export of a segment's members: `GET /api/v2/segments/{id}/contacts/export/` and
`segments export`, sharing worker/exports."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, api_process, make_contact
from tests.segment_data import fill_segment, insert_segment
from tests.waiting import wait_for
from worker.exports.columns import DEFAULT_COLUMNS


def export_path(segment_id: uuid.UUID, query: str = "") -> str:
    return f"/api/v2/segments/{segment_id}/contacts/export/{query}"


async def awkward_segment(conn: asyncpg.Connection, tenant: Tenant) -> uuid.UUID:
    """One member whose values need quoting, escaping or a formula guard, with custom fields."""
    await conn.executemany(
        "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, $2, $3)",
        [
            (tenant.account_id, "plan", "text"),
            (tenant.account_id, "score", "number"),
            (tenant.account_id, "vip", "boolean"),
            (tenant.account_id, "labels", "list"),
        ],
    )
    contact_id = await make_contact(
        conn,
        tenant.account_id,
        "odd@example.com",
        name='Smith, "Jo"\nsecond line',
        company='=HYPERLINK("http://evil")',
        city="-2+3",
        tags=["a", "b"],
        attributes={"plan": "@pro", "score": -4.5, "vip": True, "labels": ["x", "y"]},
    )
    segment_id = await insert_segment(conn, tenant.account_id)
    await conn.execute(
        "INSERT INTO segment_members (segment_id, contact_id, account_id) VALUES ($1, $2, $3)",
        segment_id,
        contact_id,
        tenant.account_id,
    )
    return segment_id


async def test_csv_is_quoted_guarded_and_has_the_default_columns(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment_id = await awkward_segment(conn, tenant)
    response = await client.get(export_path(segment_id), headers=tenant.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="segment-{segment_id}.csv"'
    )
    # Lines end in CRLF; the newline inside the quoted name stays as it was.
    assert (response.content.count(b"\r\n"), response.content.count(b"\n")) == (2, 3)
    header, row = list(csv.reader(io.StringIO(response.text, newline="")))
    custom = ["attr.labels", "attr.plan", "attr.score", "attr.vip"]
    assert header == [*DEFAULT_COLUMNS, *custom]
    cells = dict(zip(header, row, strict=True))
    assert cells["email"] == "odd@example.com"
    assert cells["name"] == 'Smith, "Jo"\nsecond line'  # commas, quotes, newline survive
    assert cells["company"] == '\'=HYPERLINK("http://evil")'  # not run as a formula
    assert cells["city"] == "'-2+3"
    assert cells["tags"] == "a|b"  # as `segments import` reads lists
    assert cells["last_name"] == ""  # null
    assert (cells["attr.plan"], cells["attr.score"], cells["attr.vip"]) == ("'@pro", "-4.5", "true")
    assert cells["attr.labels"] == "x|y"
    uuid.UUID(cells["id"])
    assert cells["created_at"].endswith("+00:00")


async def test_ndjson_with_chosen_columns_keeps_json_types(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment_id = await awkward_segment(conn, tenant)
    query = "?format=ndjson&columns=email,%20attr.score,tags,attr.vip,name,company"
    response = await client.get(export_path(segment_id, query), headers=tenant.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-disposition"].endswith(f'segment-{segment_id}.ndjson"')
    (line,) = response.text.splitlines()
    record = json.loads(line)
    assert list(record) == ["email", "attr.score", "tags", "attr.vip", "name", "company"]
    assert record == {
        "email": "odd@example.com",
        "attr.score": -4.5,
        "tags": ["a", "b"],
        "attr.vip": True,
        "name": 'Smith, "Jo"\nsecond line',
        "company": '=HYPERLINK("http://evil")',  # NDJSON is data, not a spreadsheet
    }


async def test_bad_format_and_columns_are_400s_with_locations(
    client: httpx.AsyncClient, tenant: Tenant, conn: asyncpg.Connection
) -> None:
    segment_id = await awkward_segment(conn, tenant)
    cases = {
        "?format=xlsx": "format",
        "?columns=email,password": "columns[1]",
        "?columns=email,attr.undeclared": "columns[1]",
        "?columns=email,email": "columns[1]",
        "?columns=,": "columns[0]",
    }
    for query, loc in cases.items():
        response = await client.get(export_path(segment_id, query), headers=tenant.headers)
        assert response.status_code == 400, query
        (error,) = response.json()["errors"]
        assert error["loc"] == loc, query
    unknown = await client.get(export_path(segment_id, "?columns=pasword"), headers=tenant.headers)
    msg = unknown.json()["errors"][0]["msg"]
    assert "choose from" in msg and "attr.plan" in msg  # names what would work
    undeclared = await client.get(
        export_path(segment_id, "?columns=attr.x"), headers=tenant.headers
    )
    assert "declare" in undeclared.json()["errors"][0]["msg"]


async def test_export_is_scoped_and_needs_a_done_segment(
    client: httpx.AsyncClient, tenant: Tenant, other: Tenant, conn: asyncpg.Connection
) -> None:
    segment_id = await awkward_segment(conn, tenant)
    for headers in (other.headers, tenant.headers):
        missing = await client.get(export_path(uuid.uuid4()), headers=headers)
        assert (missing.status_code, missing.json()["errors"][0]["loc"]) == (404, "segment_id")
    elsewhere = await client.get(export_path(segment_id), headers=other.headers)
    assert elsewhere.status_code == 404
    no_read = await tenant.key_with(conn, "contacts:write")
    assert (await client.get(export_path(segment_id), headers=no_read)).status_code == 403
    reader = await tenant.key_with(conn, "segments:read")
    assert (await client.get(export_path(segment_id), headers=reader)).status_code == 200
    building = await insert_segment(conn, tenant.account_id, status="RUNNING")
    refused = await client.get(export_path(building), headers=tenant.headers)
    assert refused.status_code == 409
    (error,) = refused.json()["errors"]
    assert (error["type"], error["loc"]) == ("segment_not_ready", "segment_id")
    assert "DONE" in error["msg"]


async def test_a_large_segment_is_streamed_completely(
    tenant: Tenant, conn: asyncpg.Connection, database_url: str, amqp_url: str
) -> None:
    """Through a real `segments api` process: the body arrives in chunks as it is read."""
    segment_id = await insert_segment(conn, tenant.account_id)
    await fill_segment(conn, tenant.account_id, segment_id, 20_000)
    emails = {f"c{i}@bulk.example" for i in range(1, 20_001)}
    with api_process(database_url, amqp_url) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            path = export_path(segment_id, "?columns=id,email,tags")
            async with http.stream("GET", path, headers=tenant.headers) as response:
                assert response.status_code == 200
                assert response.headers["transfer-encoding"] == "chunked"
                body = b"".join([chunk async for chunk in response.aiter_raw()])
            ndjson = await http.get(
                export_path(segment_id, "?format=ndjson"), headers=tenant.headers
            )
    header, *rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert header == ["id", "email", "tags"]
    assert len(rows) == 20_000
    assert {row[1] for row in rows} == emails
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)  # contact id order
    lines = ndjson.text.splitlines()
    assert len(lines) == 20_000
    assert {json.loads(line)["email"] for line in lines} == emails


async def test_a_database_failure_midway_cuts_the_stream_instead_of_ending_it(
    tenant: Tenant, conn: asyncpg.Connection, database_url: str, amqp_url: str
) -> None:
    """A client must never take a short export for a whole one."""
    segment_id = await insert_segment(conn, tenant.account_id)
    await fill_segment(conn, tenant.account_id, segment_id, 20_000)

    async def kill_the_stream() -> int:
        # The stream's connection is the only one in a transaction (no relay in this process).
        killed = await conn.fetch(
            """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND backend_type = 'client backend' AND xact_start IS NOT NULL"""
        )
        return len(killed)

    with api_process(database_url, amqp_url, SEGMENTS_OUTBOX_RELAY_ENABLED="false") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            path = export_path(segment_id)
            async with http.stream("GET", path, headers=tenant.headers) as response:
                assert response.status_code == 200
                chunks = response.aiter_raw()
                await anext(chunks)
                assert await wait_for(kill_the_stream) == 1
                with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                    async for _ in chunks:
                        pass
        assert '"export.failed"' in server.log()


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    console_script = Path(sys.executable).parent / "segments"
    environment = {
        **os.environ,
        "SEGMENTS_DATABASE_URL": database_url,
        "SEGMENTS_LOG_FORMAT": "json",
    }
    return subprocess.run(
        [str(console_script), "export", *args],
        env=environment,
        capture_output=True,
        timeout=120,
        check=False,
    )


async def test_command_line_export_writes_the_same_bytes_as_the_api(
    client: httpx.AsyncClient,
    tenant: Tenant,
    conn: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    segment_id = await awkward_segment(conn, tenant)
    await fill_segment(conn, tenant.account_id, segment_id, 20_000)
    api = await client.get(export_path(segment_id), headers=tenant.headers)
    output = tmp_path / "members.csv"
    done = run_cli(database_url, str(segment_id), "--output", str(output))
    assert done.returncode == 0, done.stderr
    assert output.read_bytes() == api.content
    assert len(output.read_bytes().splitlines()) == 1 + 1 + 1 + 20_000  # header, 2-line row
    assert not (tmp_path / "members.csv.partial").exists()

    number = await conn.fetchval("SELECT number FROM segments WHERE id = $1", segment_id)
    stdout = run_cli(
        database_url,
        str(number),
        "--account",
        str(tenant.account_id),
        "--format",
        "ndjson",
        "--columns",
        "email,attr.plan",
    )
    assert stdout.returncode == 0, stdout.stderr
    lines = stdout.stdout.decode().splitlines()
    assert len(lines) == 20_001
    records = [json.loads(line) for line in lines]
    assert {"email": "odd@example.com", "attr.plan": "@pro"} in records
    assert {"email": "c1@bulk.example", "attr.plan": None} in records


async def test_command_line_refusals_say_what_to_do(
    tenant: Tenant, conn: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    segment_id = await awkward_segment(conn, tenant)
    running = await insert_segment(conn, tenant.account_id, status="RUNNING")
    output = tmp_path / "never.csv"
    cases = {
        (str(running),): "once its build is DONE",
        ("7",): "--account",
        (str(uuid.uuid4()),): "not found",
        (str(segment_id), "--columns", "email,nope"): "choose from",
    }
    for args, hint in cases.items():
        done = run_cli(database_url, *args, "--output", str(output))
        assert done.returncode == 2, args
        assert hint in done.stderr.decode() + done.stdout.decode(), (args, done.stderr)
        assert not output.exists()
