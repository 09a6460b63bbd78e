"""The `segments list|field|key|contact|account delete` commands, and the import's advice
for an undeclared custom field column: JSON on stdout, refusals that say what to do."""

from __future__ import annotations

import io
import json
import uuid
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from segments.cli import COMMANDS, _parser
from segments.importer import ImportOptions, InputError, run_import
from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import make_contact
from worker.settings import Settings


class Cli:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stderr = ""

    async def __call__(self, *argv: str, expect: int = 0) -> Any:
        """Run `segments *argv` in this event loop; its stdout as JSON."""
        args = _parser().parse_args(list(argv))
        command = next(c for c in COMMANDS if c.name == args.command)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = await command.run(self.settings, args)
        self.stderr = err.getvalue()
        assert code == expect, (argv, self.stderr)
        # Unconfigured, structlog prints to stdout too (the app's relay runs in this loop):
        # the command's JSON is what starts at a line of its own with "{".
        lines = out.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("{")), None)
        if start is None:
            return None
        end = start if lines[start].endswith("}") else lines.index("}", start)
        return json.loads("\n".join(lines[start : end + 1]))


@pytest.fixture
def cli(database_url: str, amqp_url: str) -> Cli:
    return Cli(Settings(database_url=database_url, amqp_url=amqp_url))


async def new_account(cli: Cli) -> str:
    account_id: str = (await cli("account", "create", "cli"))["account_id"]
    return account_id


async def test_keys_are_created_listed_without_secrets_and_revoked(
    cli: Cli, client: httpx.AsyncClient
) -> None:
    account = await new_account(cli)
    created = await cli("key", "create", account, "--scope", "segments:read", "--name", "reports")
    assert created["scopes"] == ["segments:read"] and created["name"] == "reports"
    headers = {"X-API-Key": created["key"]}
    assert (await client.get("/api/v2/segments/", headers=headers)).status_code == 200
    assert (await client.get("/api/v2/keys/", headers=headers)).status_code == 403

    listed = await cli("key", "list", account)
    assert created["key"] not in json.dumps(listed)
    assert [k["name"] for k in listed["items"]] == [None, "reports"]  # the account's first key
    assert all("key" not in k for k in listed["items"])

    revoked = await cli("key", "revoke", account, created["id"])
    assert revoked["revoked_at"] is not None
    assert (await client.get("/api/v2/segments/", headers=headers)).status_code == 401
    await cli("key", "revoke", account, str(uuid.uuid4()), expect=1)
    assert "segments key list" in cli.stderr
    everything = await cli("key", "create", account)  # default: every scope
    assert set(everything["scopes"]) == {
        "segments:read",
        "segments:write",
        "contacts:write",
        "keys:admin",
    }


async def test_lists_members_fields_and_a_contact_on_the_command_line(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    account = await new_account(cli)
    ann = await make_contact(conn, uuid.UUID(account), "ann@example.com")
    bob = await make_contact(conn, uuid.UUID(account), "bob@example.com")
    created = await cli("list", "create", account, "Newsletter")
    list_id = created["id"]
    added = await cli("list", "add", account, list_id, "ANN@example.com", str(bob))
    assert added == {"added": 2, "removed": 0}
    assert await cli("list", "remove", account, list_id, "bob@example.com") == {
        "added": 0,
        "removed": 1,
    }
    await cli("list", "add", account, list_id, "nobody@example.com", expect=1)
    assert "nobody@example.com" in cli.stderr and "POST /api/v2/contacts" in cli.stderr
    await cli("list", "rename", account, list_id, "Weekly")
    assert [
        (i["name"], i["members_count"]) for i in (await cli("list", "list", account))["items"]
    ] == [("Weekly", 1)]
    changed = await conn.fetchval(
        """SELECT count(*) FROM outbox
           WHERE routing_key = 'contact.changed' AND body->>'account_id' = $1""",
        account,
    )
    assert changed == 2  # one per member change, through the outbox

    declared = await cli("field", "declare", account, "plan", "text")
    assert declared["previous_type"] is None
    assert (await cli("field", "list", account))["items"] == [{"key": "plan", "data_type": "text"}]
    await cli("field", "declare", account, "status", "text", expect=1)
    assert "built-in field" in cli.stderr
    assert await cli("field", "remove", account, "plan") == {"removed": "plan"}

    shown = await cli("contact", "show", account, "ann@example.com")
    assert (shown["id"], shown["list_ids"], shown["segments"]) == (str(ann), [list_id], [])
    await cli("contact", "show", account, "nobody@example.com", expect=1)

    assert await cli("list", "delete", account, list_id) == {"deleted": list_id}
    await cli("list", "delete", account, list_id, expect=1)
    await cli("list", "list", str(uuid.uuid4()), expect=1)
    assert "segments account create" in cli.stderr


async def test_importing_an_undeclared_custom_field_says_how_to_declare_it(
    cli: Cli, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    account = await new_account(cli)
    path = tmp_path / "contacts.csv"
    path.write_text("email,attr.plan,attr.seats\nann@example.com,pro,3\n")
    options = ImportOptions(kind="contacts", path=str(path), account_id=uuid.UUID(account))
    with pytest.raises(InputError) as refused:
        await run_import(conn, options, report=io.StringIO())
    message = str(refused.value)
    assert "custom fields ['plan', 'seats'] are not declared" in message
    assert f"segments field declare {account} plan text" in message
    assert "PUT /api/v2/fields/plan" in message
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM contacts WHERE account_id = $1", uuid.UUID(account)
        )
        == 0
    )

    await cli("field", "declare", account, "plan", "text")
    await cli("field", "declare", account, "seats", "number")
    summary = await run_import(conn, options, report=io.StringIO())
    assert summary.loaded == 1
    stored = await conn.fetchval(
        "SELECT attributes FROM contacts WHERE account_id = $1", uuid.UUID(account)
    )
    assert stored == {"plan": "pro", "seats": 3}


async def test_account_delete_on_the_command_line_is_safe_to_run_twice(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    account = await new_account(cli)
    await make_contact(conn, uuid.UUID(account), "gone@example.com")
    done = await cli("account", "delete", account, "--batch-size", "100")
    assert done["rows"]["contacts"] == 1
    assert (
        await conn.fetchval("SELECT count(*) FROM accounts WHERE id = $1", uuid.UUID(account)) == 0
    )
    await cli("account", "delete", account, expect=1)
    assert "no account" in cli.stderr
