"""Reading an account's data from the database into the reference evaluator's plain rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from tests.reference import Contact, Data, Evaluator, Event, Member

_CONTACT_COLUMNS = (
    "id, account_id, email, status, name, first_name, last_name, company, country, city,"
    " language, tags, isp_id, attributes, created_at, updated_at"
)


async def load_data(
    conn: Any, account_id: uuid.UUID, contact_ids: list[uuid.UUID] | None = None
) -> Data:
    """The account's data; with `contact_ids`, only those contacts and their events and
    list memberships (a sample of a large account)."""
    only = "" if contact_ids is None else " AND {column} = ANY($2::uuid[])"
    args = (account_id,) if contact_ids is None else (account_id, contact_ids)
    contacts = [
        Contact(**{**dict(r), "tags": list(r["tags"])})
        for r in await conn.fetch(
            f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE account_id = $1"
            + only.format(column="id"),
            *args,
        )
    ]
    events = [
        Event(**dict(r))
        for r in await conn.fetch(
            "SELECT account_id, contact_id, type, campaign_id, occurred_at FROM events"
            " WHERE account_id = $1" + only.format(column="contact_id"),
            *args,
        )
    ]
    members = [
        Member(**dict(r))
        for r in await conn.fetch(
            "SELECT list_id, contact_id, account_id FROM contact_list_members"
            " WHERE account_id = $1" + only.format(column="contact_id"),
            *args,
        )
    ]
    fields = {
        r["key"]: r["data_type"]
        for r in await conn.fetch(
            "SELECT key, data_type FROM contact_fields WHERE account_id = $1", account_id
        )
    }
    return Data(contacts, events, members, fields)


async def reference_members(
    conn: Any,
    account_id: uuid.UUID,
    dialect: str,
    rules: Any,
    list_ids: list[uuid.UUID] | None = None,
) -> set[uuid.UUID]:
    """The contacts the rules match on the account's data as it is now."""
    data = await load_data(conn, account_id)
    return Evaluator(data, account_id, datetime.now(UTC)).members(dialect, rules, list_ids or [])
