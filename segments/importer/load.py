"""The SQL of `segments import`. Everything runs inside the caller's ONE transaction, chunk by
chunk: COPY the chunk's valid rows into a session TEMP table (private to the session, no
WAL), reject what only the database can judge, merge the rest into the account's data. The
transaction commits only at the end, so nothing is half-loaded, while PostgreSQL works on one
chunk as Python validates the next.

  import_stage    the current chunk's valid rows, with the line each came from
  import_rejects  (line, reason) of every rejected row of the file
  import_emails   contacts: every email seen so far (a contact may appear once per file)
  import_changed  the contacts the merges changed, for contact.changed

Lookups of contacts, lists and seen emails are correlated or LATERAL ... LIMIT 1 subqueries,
so each row is one index probe whatever the planner thinks of a TEMP table without
statistics against an account's millions of contacts. Every statement on the contract's
tables is scoped to the account.
"""

from __future__ import annotations

import csv
import io
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any
from uuid import UUID

from segments.importer.models import CONTACT_COLUMNS, MASK_BITS, Kind
from worker.db import Conn

STAGING_COLUMNS: Mapping[Kind, tuple[tuple[str, str], ...]] = {
    "contacts": (
        ("line", "int"),
        ("mask", "int"),  # which columns the row sets (models.MASK_BITS)
        ("email", "text"),
        ("name", "text"),
        ("first_name", "text"),
        ("last_name", "text"),
        ("company", "text"),
        ("status", "text"),
        ("country", "text"),
        ("city", "text"),
        ("language", "text"),
        ("tags", "text[]"),
        ("isp_id", "int"),
        ("attributes", "text"),  # JSON text, cast where it is merged
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ),
    "events": (
        ("line", "int"),
        ("contact_id", "uuid"),
        ("email", "text"),
        ("type", "text"),
        ("campaign_id", "uuid"),
        ("occurred_at", "timestamptz"),
    ),
    "members": (
        ("line", "int"),
        ("list_id", "uuid"),
        ("contact_id", "uuid"),
        ("email", "text"),
        ("is_add", "boolean"),
    ),
}

_TEMP_TABLES = ("import_stage", "import_rejects", "import_emails", "import_changed")


async def create_staging(conn: Conn, kind: Kind) -> None:
    await drop_staging(conn)
    columns = ", ".join(f"{name} {type_}" for name, type_ in STAGING_COLUMNS[kind])
    await conn.execute(f"CREATE TEMP TABLE import_stage ({columns})")
    await conn.execute("CREATE TEMP TABLE import_rejects (line int NOT NULL, reason text NOT NULL)")
    # "C": byte order is enough to find repeats, and cheaper than the database's collation.
    await conn.execute(
        'CREATE TEMP TABLE import_emails (email text COLLATE "C" PRIMARY KEY, line int NOT NULL)'
    )
    await conn.execute("CREATE TEMP TABLE import_changed (contact_id uuid NOT NULL)")


async def drop_staging(conn: Conn) -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {', '.join(_TEMP_TABLES)}")


def encode_chunk(kind: Kind, records: Sequence[tuple[Any, ...]]) -> bytes:
    """Staging records as COPY's CSV format, ready to send. Pure CPU work, so the thread that
    validates does it too, leaving the event loop free to talk to PostgreSQL.

    csv writes None as an empty unquoted cell, which COPY reads as NULL; no staged text is ever
    '' (models turn empty values into None), so nothing is lost. Other values go through
    str(), which PostgreSQL parses back: UUIDs, ints, True/False, datetimes with an offset.
    Lists become array literals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    arrays = _ARRAY_COLUMNS[kind]
    if not arrays:
        writer.writerows(records)
    else:
        for record in records:
            row = list(record)
            for i in arrays:
                if row[i] is not None:
                    row[i] = _array_literal(row[i])
            writer.writerow(row)
    return out.getvalue().encode()


_ARRAY_COLUMNS: Mapping[Kind, tuple[int, ...]] = {
    kind: tuple(i for i, (_, type_) in enumerate(columns) if type_.endswith("[]"))
    for kind, columns in STAGING_COLUMNS.items()
}


def _array_literal(items: Sequence[str]) -> str:
    quoted = (item.replace("\\", "\\\\").replace('"', '\\"') for item in items)
    return "{" + ",".join(f'"{item}"' for item in quoted) + "}"


async def stage(conn: Conn, kind: Kind, payload: bytes, rejects: Sequence[tuple[int, str]]) -> None:
    """Replace the staged chunk with these valid rows (encode_chunk); record the rows
    validation rejected."""
    await conn.execute("TRUNCATE import_stage")
    if payload:

        async def source() -> AsyncIterator[bytes]:
            yield payload

        columns = [name for name, _ in STAGING_COLUMNS[kind]]
        await conn.copy_to_table("import_stage", source=source(), columns=columns, format="csv")
    if rejects:
        await conn.copy_records_to_table(
            "import_rejects", records=rejects, columns=["line", "reason"]
        )


# --- checks that need the database ----------------------------------------------------------

# Each check moves the chunk's rows it rejects from import_stage to import_rejects.
_REJECT = """
WITH rejected AS (
    DELETE FROM import_stage AS s USING ({problems}) AS p
    WHERE s.line = p.line
    RETURNING p.line, p.reason
)
INSERT INTO import_rejects (line, reason) SELECT line, reason FROM rejected"""

# Contacts: an email already seen, in this chunk or an earlier one. (The probe of
# import_emails is a correlated subquery: one index lookup per row, whatever the plan.)
_SEEN_EMAILS = """
SELECT line, 'email: ' || email || ' is also on line ' || first_line AS reason
FROM (SELECT s.line, s.email,
             coalesce((SELECT e.line FROM import_emails AS e WHERE e.email = s.email COLLATE "C"),
                      min(s.line) OVER (PARTITION BY s.email COLLATE "C")) AS first_line
      FROM import_stage AS s) AS seen
WHERE line <> first_line"""

_REMEMBER_EMAILS = "INSERT INTO import_emails (email, line) SELECT email, line FROM import_stage"

# Events, members: rows that name their contact by email alone get its id.
_RESOLVE_EMAILS = """
UPDATE import_stage AS s
SET contact_id = (SELECT c.id FROM contacts AS c
                  WHERE c.account_id = $1 AND c.email = s.email)
WHERE s.contact_id IS NULL"""

_CONTACT = """LEFT JOIN LATERAL (
    SELECT c.id, c.email FROM contacts AS c
    WHERE c.account_id = $1 AND c.id = s.contact_id LIMIT 1) AS c ON true"""

_CONTACT_PROBLEM = """CASE
    WHEN s.contact_id IS NULL
        THEN 'email: no contact with email ' || s.email || ' in this account'
    WHEN c.id IS NULL
        THEN 'contact_id: ' || s.contact_id || ' is not a contact of this account'
    WHEN s.email IS NOT NULL AND c.email <> s.email
        THEN 'email: ' || s.email || ' is not the email of contact ' || s.contact_id
END"""

_EVENT_PROBLEMS = f"""
SELECT line, reason
FROM (SELECT s.line, {_CONTACT_PROBLEM} AS reason
      FROM import_stage AS s
      {_CONTACT}) AS checked
WHERE reason IS NOT NULL"""  # noqa: S608 (constant fragments)

_MEMBER_PROBLEMS = f"""
SELECT line, reason
FROM (SELECT s.line,
             CASE WHEN l.id IS NULL
                  THEN 'list_id: ' || s.list_id || ' is not a list of this account'
                  ELSE {_CONTACT_PROBLEM} END AS reason
      FROM import_stage AS s
      {_CONTACT}
      LEFT JOIN LATERAL (
          SELECT l.id FROM contact_lists AS l
          WHERE l.account_id = $1 AND l.id = s.list_id LIMIT 1) AS l ON true) AS checked
WHERE reason IS NOT NULL"""  # noqa: S608 (constant fragments)


async def check(conn: Conn, kind: Kind, account_id: UUID) -> int:
    """Reject the chunk's rows the database refuses: a contact named twice in the file
    (contacts), contacts and lists that are not the account's (events, members). Returns how
    many it rejected."""
    if kind == "contacts":
        status = await conn.execute(_REJECT.format(problems=_SEEN_EMAILS))
        await conn.execute(_REMEMBER_EMAILS)
    else:
        await conn.execute(_RESOLVE_EMAILS, account_id)
        problems = _EVENT_PROBLEMS if kind == "events" else _MEMBER_PROBLEMS
        status = await conn.execute(_REJECT.format(problems=problems), account_id)
    return _row_count(status)


def _row_count(status: str) -> int:
    """The row count of a command status such as "INSERT 0 42"."""
    return int(status.rsplit(" ", 1)[1])


async def rejects(conn: Conn, batch: int = 1000) -> AsyncGenerator[tuple[int, str], None]:
    """Every rejected row, in line order. Inside a transaction."""
    await conn.execute(
        "DECLARE import_rejects_cursor NO SCROLL CURSOR FOR "
        "SELECT line, reason FROM import_rejects ORDER BY line"
    )
    try:
        while rows := await conn.fetch(f"FETCH {int(batch)} FROM import_rejects_cursor"):
            for row in rows:
                yield row["line"], row["reason"]
    finally:
        await conn.execute("CLOSE import_rejects_cursor")


# --- merges ---------------------------------------------------------------------------------

# A new contact gets the contract's defaults for what its row leaves out.
_INSERT_VALUE = {
    "status": "coalesce(s.status, 'subscribed')",
    "tags": "coalesce(s.tags, '{}')",
    "attributes": "coalesce(s.attributes::jsonb, '{}')",
    "created_at": "coalesce(s.created_at, now())",
    "updated_at": "coalesce(s.updated_at, now())",
}
# An existing contact: custom fields merge key by key, like the HTTP API.
_UPDATE_VALUE = {"attributes": "c.attributes || EXCLUDED.attributes"}


def new_id_prefix() -> str:
    """The first 24 hex digits of the ids a merge gives new contacts, in the UUIDv7 layout:
    now in ms, version 7, 12 random bits, the variant, 30 random bits; the row's line number
    makes the last 32 bits. Ids that grow with the file let a bulk load append to the primary
    key index instead of writing all over it (a random id costs a random index page)."""
    value = (
        (int(time.time() * 1000) << 80)
        | (0x7 << 76)
        | (secrets.randbits(12) << 64)
        | (0b10 << 62)
        | (secrets.randbits(30) << 32)
    )
    return f"{value:032x}"[:24]


def contacts_merge_sql(mask: int) -> str:
    """Upsert the staged contacts whose rows set exactly the columns in `mask` ($2); new
    contacts get ids from the prefix $3. An existing contact is updated only if a value it
    would get differs from what it has, so importing the same file twice changes nothing the
    second time. Rows are taken in email order, the order the HTTP API locks contacts in."""
    insert_columns = ", ".join(("id", "account_id", "email", *CONTACT_COLUMNS))
    new_id = "($3 || lpad(to_hex(s.line), 8, '0'))::uuid"
    insert_values = ", ".join(
        (new_id, "$1", "s.email", *(_INSERT_VALUE.get(c, f"s.{c}") for c in CONTACT_COLUMNS))
    )
    sets = [c for c in CONTACT_COLUMNS if mask & MASK_BITS[c]]
    if sets:
        new_values = [_UPDATE_VALUE.get(c, f"EXCLUDED.{c}") for c in sets]
        assignments = [f"{c} = {v}" for c, v in zip(sets, new_values, strict=True)]
        if "updated_at" not in sets:
            assignments.append("updated_at = EXCLUDED.updated_at")
        on_conflict = (
            f"DO UPDATE SET {', '.join(assignments)}\n"
            f"    WHERE ({', '.join(f'c.{c}' for c in sets)})\n"
            f"          IS DISTINCT FROM ({', '.join(new_values)})"
        )
    else:  # the rows name only emails: make sure the contacts exist
        on_conflict = "DO NOTHING"
    return f"""
WITH merged AS (
    INSERT INTO contacts AS c ({insert_columns})
    SELECT {insert_values}
    FROM import_stage AS s
    WHERE s.mask = $2
    ORDER BY s.email
    ON CONFLICT (account_id, email) {on_conflict}
    RETURNING c.id
)
INSERT INTO import_changed (contact_id) SELECT id FROM merged"""  # noqa: S608 (fixed column names)


_EVENTS_MERGE = """
INSERT INTO events (account_id, contact_id, type, campaign_id, occurred_at)
SELECT $1, contact_id, type, campaign_id, occurred_at FROM import_stage"""

_EVENTS_CHANGED = """
INSERT INTO import_changed (contact_id) SELECT DISTINCT contact_id FROM import_stage"""

# A file may add and remove the same membership: its last row for the pair wins (chunks are
# merged in file order). Only memberships that appear or disappear count as changes.
_MEMBERS_MERGE = """
WITH final AS (
    SELECT DISTINCT ON (list_id, contact_id) list_id, contact_id, is_add
    FROM import_stage
    ORDER BY list_id, contact_id, line DESC
), added AS (
    INSERT INTO contact_list_members (list_id, contact_id, account_id)
    SELECT list_id, contact_id, $1 FROM final WHERE is_add
    ON CONFLICT DO NOTHING
    RETURNING contact_id
), removed AS (
    DELETE FROM contact_list_members AS m
    USING final AS f
    WHERE NOT f.is_add AND m.account_id = $1
      AND m.list_id = f.list_id AND m.contact_id = f.contact_id
    RETURNING m.contact_id
)
INSERT INTO import_changed (contact_id)
SELECT contact_id FROM added UNION SELECT contact_id FROM removed"""


async def merge(conn: Conn, kind: Kind, account_id: UUID) -> int:
    """Write the staged chunk into the account's data; returns how many rows it applied. The
    contacts it changed are added to import_changed."""
    loaded: int = await conn.fetchval("SELECT count(*) FROM import_stage")
    if kind == "contacts":
        masks = await conn.fetch("SELECT DISTINCT mask FROM import_stage ORDER BY mask")
        for row in masks:
            sql = contacts_merge_sql(row["mask"])
            await conn.execute(sql, account_id, row["mask"], new_id_prefix())
    elif kind == "events":
        await conn.execute(_EVENTS_MERGE, account_id)
        await conn.execute(_EVENTS_CHANGED)
    else:
        await conn.execute(_MEMBERS_MERGE, account_id)
    return loaded


async def changed_batches(conn: Conn, size: int) -> AsyncGenerator[list[UUID], None]:
    """The changed contacts, each once, `size` at a time. Inside a transaction."""
    await conn.execute(
        "DECLARE import_changed_cursor NO SCROLL CURSOR FOR "
        "SELECT DISTINCT contact_id FROM import_changed"
    )
    try:
        while rows := await conn.fetch(f"FETCH {int(size)} FROM import_changed_cursor"):
            yield [row["contact_id"] for row in rows]
    finally:
        await conn.execute("CLOSE import_changed_cursor")
