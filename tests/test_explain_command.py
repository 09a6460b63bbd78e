"""`segments explain` takes what a user has at hand: the segment's uuid, or the simple API's
number with the account; anything else gets a message saying what to give, not a traceback."""

from __future__ import annotations

import argparse
import uuid
from uuid import UUID

import asyncpg
import httpx
import pytest

from segments.commands.admin import run_explain
from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, segment_body
from worker.settings import Settings


async def _explain(
    settings: Settings, capsys: pytest.CaptureFixture[str], segment: str, account: UUID | None
) -> tuple[int, str, str]:
    args = argparse.Namespace(segment=segment, account=account, analyze=False)
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
