"""Segments built from other segments: a change of a segment's membership flows on to the
segments that reference it (docs/rules.md, "segment").

Whatever changed a segment's membership (a first build, a rebuild or refresh, an incremental
update, or its own propagation), the same transaction queues exactly the contacts that moved
for every segment that references it, in segment_pending_changes: the queue that already holds
the changes a build made wait. The worker's sweep (worker.changes.apply_pending) re-evaluates
them in the referring segment only (the which-of-these-ids form, never a full rebuild), under
that segment's lock, on the data as it is then; what that moves is queued in turn for the
segments referencing it, and so on down the chain (no cycles: worker.rules.references). A sweep
takes the queued segments in reference order (worker.changes, _PENDING_IN_REFERENCE_ORDER), so
what a referenced segment moves reaches the segments reading it in the same sweep; builds,
incremental updates and propagation of one segment stay serialised by its advisory lock.

A referring segment that is being built is queued like any other: its build may have read the
referenced membership before the change, and the sweep waits for its lock. One not built for
its current rules yet drops the queued contacts: its build, which starts later, reads the
referenced membership as it is then. A referenced segment that is not DONE yet is read as it
is (no members before its first build); its build then moves its members, which flow on.
"""

from __future__ import annotations

from uuid import UUID

from worker.db import Conn

# Part of worker.changes' apply statement: after `added` and `removed` (segment_id,
# contact_id) of the segments it wrote, queue the contacts that moved for the segments
# referencing those ($1 is the account).
PROPAGATE_CTE = """propagated AS (
    INSERT INTO segment_pending_changes (segment_id, contact_id, account_id, cause)
    SELECT r.segment_id, moved.contact_id, $1::uuid, 'cascade'
    FROM (SELECT segment_id, contact_id FROM added
          UNION SELECT segment_id, contact_id FROM removed) moved
    JOIN segment_references r
      ON r.referenced_segment_id = moved.segment_id AND r.account_id = $1::uuid
    ON CONFLICT DO NOTHING
)"""

# A build's difference (worker.builds' build_diff: `id` null = removed, `member` null =
# added), queued for the referring segments $1.
_QUEUE_DIFF = """INSERT INTO segment_pending_changes (segment_id, contact_id, account_id, cause)
SELECT r, coalesce(d.id, d.member), $2::uuid, 'cascade'
FROM build_diff d, unnest($1::uuid[]) r
WHERE d.id IS NULL OR d.member IS NULL
ON CONFLICT DO NOTHING"""
# A first build's matches (build_diff holds only `id`): every one was added.
_QUEUE_FIRST = """INSERT INTO segment_pending_changes (segment_id, contact_id, account_id, cause)
SELECT r, d.id, $2::uuid, 'cascade' FROM build_diff d, unnest($1::uuid[]) r
ON CONFLICT DO NOTHING"""


async def referring_ids(conn: Conn, account_id: UUID, segment_id: UUID) -> list[UUID]:
    rows = await conn.fetch(
        """SELECT segment_id FROM segment_references
           WHERE referenced_segment_id = $1 AND account_id = $2""",
        segment_id,
        account_id,
    )
    return [r["segment_id"] for r in rows]


async def queue_build_difference(
    conn: Conn, account_id: UUID, segment_id: UUID, *, first_build: bool
) -> int:
    """In the build's transaction, before build_diff is dropped: queue the contacts the build
    moved for the segments that reference it. Returns the segments queued for."""
    referring = await referring_ids(conn, account_id, segment_id)
    if referring:
        await conn.execute(_QUEUE_FIRST if first_build else _QUEUE_DIFF, referring, account_id)
    return len(referring)
