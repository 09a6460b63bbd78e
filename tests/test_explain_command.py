"""`segments explain` takes what a user has at hand: the segment's uuid, or the simple API's
number with the account; anything else gets a message saying what to give, not a traceback."""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import httpx
import pytest

from segments.commands.admin import run_explain
from segments.explain_view import render
from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, make_contact, segment_body
from worker.explain_contact import explain_contact
from worker.settings import Settings


async def _explain(
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    segment: str,
    account: UUID | None,
    contact: str | None = None,
    as_json: bool = False,
) -> tuple[int, str, str]:
    args = argparse.Namespace(
        segment=segment, account=account, analyze=False, contact=contact, json=as_json
    )
    capsys.readouterr()  # drop what the app logged before (structlog's default is stdout)
    code = await run_explain(settings, args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_explain_by_uuid_or_by_number_with_its_account(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other: Tenant,
    conn: asyncpg.Connection,
    api_settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    created = await client.post(
        "/api/v2/segments/", json=segment_body(tenant.list_id), headers=tenant.headers
    )
    segment_id = created.json()["id"]
    number = await conn.fetchval("SELECT number FROM segments WHERE id = $1", UUID(segment_id))

    code, out, _ = await _explain(api_settings, capsys, segment_id, None)
    assert code == 0 and "-- params:" in out and "SELECT" in out
    code, by_number, _ = await _explain(api_settings, capsys, str(number), tenant.account_id)
    # The SQL, without the params (now() differs) or a log line of the app running beside.
    sql = out[out.index("-- params:") :].split("\n\n")[0].split("\n", 1)[1]
    assert code == 0 and sql in by_number

    code, out, err = await _explain(api_settings, capsys, str(number), None)
    assert code == 1 and "-- params" not in out
    assert "simple-API segment number" in err and "--account ACCOUNT_ID" in err
    assert "GET /api/v2/segments/" in err  # where to find the uuid

    code, _, err = await _explain(api_settings, capsys, "Active Gmail Subscribers", None)
    assert code == 1 and "is not a segment" in err and "uuid" in err

    # Another account's number or uuid names nothing there.
    code, _, err = await _explain(api_settings, capsys, str(number), other.account_id)
    assert code == 1 and f"account {other.account_id} has no segment number {number}" in err
    code, _, err = await _explain(api_settings, capsys, segment_id, other.account_id)
    assert code == 1 and "has no segment" in err

    missing = uuid.uuid4()
    code, _, err = await _explain(api_settings, capsys, str(missing), None)
    assert code == 1 and f"there is no segment {missing}" in err


async def test_explain_a_contact_as_a_tree_or_as_the_apis_json(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other: Tenant,
    conn: asyncpg.Connection,
    api_settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    contact = await make_contact(conn, tenant.account_id, "hal@example.com", isp_id=1)
    theirs = await make_contact(conn, other.account_id, "hal@example.com")
    created = await client.post(
        "/api/v2/segments/", json=segment_body(tenant.list_id), headers=tenant.headers
    )
    segment_id = created.json()["id"]

    code, out, _ = await _explain(api_settings, capsys, segment_id, None, "HAL@example.com")
    assert code == 0 and "\x1b" not in out  # no colours but on a terminal
    assert f"contact {contact} <hal@example.com>" in out
    assert "matches: no   member: no   in universe: no" in out
    lines = out.splitlines()
    assert "✗ any of" in lines and "  ✗ all of" in lines
    assert any(line.startswith('    ✓ status equals "subscribed"') for line in lines)
    assert any(
        "open count_gte 1, last 30 days" in line and "| 0 events from" in line for line in lines
    )

    code, out, _ = await _explain(api_settings, capsys, segment_id, None, str(contact), True)
    answer = json.loads(out)
    api = await client.get(
        f"/api/v2/segments/{segment_id}/contacts/{contact}/explain/", headers=tenant.headers
    )
    for key in ("segment_id", "contact_id", "member", "matches", "in_universe", "tree"):
        if key != "tree":
            assert answer[key] == api.json()[key], key
    assert _results(answer["tree"]) == _results(api.json()["tree"])

    for who in (str(theirs), "nobody@example.com"):
        code, out, err = await _explain(api_settings, capsys, segment_id, None, who)
        assert code == 1 and out == "" and f"has no contact {who}" in err

    coloured = render(
        await explain_contact(
            conn, tenant.account_id, UUID(segment_id), str(contact), datetime.now(UTC)
        ),
        colour=True,
    )
    assert "\x1b[31m✗\x1b[0m any of" in coloured and "\x1b[32m✓\x1b[0m" in coloured
    await client.delete(f"/api/v2/segments/{segment_id}/", headers=tenant.headers)


def _results(node: dict[str, object]) -> list[object]:
    """The tree's results in order (observed windows move with `now`)."""
    out: list[object] = [node["result"]]
    for key in ("any", "all"):
        for child in node.get(key, ()):  # type: ignore[attr-defined]
            out += _results(child)
    if "not" in node:
        out += _results(node["not"])  # type: ignore[arg-type]
    return out
