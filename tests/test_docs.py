"""The documentation stays true: the message JSON Schemas and the README's configuration table
are what the code generates, the schemas and the worker's decoder agree on what a message is,
and the producer example really moves a contact between segments."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import jsonschema
import pytest

from tests.waiting import wait_for
from tests.worker_support import (
    members,
    publish_segment,
    publisher,
    running_worker,
    save_segment,
    seed_contacts,
    segment_row,
    wait_status,
    worker_settings,
)
from worker.messages import BadMessage, ContactChanged, SegmentMessage, _Message, decode
from worker.schemas import MESSAGES, render, schemas
from worker.settings import OTHER_VARIABLES, Settings, markdown_table

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "docs" / "schemas"
EXAMPLE = ROOT / "examples" / "produce_contact_changed.py"
README = ROOT / "README.md"
# Variables of the test suite and CI, not of the service (README mentions some of them).
TEST_VARIABLES = {
    "SEGMENTS_TEST_DATABASE_URL",
    "SEGMENTS_TEST_AMQP_URL",
    "SEGMENTS_SCHEMATHESIS_EXAMPLES",
    "SEGMENTS_PROPERTY_EXAMPLES",
    "SEGMENTS_REQUIRE_PROMTOOL",
    "SEGMENTS_REQUIRE_BROWSER",
}

A = "6f1c2d9e-3b4a-4c5d-8e7f-0a1b2c3d4e5f"
B = "0b8e4f6a-1c2d-4e3f-9a5b-6c7d8e9f0a1b"
CHANGED = {"schema": 1, "account_id": A, "contact_ids": [B], "changed_at": "2024-05-01T10:00:00Z"}
SEGMENT = {"schema": 1, "account_id": A, "segment_id": B, "generation": 1}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    body.update(changes)
    return body


def _without(base: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k != key}


VALID: list[tuple[type[_Message], Any]] = [
    (ContactChanged, CHANGED),
    (ContactChanged, _with(CHANGED, contact_ids=[A] * 1000)),
    (ContactChanged, _with(CHANGED, contact_ids=[A, B, A])),
    (ContactChanged, _with(CHANGED, changed_at="2024-05-01T12:00:00.123456+02:00")),
    (ContactChanged, _with(CHANGED, changed_at="2024-05-01T10:00:00-05:30")),
    (ContactChanged, _with(CHANGED, account_id=A.upper())),
    (SegmentMessage, SEGMENT),
    (SegmentMessage, _with(SEGMENT, generation=2**31)),
]

INVALID: list[tuple[type[_Message], Any]] = [
    (ContactChanged, _with(CHANGED, schema=2)),
    (ContactChanged, _with(CHANGED, schema="1")),
    (ContactChanged, _without(CHANGED, "schema")),
    (ContactChanged, _without(CHANGED, "changed_at")),
    (ContactChanged, _with(CHANGED, contact_ids=[])),
    (ContactChanged, _with(CHANGED, contact_ids=[A] * 1001)),
    (ContactChanged, _with(CHANGED, contact_ids=["not-a-uuid"])),
    (ContactChanged, _with(CHANGED, contact_ids=A)),
    (ContactChanged, _with(CHANGED, account_id="acme")),
    (ContactChanged, _with(CHANGED, account_id=None)),
    (ContactChanged, _with(CHANGED, changed_at="2024-05-01T10:00:00")),  # no offset
    (ContactChanged, _with(CHANGED, changed_at="2024-05-01")),
    (ContactChanged, _with(CHANGED, changed_at="yesterday")),
    (ContactChanged, _with(CHANGED, extra="typo")),
    (ContactChanged, _with(CHANGED, contactIds=[B])),
    (ContactChanged, SEGMENT),
    (ContactChanged, [CHANGED]),
    (ContactChanged, "contact.changed"),
    (SegmentMessage, _with(SEGMENT, generation=0)),
    (SegmentMessage, _with(SEGMENT, generation=-1)),
    (SegmentMessage, _with(SEGMENT, generation=1.5)),
    (SegmentMessage, _with(SEGMENT, generation=None)),
    (SegmentMessage, _without(SEGMENT, "segment_id")),
    (SegmentMessage, _with(SEGMENT, segment_id="42")),
    (SegmentMessage, _with(SEGMENT, schema=0)),
    (SegmentMessage, _with(SEGMENT, contact_ids=[A])),
    (SegmentMessage, CHANGED),
]


def _validator(model: type[_Message]) -> jsonschema.Draft202012Validator:
    (doc,) = [d for d in MESSAGES if d.model is model]
    schema = json.loads((SCHEMA_DIR / doc.file_name).read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _decodes(model: type[_Message], body: Any) -> bool:
    try:
        decode(model, json.dumps(body).encode())
    except BadMessage:
        return False
    return True


# --- JSON Schemas ------------------------------------------------------------------------------


def test_committed_schemas_are_what_the_script_generates() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(schemas())
    for name, schema in schemas().items():
        assert (SCHEMA_DIR / name).read_text() == render(schema), (
            f"docs/schemas/{name} is stale: run `python -m worker.schemas`"
        )


def test_the_schema_script_checks_the_committed_files() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker.schemas", "--check"], cwd=ROOT, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()


def test_schemas_are_valid_draft_2020_12_with_formats_checked() -> None:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    # Without these checkers jsonschema would silently accept any string for the formats.
    assert {"uuid", "date-time"} <= set(checker.checkers)
    for schema in schemas().values():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False
        assert schema["properties"]["schema"]["const"] == 1
        assert all(spec.get("description") for spec in schema["properties"].values())


def test_contact_changed_schema_states_the_limits() -> None:
    properties = schemas()["contact-changed.schema.json"]["properties"]
    assert properties["contact_ids"]["minItems"] == 1
    assert properties["contact_ids"]["maxItems"] == 1000
    assert properties["contact_ids"]["items"] == {"type": "string", "format": "uuid"}
    assert properties["changed_at"]["format"] == "date-time"


@pytest.mark.parametrize("doc", MESSAGES, ids=lambda d: d.file_name)
def test_schema_examples_are_valid_messages(doc: Any) -> None:
    validator = _validator(doc.model)
    for example in schemas()[doc.file_name]["examples"]:
        validator.validate(example)
        assert _decodes(doc.model, example)


@pytest.mark.parametrize(("model", "body"), VALID)
def test_valid_bodies_pass_the_schema_and_the_decoder(model: type[_Message], body: Any) -> None:
    errors = [e.message for e in _validator(model).iter_errors(body)]
    assert errors == []
    assert _decodes(model, body)


@pytest.mark.parametrize(("model", "body"), INVALID)
def test_invalid_bodies_fail_the_schema_and_the_decoder(model: type[_Message], body: Any) -> None:
    assert not _validator(model).is_valid(body)
    assert not _decodes(model, body)


# --- Configuration table -------------------------------------------------------------------


def test_readme_has_the_generated_configuration_table() -> None:
    assert markdown_table() in README.read_text(), (
        "README's configuration table is stale: paste `python -m worker.settings --markdown`"
    )


def test_the_table_names_every_setting() -> None:
    table = markdown_table()
    for name in Settings.model_fields:
        assert f"| `SEGMENTS_{name.upper()}` |" in table
    for variable in OTHER_VARIABLES:
        assert f"| `{variable}` |" in table


def test_settings_script_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker.settings", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == markdown_table()


def test_readme_mentions_no_unknown_variable() -> None:
    known = {f"SEGMENTS_{name.upper()}" for name in Settings.model_fields}
    known |= set(OTHER_VARIABLES) | TEST_VARIABLES
    mentioned = set(re.findall(r"\bSEGMENTS_[A-Z0-9_]*[A-Z0-9]\b", README.read_text()))
    assert mentioned - known == set()


# --- Producer example ----------------------------------------------------------------------


def _example_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("produce_contact_changed", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_bodies_match_the_schema_in_chunks_of_1000() -> None:
    account = uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(2500)]
    bodies = _example_module().bodies(account, ids, datetime.now(UTC))
    assert [len(json.loads(b)["contact_ids"]) for b in bodies] == [1000, 1000, 500]
    validator = _validator(ContactChanged)
    seen = []
    for body in bodies:
        validator.validate(json.loads(body))
        seen += decode(ContactChanged, body).contact_ids
    assert seen == ids


async def _run_example(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


IN_DE = {
    "any": [{"all": [{"kind": "field", "field": "country", "operator": "equals", "value": "DE"}]}]
}


async def test_producer_example_moves_contacts_between_segments(
    conn: asyncpg.Connection,
    account_id: uuid.UUID,
    database_url: str,
    amqp_url: str,
    tmp_path: Path,
) -> None:
    leaving, joining, staying = await seed_contacts(
        conn, account_id, [{"country": "DE"}, {"country": "FR"}, {"country": "DE"}]
    )
    segment = await save_segment(conn, account_id, IN_DE)
    async with running_worker(worker_settings(database_url, amqp_url)):
        async with publisher(amqp_url) as exchange:
            await publish_segment(exchange, "segment.created", segment)
        await wait_status(conn, segment["id"], "DONE")
        assert await members(conn, segment["id"]) == {leaving, staying}

        await conn.execute("UPDATE contacts SET country = 'FR' WHERE id = $1", leaving)
        await conn.execute("UPDATE contacts SET country = 'DE' WHERE id = $1", joining)
        # Run from elsewhere: the example needs aio-pika only, nothing of this repository.
        code, out, err = await _run_example(
            "--amqp-url", amqp_url, "--account", str(account_id), str(leaving), str(joining),
            cwd=tmp_path,
        )  # fmt: skip
        assert code == 0, err
        report = json.loads(out)
        assert report["published"] == 1 and len(report["message_ids"]) == 1

        async def moved() -> bool:
            return await members(conn, segment["id"]) == {joining, staying}

        await wait_for(moved)
        row = await segment_row(conn, segment["id"])
        assert (row["status"], row["total_count"]) == ("DONE", 2)


async def test_producer_example_fails_clearly_without_a_broker(tmp_path: Path) -> None:
    code, out, err = await _run_example(
        "--amqp-url", "amqp://guest:guest@127.0.0.1:1/", "--account", str(uuid.uuid4()),
        str(uuid.uuid4()), cwd=tmp_path,
    )  # fmt: skip
    assert code == 1 and out == ""
    assert "could not publish contact.changed" in err


async def test_producer_example_refuses_ids_that_are_not_uuids(tmp_path: Path) -> None:
    code, _, err = await _run_example("--account", str(uuid.uuid4()), "42", cwd=tmp_path)
    assert code == 2 and "invalid UUID value" in err
