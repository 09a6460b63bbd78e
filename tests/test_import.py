"""`segments import` against the real PostgreSQL: what lands in the tables, what is rejected
(with line numbers, and then nothing is loaded), and the contact.changed outbox rows written in
the same transaction. The last tests run the command itself in a subprocess."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segments.importer import ImportOptions, ImportSummary, InputError, run_import
from segments.importer.models import Kind, read_datetime
from worker.rules.values import _ISO_DATETIME, parse_iso_datetime

REPO = Path(__file__).resolve().parent.parent


# --- helpers --------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def ndjson(*rows: dict[str, Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


async def load(
    conn: asyncpg.Connection,
    account_id: uuid.UUID,
    kind: Kind,
    path: Path | str,
    report: io.StringIO | None = None,
    stdin: io.BytesIO | None = None,
    **options: Any,
) -> ImportSummary:
    opts = ImportOptions(kind=kind, path=str(path), account_id=account_id, **options)
    return await run_import(conn, opts, report=report, stdin=stdin)


async def contacts(conn: asyncpg.Connection, account_id: uuid.UUID) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch("SELECT * FROM contacts WHERE account_id = $1", account_id)
    return {r["email"]: r for r in rows}


async def add_contacts(
    conn: asyncpg.Connection, account_id: uuid.UUID, *emails: str
) -> dict[str, uuid.UUID]:
    rows = await conn.fetch(
        """INSERT INTO contacts (account_id, email, status)
           SELECT $1, e, 'subscribed' FROM unnest($2::text[]) AS e RETURNING email, id""",
        account_id,
        list(emails),
    )
    return {r["email"]: r["id"] for r in rows}


async def add_list(conn: asyncpg.Connection, account_id: uuid.UUID, name: str = "l") -> uuid.UUID:
    list_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO contact_lists (account_id, name) VALUES ($1, $2) RETURNING id",
        account_id,
        name,
    )
    return list_id


async def other_account(conn: asyncpg.Connection) -> uuid.UUID:
    other: uuid.UUID = await conn.fetchval(
        "INSERT INTO accounts (name) VALUES ('other') RETURNING id"
    )
    return other


async def messages(conn: asyncpg.Connection, account_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT body FROM outbox
           WHERE routing_key = 'contact.changed' AND body->>'account_id' = $1 ORDER BY id""",
        str(account_id),
    )
    return [r["body"] for r in rows]


async def changed_ids(conn: asyncpg.Connection, account_id: uuid.UUID) -> set[uuid.UUID]:
    return {uuid.UUID(i) for body in await messages(conn, account_id) for i in body["contact_ids"]}


# --- values ---------------------------------------------------------------------------------


@given(st.from_regex(_ISO_DATETIME, fullmatch=True) | st.text(max_size=40))
def test_datetimes_read_as_the_rule_language_reads_them(text: str) -> None:
    # The import's fast path must give the one dialect's answer (worker.rules.values).
    assert read_datetime(text) == parse_iso_datetime(text)


# --- contacts -------------------------------------------------------------------------------


async def test_contacts_from_csv_land_with_typed_columns_and_nulls_for_empty_cells(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    await conn.execute(
        """INSERT INTO contact_fields (account_id, key, data_type)
           VALUES ($1, 'score', 'number'), ($1, 'vip', 'boolean'), ($1, 'hobbies', 'list'),
                  ($1, 'note', 'text')""",
        account_id,
    )
    path = write(
        tmp_path,
        "contacts.csv",
        "email,name,company,status,tags,isp_id,attr.score,attr.vip,attr.hobbies,attr.note,"
        "attributes,created_at\n"
        ' Ann@Example.COM ,Ann,,pending,VIP| new ;x,3,42,yes,chess;go,hi,"{""plan"": ""pro""}",'
        "2024-05-01T10:00:00\n"
        "bob@example.com,,,,,,,,,,,\n",
    )
    summary = await load(conn, account_id, "contacts", path)

    assert (summary.read, summary.loaded, summary.rejected) == (2, 2, 0)
    rows = await contacts(conn, account_id)
    ann, bob = rows["ann@example.com"], rows["bob@example.com"]
    assert ann["name"] == "Ann" and ann["company"] is None and ann["status"] == "pending"
    assert ann["tags"] == ["VIP", "new", "x"]
    assert ann["isp_id"] == 3
    assert ann["attributes"] == {
        "score": 42,
        "vip": True,
        "hobbies": ["chess", "go"],
        "note": "hi",
        "plan": "pro",
    }
    assert ann["created_at"] == datetime(2024, 5, 1, 10, tzinfo=UTC)  # no offset: UTC
    assert bob["status"] == "subscribed"  # the default
    assert bob["tags"] == [] and bob["attributes"] == {}
    for column in ("name", "first_name", "company", "country", "city", "language", "isp_id"):
        assert bob[column] is None, column  # never ''


async def test_contacts_from_ndjson(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "contacts.ndjson",
        ndjson(
            {"email": "a@example.com", "city": "", "tags": ["a", "b"], "attributes": {"n": 1}},
            {"email": "b@example.com", "status": "bounced", "updated_at": "2024-01-02"},
        ),
    )
    summary = await load(conn, account_id, "contacts", path)

    assert (summary.read, summary.loaded, summary.rejected) == (2, 2, 0)
    rows = await contacts(conn, account_id)
    assert rows["a@example.com"]["city"] is None
    assert rows["a@example.com"]["tags"] == ["a", "b"]
    assert rows["a@example.com"]["attributes"] == {"n": 1}
    assert rows["b@example.com"]["status"] == "bounced"
    assert rows["b@example.com"]["updated_at"] == datetime(2024, 1, 2, tzinfo=UTC)


async def test_any_text_arrives_exactly_as_written(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    # Staged rows travel as COPY CSV: quoting, escapes and NULL must not change any value.
    awkward = [
        "a,b",
        'say "hi"',
        "back\\slash \\N",
        "tab\there",
        "new\nline\r\n",
        "{x}",
        " ",
        "NULL",
        "\\.",
        "x\n\\.\ny",  # a line of its own that reads \. (COPY's end-of-data marker)
    ]
    rows = [
        {
            "email": f"t{i}@example.com",
            "name": text,
            "tags": [text, "ü" + text],
            "attributes": {"k": text},
        }
        for i, text in enumerate(awkward)
    ]
    summary = await load(conn, account_id, "contacts", write(tmp_path, "t.ndjson", ndjson(*rows)))

    assert summary.loaded == len(awkward)
    stored = await contacts(conn, account_id)
    for i, text in enumerate(awkward):
        contact = stored[f"t{i}@example.com"]
        assert contact["name"] == text
        assert contact["tags"] == [text, "ü" + text]
        assert contact["attributes"] == {"k": text}


async def test_upsert_updates_the_contact_with_that_email_and_keeps_what_the_file_lacks(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    contact_id = await conn.fetchval(
        """INSERT INTO contacts (account_id, email, name, status, tags, attributes)
           VALUES ($1, 'ann@example.com', 'Ann', 'unsubscribed', '{old}', '{"a": 1, "b": 1}')
           RETURNING id""",
        account_id,
    )
    await conn.execute(
        "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, 'b', 'text')",
        account_id,
    )
    path = write(
        tmp_path,
        "update.csv",
        "email,company,status,attr.b\n  ANN@example.com,Acme,,2\nnew@example.com,New,,\n",
    )
    summary = await load(conn, account_id, "contacts", path)

    assert (summary.loaded, summary.contacts_changed, summary.messages) == (2, 2, 1)
    rows = await contacts(conn, account_id)
    ann = rows["ann@example.com"]
    assert ann["id"] == contact_id
    assert ann["company"] == "Acme"
    assert ann["name"] == "Ann"  # no name column: kept
    assert ann["status"] == "unsubscribed"  # an empty status cell never resubscribes
    assert ann["tags"] == ["old"]
    assert ann["attributes"] == {"a": 1, "b": "2"}  # merged key by key
    assert rows["new@example.com"]["status"] == "subscribed"
    assert await changed_ids(conn, account_id) == {contact_id, rows["new@example.com"]["id"]}


async def test_ndjson_key_set_to_null_clears_it_and_a_missing_key_keeps_it(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    await conn.execute(
        """INSERT INTO contacts (account_id, email, name, company, status, tags)
           VALUES ($1, 'a@example.com', 'Ann', 'Acme', 'subscribed', '{x}')""",
        account_id,
    )
    path = write(
        tmp_path, "c.ndjson", ndjson({"email": "a@example.com", "company": None, "tags": None})
    )
    await load(conn, account_id, "contacts", path)

    ann = (await contacts(conn, account_id))["a@example.com"]
    assert (ann["name"], ann["company"], ann["tags"]) == ("Ann", None, [])


async def test_importing_the_same_file_twice_changes_nothing_the_second_time(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    path = write(tmp_path, "c.csv", "email,name,tags\na@example.com,A,x|y\nb@example.com,B,\n")
    first = await load(conn, account_id, "contacts", path)
    second = await load(conn, account_id, "contacts", path)

    assert (first.contacts_changed, first.messages) == (2, 1)
    assert (second.loaded, second.contacts_changed, second.messages) == (2, 0, 0)
    assert len(await messages(conn, account_id)) == 1


# --- rejected rows --------------------------------------------------------------------------

BAD_CONTACTS = (
    "email,name,status,isp_id\n"  # line 1
    "ok@example.com,Ok,,\n"  # line 2
    "not-an-email,X,,\n"  # line 3
    'multi@example.com,"two\nlines",,\n'  # lines 4-5
    "c@example.com,C,gone,\n"  # line 6
    "d@example.com,D,,many\n"  # line 7
    "OK@example.com,Again,,\n"  # line 8: the same contact as line 2
    "short@example.com\n"  # line 9
)


@pytest.mark.parametrize("chunk_rows", [1, 3, 20_000])
async def test_rejected_rows_are_reported_with_line_numbers_and_nothing_is_loaded(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path, chunk_rows: int
) -> None:
    # With small chunks the first rows are merged before a rejected row is seen: the one
    # transaction is rolled back all the same.
    path = write(tmp_path, "bad.csv", BAD_CONTACTS)
    report = io.StringIO()
    rejects = tmp_path / "rejects.ndjson"
    summary = await load(
        conn, account_id, "contacts", path, report, rejects_path=rejects, chunk_rows=chunk_rows
    )

    assert (summary.read, summary.loaded, summary.rejected) == (7, 0, 5)
    assert (summary.contacts_changed, summary.messages) == (0, 0)
    assert await contacts(conn, account_id) == {}
    assert await messages(conn, account_id) == []
    lines = report.getvalue().splitlines()
    assert lines == [
        "line 3: email: is not an email address",
        "line 6: status: Input should be 'subscribed', 'unsubscribed', 'bounced', "
        "'complained' or 'pending'",
        "line 7: isp_id: Input should be a valid integer, unable to parse string as an integer",
        "line 8: email: ok@example.com is also on line 2",
        "line 9: has 1 cells, the header has 4",
    ]
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in written] == [3, 6, 7, 8, 9]
    assert written[0]["reason"] == "email: is not an email address"


@pytest.mark.parametrize("chunk_rows", [1, 20_000])
async def test_skip_invalid_loads_the_valid_rows(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path, chunk_rows: int
) -> None:
    path = write(tmp_path, "bad.csv", BAD_CONTACTS)
    summary = await load(
        conn, account_id, "contacts", path, skip_invalid=True, chunk_rows=chunk_rows
    )

    assert (summary.read, summary.loaded, summary.rejected) == (7, 2, 5)
    rows = await contacts(conn, account_id)
    assert set(rows) == {"ok@example.com", "multi@example.com"}
    assert rows["ok@example.com"]["name"] == "Ok"  # the first of the two rows
    assert rows["multi@example.com"]["name"] == "two\nlines"
    assert await changed_ids(conn, account_id) == {r["id"] for r in rows.values()}


async def test_only_the_first_rejects_are_printed_but_all_are_counted_and_written(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    path = write(tmp_path, "bad.csv", "email\n" + "nope\n" * 30)
    report = io.StringIO()
    rejects = tmp_path / "rejects.ndjson"
    summary = await load(
        conn, account_id, "contacts", path, report, show_rejects=3, rejects_path=rejects
    )

    assert summary.rejected == 30
    lines = report.getvalue().splitlines()
    assert lines[:3] == [f"line {n}: email: is not an email address" for n in (2, 3, 4)]
    assert lines[3] == f"... and 27 more rejected rows (all of them are in {rejects})"
    assert len(rejects.read_text().splitlines()) == 30


async def test_rows_that_are_not_json_objects_or_not_storable_text_are_rejected(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    path = tmp_path / "c.ndjson"
    path.write_bytes(
        b'{"email": "a@example.com"}\n'
        b"{nope\n"
        b"\n"  # blank lines are skipped
        b"[1, 2]\n"
        b'{"email": "b@example.com", "name": "\\u0000"}\n'
        b'{"email": "c@example.com", "name": "\xff"}\n'
        b'{"email": "d@example.com", "colour": "red"}\n'
    )
    report = io.StringIO()
    summary = await load(conn, account_id, "contacts", path, report)

    assert (summary.read, summary.rejected) == (6, 5)
    assert [line.split(":")[0] for line in report.getvalue().splitlines()] == [
        "line 2",
        "line 4",
        "line 5",
        "line 6",
        "line 7",
    ]
    assert "must be a JSON object" in report.getvalue()
    assert "NUL" in report.getvalue() and "not valid UTF-8" in report.getvalue()
    assert "colour: Extra inputs are not permitted" in report.getvalue()


async def test_a_file_that_cannot_be_imported_is_refused_before_anything_happens(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    cases: list[tuple[Kind, str, str]] = [
        ("contacts", "email,colour\n", "unknown columns ['colour']"),
        ("contacts", "name\n", "need an email column"),
        ("events", "email,type\n", "need type and occurred_at columns"),
        ("members", "email\n", "need a list_id column, or pass --list"),
        ("contacts", "", "the file is empty"),
    ]
    for kind, text, message in cases:
        with pytest.raises(InputError, match=re.escape(message)):
            await load(conn, account_id, kind, write(tmp_path, "x.csv", text))
    with pytest.raises(InputError, match="cannot tell the format"):
        await load(conn, account_id, "contacts", write(tmp_path, "x.txt", "email\n"))
    with pytest.raises(InputError, match="cannot read"):
        await load(conn, account_id, "contacts", tmp_path / "missing.csv")
    with pytest.raises(InputError, match="there is no account"):
        await load(conn, uuid.uuid4(), "contacts", write(tmp_path, "x.csv", "email\n"))


# --- events ---------------------------------------------------------------------------------


async def test_events_from_csv_by_email_or_contact_id(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    ids = await add_contacts(conn, account_id, "a@example.com", "b@example.com")
    campaign = uuid.uuid4()
    path = write(
        tmp_path,
        "events.csv",
        "contact_id,email,type,campaign_id,occurred_at\n"
        f",A@example.com,open,{campaign},2024-03-01T12:00:00+02:00\n"
        f"{ids['b@example.com']},,click,,2024-03-02\n"
        f"{ids['b@example.com']},b@example.com,delivered,,2024-03-03T00:00:00Z\n",
    )
    summary = await load(conn, account_id, "events", path)

    assert (summary.read, summary.loaded, summary.rejected) == (3, 3, 0)
    assert (summary.contacts_changed, summary.messages) == (2, 1)
    rows = await conn.fetch(
        "SELECT contact_id, type, campaign_id, occurred_at FROM events WHERE account_id = $1 "
        "ORDER BY occurred_at",
        account_id,
    )
    assert [tuple(r) for r in rows] == [
        (ids["a@example.com"], "open", campaign, datetime(2024, 3, 1, 10, tzinfo=UTC)),
        (ids["b@example.com"], "click", None, datetime(2024, 3, 2, tzinfo=UTC)),
        (ids["b@example.com"], "delivered", None, datetime(2024, 3, 3, tzinfo=UTC)),
    ]
    assert await changed_ids(conn, account_id) == set(ids.values())


async def test_events_from_ndjson(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    ids = await add_contacts(conn, account_id, "a@example.com")
    path = write(
        tmp_path,
        "events.jsonl",
        ndjson(
            {"email": "a@example.com", "type": "bounce", "occurred_at": "2024-01-01T00:00:00Z"},
            {"contact_id": str(ids["a@example.com"]), "type": "open", "occurred_at": "2024-01-02"},
        ),
    )
    summary = await load(conn, account_id, "events", path)

    assert (summary.loaded, summary.contacts_changed, summary.messages) == (2, 1, 1)
    count = await conn.fetchval("SELECT count(*) FROM events WHERE account_id = $1", account_id)
    assert count == 2


async def test_events_of_contacts_that_are_not_the_accounts_are_rejected(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    mine = await add_contacts(conn, account_id, "me@example.com")
    theirs = await add_contacts(conn, await other_account(conn), "them@example.com")
    path = write(
        tmp_path,
        "events.csv",
        "contact_id,email,type,occurred_at\n"
        f"{mine['me@example.com']},,open,2024-01-01\n"
        f"{theirs['them@example.com']},,open,2024-01-01\n"
        ",them@example.com,open,2024-01-01\n"
        f"{mine['me@example.com']},them@example.com,open,2024-01-01\n"
        ",me@example.com,opened,2024-01-01\n"
        ",me@example.com,open,\n",
    )
    report = io.StringIO()
    summary = await load(conn, account_id, "events", path, report)

    assert (summary.loaded, summary.rejected) == (0, 5)
    assert report.getvalue().splitlines() == [
        f"line 3: contact_id: {theirs['them@example.com']} is not a contact of this account",
        "line 4: email: no contact with email them@example.com in this account",
        f"line 5: email: them@example.com is not the email of contact {mine['me@example.com']}",
        "line 6: type: Input should be 'open', 'click', 'bounce', 'complaint', 'delivered' or "
        "'unsubscribe'",
        "line 7: occurred_at: is required",
    ]
    assert await conn.fetchval("SELECT count(*) FROM events WHERE account_id = $1", account_id) == 0
    assert await messages(conn, account_id) == []


# --- members --------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [2, 20_000])
async def test_members_from_csv_are_added_and_removed_and_only_real_changes_are_published(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path, chunk_rows: int
) -> None:
    ids = await add_contacts(conn, account_id, "a@x.io", "b@x.io", "c@x.io", "d@x.io")
    list_id = await add_list(conn, account_id)
    await conn.execute(
        """INSERT INTO contact_list_members (list_id, contact_id, account_id)
           VALUES ($1, $2, $4), ($1, $3, $4)""",
        list_id,
        ids["b@x.io"],
        ids["c@x.io"],
        account_id,
    )
    path = write(
        tmp_path,
        "members.csv",
        "list_id,email,action\n"
        f"{list_id},a@x.io,\n"  # added
        f"{list_id},b@x.io,add\n"  # already a member: no change
        f"{list_id},c@x.io,remove\n"  # removed
        f"{list_id},d@x.io,add\n"
        f"{list_id},d@x.io,remove\n",  # the last row for a membership wins: never added
    )
    summary = await load(conn, account_id, "members", path, chunk_rows=chunk_rows)

    assert (summary.read, summary.loaded, summary.rejected) == (5, 5, 0)
    members = await conn.fetch(
        "SELECT contact_id FROM contact_list_members WHERE list_id = $1", list_id
    )
    assert {r["contact_id"] for r in members} == {ids["a@x.io"], ids["b@x.io"]}
    changed = await changed_ids(conn, account_id)
    assert summary.contacts_changed == len(changed)
    # d was added and removed again: published only if the two rows were merged apart.
    assert (
        {ids["a@x.io"], ids["c@x.io"]} <= changed <= {ids["a@x.io"], ids["c@x.io"], ids["d@x.io"]}
    )
    if chunk_rows > 5:
        assert ids["d@x.io"] not in changed


async def test_members_from_ndjson_use_the_list_option_for_rows_without_list_id(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    ids = await add_contacts(conn, account_id, "a@x.io", "b@x.io")
    default_list, other_list = await add_list(conn, account_id), await add_list(conn, account_id)
    path = write(
        tmp_path,
        "members.ndjson",
        ndjson(
            {"contact_id": str(ids["a@x.io"])},
            {"email": "b@x.io", "list_id": str(other_list), "action": "add"},
        ),
    )
    summary = await load(conn, account_id, "members", path, list_id=default_list)

    assert (summary.loaded, summary.rejected) == (2, 0)
    rows = await conn.fetch(
        "SELECT list_id, contact_id FROM contact_list_members WHERE account_id = $1", account_id
    )
    assert {tuple(r) for r in rows} == {(default_list, ids["a@x.io"]), (other_list, ids["b@x.io"])}


async def test_members_of_another_accounts_list_or_contact_are_rejected(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    other = await other_account(conn)
    mine = await add_contacts(conn, account_id, "me@x.io")
    theirs = await add_contacts(conn, other, "them@x.io")
    my_list, their_list = await add_list(conn, account_id), await add_list(conn, other)
    path = write(
        tmp_path,
        "members.csv",
        "list_id,contact_id\n"
        f"{my_list},{mine['me@x.io']}\n"
        f"{their_list},{mine['me@x.io']}\n"
        f"{my_list},{theirs['them@x.io']}\n",
    )
    report = io.StringIO()
    summary = await load(conn, account_id, "members", path, report)

    assert (summary.loaded, summary.rejected) == (0, 2)
    assert report.getvalue().splitlines() == [
        f"line 3: list_id: {their_list} is not a list of this account",
        f"line 4: contact_id: {theirs['them@x.io']} is not a contact of this account",
    ]
    assert (
        await conn.fetchval("SELECT count(*) FROM contact_list_members WHERE list_id = $1", my_list)
        == 0
    )
    with pytest.raises(InputError, match="is not a list of this account"):
        await load(conn, account_id, "members", path, list_id=their_list)


# --- outbox, stdin --------------------------------------------------------------------------


async def test_contact_changed_messages_carry_at_most_1000_ids_each(
    conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    text = "email\n" + "".join(f"c{i}@example.com\n" for i in range(2500))
    summary = await load(
        conn, account_id, "contacts", write(tmp_path, "c.csv", text), chunk_rows=700
    )

    assert (summary.loaded, summary.contacts_changed, summary.messages) == (2500, 2500, 3)
    bodies = await messages(conn, account_id)
    assert sorted(len(b["contact_ids"]) for b in bodies) == [500, 1000, 1000]
    assert all(b["schema"] == 1 and b["account_id"] == str(account_id) for b in bodies)
    ids = {r["id"] for r in (await contacts(conn, account_id)).values()}
    assert len(ids) == 2500 and {i.version for i in ids} == {7}  # time-ordered new ids
    assert await changed_ids(conn, account_id) == ids


async def test_reads_stdin_in_the_format_given(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    stdin = io.BytesIO(ndjson({"email": "a@example.com"}).encode())
    summary = await load(conn, account_id, "contacts", "-", stdin=stdin, format="ndjson")

    assert summary.loaded == 1
    assert set(await contacts(conn, account_id)) == {"a@example.com"}
    with pytest.raises(InputError, match="--format"):
        await load(conn, account_id, "contacts", "-", stdin=io.BytesIO(b""))


# --- the command ----------------------------------------------------------------------------


def segments_import(
    database_url: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segments.cli", "import", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"SEGMENTS_DATABASE_URL": database_url, "SEGMENTS_LOG_FORMAT": "json", "PATH": ""},
        timeout=120,
        check=False,
    )


async def test_command_loads_a_file_and_prints_the_summary(
    database_url: str, conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    path = write(tmp_path, "c.csv", "email,name\na@example.com,A\nb@example.com,B\n")
    done = segments_import(database_url, "contacts", str(path), "--account", str(account_id))

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert set(summary) == {
        "kind", "read", "loaded", "rejected", "contacts_changed", "messages", "seconds",
    }  # fmt: skip
    assert summary["kind"] == "contacts"
    assert (summary["read"], summary["loaded"], summary["rejected"]) == (2, 2, 0)
    assert (summary["contacts_changed"], summary["messages"]) == (2, 1)
    assert len(await contacts(conn, account_id)) == 2


async def test_command_exits_1_and_loads_nothing_when_rows_are_rejected(
    database_url: str, conn: asyncpg.Connection, account_id: uuid.UUID, tmp_path: Path
) -> None:
    path = write(tmp_path, "c.csv", "email\na@example.com\nbroken\n")
    done = segments_import(database_url, "contacts", str(path), "--account", str(account_id))

    assert done.returncode == 1
    assert json.loads(done.stdout)["rejected"] == 1
    assert "line 3: email: is not an email address" in done.stderr
    assert "--skip-invalid" in done.stderr
    assert await contacts(conn, account_id) == {}

    skipped = segments_import(
        database_url, "contacts", str(path), "--account", str(account_id), "--skip-invalid"
    )
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["loaded"] == 1


async def test_command_reads_stdin(
    database_url: str, conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    done = segments_import(
        database_url,
        "contacts",
        "-",
        "--format",
        "csv",
        "--account",
        str(account_id),
        stdin="email\nfrom-stdin@example.com\n",
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["loaded"] == 1
    assert set(await contacts(conn, account_id)) == {"from-stdin@example.com"}


def test_command_exits_2_with_what_to_do_when_it_cannot_run(
    database_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "c.csv", "email\na@example.com\n")
    unknown = segments_import(database_url, "contacts", str(path), "--account", str(uuid.uuid4()))
    assert unknown.returncode == 2
    assert "there is no account" in unknown.stderr and "segments account create" in unknown.stderr
    assert unknown.stdout == ""

    nowhere = segments_import(
        "postgresql://postgres@127.0.0.1:1/x", "contacts", str(path), "--account", str(uuid.uuid4())
    )
    assert nowhere.returncode == 2
    assert "cannot connect to PostgreSQL" in nowhere.stderr
    assert "SEGMENTS_DATABASE_URL" in nowhere.stderr

    usage = segments_import(database_url, "contacts", str(path))  # no --account
    assert usage.returncode == 2
    assert "--account" in usage.stderr
