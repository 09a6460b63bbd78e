"""Contact lists: create, rename, delete, and their members, for the API (api_shim.lists,
api_shim.contacts) and the `segments list` command.

Member changes write `contact.changed` to the outbox in the caller's transaction, as every
contact data write does. A list that a segment names (in `contact_list_ids` or in a
membership rule) cannot be deleted: `ListInUse` names those segments, to be changed first.
Were it deleted anyway (the backing API writes these tables too), a missing list has no
members: the segment is empty, not broken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from worker.db import Conn
from worker.outbox import enqueue_contacts_changed

_LIST_COLUMNS = """l.id, l.name, l.created_at,
    (SELECT count(*) FROM contact_list_members m
     WHERE m.list_id = l.id AND m.account_id = l.account_id) AS members_count"""


@dataclass(frozen=True)
class SegmentRef:
    id: UUID
    name: str


class ListInUse(Exception):
    def __init__(self, segments: Sequence[SegmentRef]) -> None:
        names = ", ".join(f"{s.name!r} ({s.id})" for s in segments)
        super().__init__(f"the list is used by segments {names}: remove it from them first")
        self.segments = list(segments)


async def all_lists(conn: Conn, account_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT {_LIST_COLUMNS} FROM contact_lists l
            WHERE l.account_id = $1 ORDER BY l.name, l.id""",  # noqa: S608 (a constant)
        account_id,
    )


async def get_list(conn: Conn, account_id: UUID, list_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {_LIST_COLUMNS} FROM contact_lists l
            WHERE l.id = $1 AND l.account_id = $2""",  # noqa: S608 (a constant)
        list_id,
        account_id,
    )


async def create_list(conn: Conn, account_id: UUID, name: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        """INSERT INTO contact_lists (account_id, name) VALUES ($1, $2)
           RETURNING id, name, created_at, 0::bigint AS members_count""",
        account_id,
        name,
    )
    assert row is not None
    return row


async def rename_list(
    conn: Conn, account_id: UUID, list_id: UUID, name: str
) -> asyncpg.Record | None:
    renamed = await conn.fetchval(
        "UPDATE contact_lists SET name = $3 WHERE id = $1 AND account_id = $2 RETURNING id",
        list_id,
        account_id,
        name,
    )
    return None if renamed is None else await get_list(conn, account_id, list_id)


async def delete_list(conn: Conn, account_id: UUID, list_id: UUID) -> bool:
    """Delete the list and its memberships (contact.changed for its members); False if the
    account has no such list; ListInUse if a segment names it. Call inside a transaction."""
    found = await conn.fetchval(
        "SELECT 1 FROM contact_lists WHERE id = $1 AND account_id = $2 FOR UPDATE",
        list_id,
        account_id,
    )
    if found is None:
        return False
    users = await segments_using_list(conn, account_id, list_id)
    if users:
        raise ListInUse(users)
    members = await conn.fetch(
        """DELETE FROM contact_list_members WHERE account_id = $1 AND list_id = $2
           RETURNING contact_id""",
        account_id,
        list_id,
    )
    await conn.execute(
        "DELETE FROM contact_lists WHERE account_id = $1 AND id = $2", account_id, list_id
    )
    await enqueue_contacts_changed(conn, account_id, [r["contact_id"] for r in members])
    return True


async def segments_using_list(conn: Conn, account_id: UUID, list_id: UUID) -> list[SegmentRef]:
    """Segments restricted to the list or whose rules name it (a membership condition: the
    id appears in the rules as written, in any case, whichever dialect)."""
    rows = await conn.fetch(
        """SELECT id, name FROM segments
           WHERE account_id = $1
             AND ($2 = ANY(contact_list_ids) OR strpos(lower(rules::text), $2::text) > 0)
           ORDER BY name, id""",
        account_id,
        list_id,
    )
    return [SegmentRef(r["id"], r["name"]) for r in rows]


async def change_members(
    conn: Conn,
    account_id: UUID,
    list_id: UUID,
    add: Sequence[UUID],
    remove: Sequence[UUID],
) -> tuple[list[UUID], list[UUID]]:
    """Add and remove contacts (ids of the account, checked by the caller); returns those
    that joined and those that left; contact.changed for them. Call inside a transaction."""
    added = await conn.fetch(
        """INSERT INTO contact_list_members (list_id, contact_id, account_id)
           SELECT $1, contact_id, $3 FROM unnest($2::uuid[]) AS u(contact_id)
           ON CONFLICT DO NOTHING
           RETURNING contact_id""",
        list_id,
        list(add),
        account_id,
    )
    removed = await conn.fetch(
        """DELETE FROM contact_list_members
           WHERE list_id = $1 AND account_id = $2 AND contact_id = ANY($3::uuid[])
           RETURNING contact_id""",
        list_id,
        account_id,
        list(remove),
    )
    joined = [r["contact_id"] for r in added]
    left = [r["contact_id"] for r in removed]
    if joined or left:
        await enqueue_contacts_changed(conn, account_id, [*joined, *left])
    return joined, left
