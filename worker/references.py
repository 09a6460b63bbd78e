"""Segments built from other segments (docs/rules.md, "segment"): the stored references
(sql/009_segment_references.sql), read both ways with one indexed lookup each."""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from worker.db import Conn
from worker.lists import SegmentRef
from worker.locks import account_references_key
from worker.rules.references import SegmentGraph


async def lock_references(conn: Conn, account_id: UUID) -> None:
    """Serialise checks and saves of the account's references until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *account_references_key(account_id))


async def load_graph(conn: Conn, account_id: UUID, saving: UUID | None) -> SegmentGraph:
    """The account's segments and references, seen from the segment being saved."""
    ids = await conn.fetch("SELECT id FROM segments WHERE account_id = $1", account_id)
    edges = await conn.fetch(
        "SELECT segment_id, referenced_segment_id FROM segment_references WHERE account_id = $1",
        account_id,
    )
    references: dict[UUID, set[UUID]] = {}
    for edge in edges:
        references.setdefault(edge["segment_id"], set()).add(edge["referenced_segment_id"])
    return SegmentGraph({r["id"] for r in ids}, references, saving)


async def save_references(
    conn: Conn, account_id: UUID, segment_id: UUID, referenced: Collection[UUID]
) -> None:
    """Replace the segment's references (in the caller's transaction, with its rules)."""
    await conn.execute(
        "DELETE FROM segment_references WHERE account_id = $1 AND segment_id = $2",
        account_id,
        segment_id,
    )
    if referenced:
        await conn.execute(
            """INSERT INTO segment_references (account_id, segment_id, referenced_segment_id)
               SELECT $1, $2, r FROM unnest($3::uuid[]) r""",
            account_id,
            segment_id,
            sorted(referenced),
        )


async def referring_segments(conn: Conn, account_id: UUID, segment_id: UUID) -> list[SegmentRef]:
    """The segments whose rules reference this one, by name."""
    rows = await conn.fetch(
        """SELECT s.id, s.name FROM segment_references r
           JOIN segments s ON s.id = r.segment_id AND s.account_id = r.account_id
           WHERE r.referenced_segment_id = $1 AND r.account_id = $2
           ORDER BY lower(s.name), s.id""",
        segment_id,
        account_id,
    )
    return [SegmentRef(r["id"], r["name"]) for r in rows]
