"""Finding contacts: by id or by email, and which segments a contact is in. Shared by the
API (api_shim.contact_lookup, the `email` of event and list-member writes) and the
`segments contact` command."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from worker.db import Conn

CONTACT_COLUMNS = """id, email, name, first_name, last_name, company, status, country, city,
    language, tags, isp_id, attributes, created_at, updated_at"""


def normal_email(email: str) -> str:
    """The form contacts are stored and looked up by (as the API and `segments import`)."""
    return email.strip().lower()


def as_contact_id(ref: str) -> UUID | None:
    """`ref` read as a contact id, or None when it is not one (then it is an email)."""
    try:
        return UUID(ref)
    except ValueError:
        return None


async def ids_by_email(conn: Conn, account_id: UUID, emails: Sequence[str]) -> dict[str, UUID]:
    """email (normalised) -> contact id, for those of `emails` the account has."""
    rows = await conn.fetch(
        "SELECT email, id FROM contacts WHERE account_id = $1 AND email = ANY($2::text[])",
        account_id,
        list({normal_email(e) for e in emails}),
    )
    return {r["email"]: r["id"] for r in rows}


async def find_contact(conn: Conn, account_id: UUID, ref: str) -> asyncpg.Record | None:
    """The contact of this account with this id or (any case) email."""
    contact_id = as_contact_id(ref)
    if contact_id is not None:
        return await conn.fetchrow(
            f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = $1 AND account_id = $2",  # noqa: S608
            contact_id,
            account_id,
        )
    return await conn.fetchrow(
        f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 AND email = $2",  # noqa: S608
        account_id,
        normal_email(ref),
    )


async def contact_list_ids(conn: Conn, account_id: UUID, contact_id: UUID) -> list[UUID]:
    rows = await conn.fetch(
        """SELECT list_id FROM contact_list_members
           WHERE contact_id = $1 AND account_id = $2 ORDER BY list_id""",
        contact_id,
        account_id,
    )
    return [r["list_id"] for r in rows]


async def segments_of_contact(
    conn: Conn, account_id: UUID, contact_id: UUID
) -> list[asyncpg.Record]:
    """The DONE segments whose built membership holds the contact, by name. A segment not
    DONE has no current membership to ask (PENDING, RUNNING for the first time, FAILED).
    Served by segment_members_contact_idx (contact_id, segment_id)."""
    return await conn.fetch(
        """SELECT s.id, s.number, s.name, m.added_at
           FROM segment_members m
           JOIN segments s ON s.id = m.segment_id
           WHERE m.contact_id = $1 AND m.account_id = $2 AND s.account_id = $2
             AND s.status = 'DONE'
           ORDER BY s.name, s.id""",
        contact_id,
        account_id,
    )


async def resolve_refs(
    conn: Conn, account_id: UUID, refs: Sequence[str]
) -> tuple[list[UUID], list[str]]:
    """Contact ids for refs that are ids or emails: (the ids found, in order; the refs that
    name no contact of the account)."""
    emails = [r for r in refs if as_contact_id(r) is None]
    by_email = await ids_by_email(conn, account_id, emails) if emails else {}
    given = [i for i in map(as_contact_id, refs) if i is not None]
    rows = await conn.fetch(
        "SELECT id FROM contacts WHERE account_id = $1 AND id = ANY($2::uuid[])",
        account_id,
        given,
    )
    known = {r["id"] for r in rows}
    found: list[UUID] = []
    unknown: list[str] = []
    for ref in refs:
        contact_id = as_contact_id(ref)
        resolved = by_email.get(normal_email(ref)) if contact_id is None else contact_id
        if resolved is None or resolved not in known | set(by_email.values()):
            unknown.append(ref)
        else:
            found.append(resolved)
    return found, unknown
