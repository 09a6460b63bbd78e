"""Reading what worker.membership_log recorded (docs/changes.md): a page of a segment's changes
feed after a cursor, its count history, and the retention cleanup the scheduler runs.

Seqs of a segment are contiguous and their times go up with them, so the items younger than
the retention are a suffix k .. last_seq of them. The feed shows exactly those (whatever the
cleanup, which deletes in batches in no particular order, has reached), so a cursor `after`
whose next item is not shown (the first item read is not after + 1, or none is shown while
the counter is ahead) has missed changes for good, and the reader must start again from the
members (410: CursorExpired, naming the oldest seq kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from worker.db import Conn
from worker.store import SegmentNotFound

MAX_PAGE = 1000
HISTORY_RETENTION = timedelta(days=400)


class CursorExpired(Exception):
    """Items after the cursor were deleted by retention."""

    def __init__(self, after: int, oldest_seq: int) -> None:
        super().__init__(
            f"the changes after seq {after} are no longer kept (retention); the oldest seq "
            f"kept is {oldest_seq}: read the segment's members again, then follow the feed "
            f"from after={oldest_seq - 1}"
        )
        self.after = after
        self.oldest_seq = oldest_seq


@dataclass(frozen=True)
class FeedPage:
    items: list[asyncpg.Record]
    next_after: int


async def _last_seq(conn: Conn, account_id: UUID, segment_id: UUID) -> int:
    """The segment's last seq (0 before its first build); SegmentNotFound if it is not the
    account's."""
    row = await conn.fetchrow(
        """SELECT coalesce(f.last_seq, 0) AS last_seq
           FROM segments s LEFT JOIN segment_change_feeds f ON f.segment_id = s.id
           WHERE s.id = $1 AND s.account_id = $2""",
        segment_id,
        account_id,
    )
    if row is None:
        raise SegmentNotFound(f"account {account_id} has no segment {segment_id}")
    last: int = row["last_seq"]
    return last


async def read_changes(
    conn: Conn,
    account_id: UUID,
    segment_id: UUID,
    *,
    after: int,
    limit: int,
    retention: timedelta,
) -> FeedPage:
    """Up to `limit` items with seq > `after` younger than `retention`, in seq order."""
    last_seq = await _last_seq(conn, account_id, segment_id)
    items = await conn.fetch(
        """SELECT seq, change, contact_id, total_count, cause, generation, at
           FROM segment_membership_changes
           WHERE segment_id = $1 AND account_id = $2 AND seq > $3
             AND at >= now() - $5::interval
           ORDER BY seq LIMIT $4""",
        segment_id,
        account_id,
        after,
        min(limit, MAX_PAGE),
        retention,
    )
    if items and items[0]["seq"] > after + 1:
        raise CursorExpired(after, items[0]["seq"])
    if not items and after < last_seq:
        raise CursorExpired(after, last_seq + 1)
    return FeedPage(list(items), items[-1]["seq"] if items else after)


async def read_history(
    conn: Conn, account_id: UUID, segment_id: UUID, *, since: datetime, until: datetime
) -> list[asyncpg.Record]:
    """The points of minutes from `since` to `until` (both included), in time order."""
    await _last_seq(conn, account_id, segment_id)
    return list(
        await conn.fetch(
            """SELECT minute AS at, total_count, entered, left_count AS left
               FROM segment_count_history
               WHERE segment_id = $1 AND account_id = $2
                 AND minute >= date_trunc('minute', $3::timestamptz) AND minute <= $4
               ORDER BY minute""",
            segment_id,
            account_id,
            since,
            until,
        )
    )


# Bounded batches: each a short transaction, so the cleanup never holds locks long nor
# writes a burst of WAL. Rows are found through the BRIN indexes on their times (sql/011).
_PURGE_CHANGES = """DELETE FROM segment_membership_changes WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM segment_membership_changes WHERE at < now() - $1::interval LIMIT $2))"""
_PURGE_HISTORY = """DELETE FROM segment_count_history WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM segment_count_history WHERE minute < now() - $1::interval LIMIT $2))"""


async def purge_expired(
    conn: Conn, *, retention: timedelta, batch: int = 10_000, max_batches: int = 100
) -> int:
    """Delete feed items older than `retention` and history points older than 400 days, at
    most `batch` rows per statement and `max_batches` statements per call (the rest waits
    for the next call). Returns the rows deleted."""
    deleted = 0
    for statement, keep in ((_PURGE_CHANGES, retention), (_PURGE_HISTORY, HISTORY_RETENTION)):
        for _ in range(max_batches):
            status = await conn.execute(statement, keep, batch)
            rows = int(status.split()[-1])  # "DELETE <rows>"
            deleted += rows
            if rows < batch:
                break
    return deleted
