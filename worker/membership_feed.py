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
           FROM segments s
           LEFT JOIN segment_change_feeds f ON f.account_id = s.account_id AND f.segment_id = s.id
           WHERE s.id = $1 AND s.account_id = $2""",
        segment_id,
        account_id,
    )
    if row is None:
        raise SegmentNotFound(f"account {account_id} has no segment {segment_id}")
    last: int = row["last_seq"]
    return last


# Rows of the feed (sql/011) unnested into items: the initial row is one item; a change row's
# `entered` take seq_first onwards in array order, then its `left_ids`. At most $4 rows are
# read (each holds one item at least), oldest first. $1 segment, $2 account, $3 after,
# $4 limit, $5 retention.
_ITEMS = """
SELECT i.seq, i.change, i.contact_id, r.total_count, r.cause, r.generation, r.at
FROM (SELECT * FROM segment_membership_changes
      WHERE account_id = $2 AND segment_id = $1 AND seq_last > $3
        AND at >= now() - $5::interval
      ORDER BY seq_last LIMIT $4) r
CROSS JOIN LATERAL (
    SELECT r.seq_first AS seq, 'initial' AS change, NULL::uuid AS contact_id
    WHERE r.total_count IS NOT NULL
    UNION ALL
    SELECT r.seq_first + e.n - 1, 'entered', e.id
    FROM unnest(r.entered) WITH ORDINALITY AS e (id, n)
    UNION ALL
    SELECT r.seq_first + cardinality(r.entered) + l.n - 1, 'left', l.id
    FROM unnest(r.left_ids) WITH ORDINALITY AS l (id, n)
) i
WHERE i.seq > $3
ORDER BY i.seq
LIMIT $4
"""


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
    items = await conn.fetch(_ITEMS, segment_id, account_id, after, min(limit, MAX_PAGE), retention)
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
               WHERE account_id = $2 AND segment_id = $1
                 AND minute >= date_trunc('minute', $3::timestamptz) AND minute <= $4
               ORDER BY minute""",
            segment_id,
            account_id,
            since,
            until,
        )
    )


# Retention, in bounded steps that each pin one account (docs/scaling.md): find up to $2
# segments with expired rows (the one scan across accounts, through the BRIN indexes on the
# times, sql/011), then delete each one's expired rows in a statement of its own.
_EXPIRED = {
    "segment_membership_changes": """SELECT DISTINCT account_id, segment_id
        FROM segment_membership_changes WHERE at < now() - $1::interval LIMIT $2""",
    "segment_count_history": """SELECT DISTINCT account_id, segment_id
        FROM segment_count_history WHERE minute < now() - $1::interval LIMIT $2""",
}
_DELETE_EXPIRED = {
    "segment_membership_changes": """DELETE FROM segment_membership_changes
        WHERE account_id = $1 AND segment_id = $2 AND at < now() - $3::interval""",
    "segment_count_history": """DELETE FROM segment_count_history
        WHERE account_id = $1 AND segment_id = $2 AND minute < now() - $3::interval""",
}


async def purge_expired(conn: Conn, *, retention: timedelta, max_segments: int = 1000) -> int:
    """Delete feed rows older than `retention` and history points older than 400 days, of at
    most `max_segments` segments per table per call (the rest waits for the next call), one
    short transaction per segment. Returns the rows deleted."""
    deleted = 0
    for table, keep in (
        ("segment_membership_changes", retention),
        ("segment_count_history", HISTORY_RETENTION),
    ):
        for row in await conn.fetch(_EXPIRED[table], keep, max_segments):
            status = await conn.execute(
                _DELETE_EXPIRED[table], row["account_id"], row["segment_id"], keep
            )
            deleted += int(status.split()[-1])  # "DELETE <rows>"
    return deleted
