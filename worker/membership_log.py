"""Recording membership changes (docs/changes.md): in the transaction that changes a segment's
membership, one feed item per contact that entered or left (`segment_membership_changes`),
`membership.changed` messages of at most 1,000 ids through the outbox, and the minute's point
of the count history. A segment's first build records one `initial` item instead.

Every writer of a segment's membership (a build: worker.builds; an incremental update or the
sweep of queued changes: worker.changes) holds the segment's advisory lock, so the writers of
one segment record one transaction after the other: seqs come from a counter row per segment
(`segment_change_feeds`) moved in that transaction, are contiguous, and follow commit order;
so do the outbox rows' ids, which is the order the relay publishes in (worker/relay.py).

A segment has a counter row once its initial item is recorded. Incremental updates record
only for segments that have one (a segment built while recording was off records nothing
until its next build, which records a new initial item). SEGMENTS_RECORD_MEMBERSHIP_CHANGES
off records nothing at all: it exists to measure what recording costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

from worker.db import Conn
from worker.messages import MAX_MEMBERSHIP_IDS, MEMBERSHIP_CHANGED, Cause
from worker.outbox import notify_relay

# What a build for each trigger records as the cause of what it moves.
CAUSE_BY_TRIGGER: Final[dict[str, Cause]] = {
    "created": "rules",
    "updated": "rules",
    "rebuild": "rebuild",
    "refresh": "refresh",
}


@dataclass(frozen=True)
class Recording:
    """What a build records its changes as."""

    cause: Cause
    generation: int

    @classmethod
    def of_build(cls, trigger: str, generation: int) -> Recording:
        return cls(CAUSE_BY_TRIGGER[trigger], generation)


# The recording, as CTEs that follow a statement's own: it needs `added` and `removed`
# (segment_id, contact_id: what the statement moved) and `counted` (segment_id, generation,
# total_count, added, removed: one row per segment that moved, the count after). {account}
# and {cause} are placeholders of the caller's statement; {window} numbers each segment's
# moved contacts (no order needed: the arrays say which contact has which seq). `stamp` is
# one instant for the whole statement (clock_timestamp(), not now(): a build may have waited
# for the lock since its transaction began, and times must not go back along the seqs).
# `chunks` are the rows of the feed and the messages both: consecutive seqs of a segment,
# {MAX_MEMBERSHIP_IDS} at most, `entered` first. Only constants are formatted into it.
RECORD_CTES = f"""stamp AS MATERIALIZED (SELECT clock_timestamp() AS at),
feeds AS (
    UPDATE segment_change_feeds f SET last_seq = f.last_seq + c.added + c.removed
    FROM counted c
    WHERE f.account_id = {{account}} AND f.segment_id = c.segment_id
    RETURNING f.segment_id, f.last_seq - c.added - c.removed AS seq_before,
              c.generation, c.total_count, c.added, c.removed
), numbered AS (
    SELECT m.segment_id, m.contact_id, m.is_entered,
           (row_number() OVER {{window}} - 1) / {MAX_MEMBERSHIP_IDS} AS chunk
    FROM (SELECT segment_id, contact_id, true AS is_entered FROM added
          UNION ALL SELECT segment_id, contact_id, false FROM removed) m
), chunks AS MATERIALIZED (
    SELECT f.segment_id, f.generation,
           f.seq_before + n.chunk * {MAX_MEMBERSHIP_IDS} + 1 AS seq_first,
           f.seq_before + n.chunk * {MAX_MEMBERSHIP_IDS} + count(*) AS seq_last,
           coalesce(array_agg(n.contact_id) FILTER (WHERE n.is_entered), '{{{{}}}}') AS entered,
           coalesce(array_agg(n.contact_id) FILTER (WHERE NOT n.is_entered), '{{{{}}}}')
               AS left_ids
    FROM numbered n JOIN feeds f USING (segment_id)
    GROUP BY f.segment_id, f.generation, f.seq_before, n.chunk
), logged AS (
    INSERT INTO segment_membership_changes
        (account_id, segment_id, seq_first, seq_last, entered, left_ids, cause, generation, at)
    SELECT {{account}}, c.segment_id, c.seq_first, c.seq_last, c.entered, c.left_ids,
           {{cause}}, c.generation, stamp.at
    FROM chunks c CROSS JOIN stamp
), published AS (
    INSERT INTO outbox (routing_key, body)
    SELECT '{MEMBERSHIP_CHANGED}', jsonb_build_object(
        'schema', 1, 'account_id', {{account}}, 'segment_id', c.segment_id,
        'generation', c.generation, 'cause', {{cause}}, 'at', stamp.at,
        'seq_first', c.seq_first, 'seq_last', c.seq_last,
        'entered', to_jsonb(c.entered), 'left', to_jsonb(c.left_ids))
    FROM chunks c CROSS JOIN stamp
    ORDER BY c.segment_id, c.seq_first
), history AS (
    INSERT INTO segment_count_history AS h
        (account_id, segment_id, minute, total_count, entered, left_count)
    SELECT {{account}}, f.segment_id, date_trunc('minute', stamp.at), f.total_count,
           f.added, f.removed
    FROM feeds f CROSS JOIN stamp
    ON CONFLICT (account_id, segment_id, minute) DO UPDATE
    SET total_count = EXCLUDED.total_count,
        entered = h.entered + EXCLUDED.entered,
        left_count = h.left_count + EXCLUDED.left_count
)"""  # noqa: S608


def record_ctes(account: str, cause: str, *, one_segment: bool = False) -> str:
    """RECORD_CTES for a statement whose account and cause are the placeholders given;
    `one_segment` when it moved the members of one segment only (no partition to sort)."""
    window = "()" if one_segment else "(PARTITION BY m.segment_id)"
    return RECORD_CTES.format(account=account, cause=cause, window=window)


# A first build: the counter row, the initial item, its message and the first point.
# $1 segment, $2 account, $3 generation, $4 total_count.
_RECORD_INITIAL = f"""
WITH stamp AS MATERIALIZED (SELECT clock_timestamp() AS at),
feed AS (
    INSERT INTO segment_change_feeds (account_id, segment_id, last_seq)
    VALUES ($2::uuid, $1::uuid, 1)
    RETURNING last_seq AS seq
), logged AS (
    INSERT INTO segment_membership_changes
        (account_id, segment_id, seq_first, seq_last, total_count, generation, at)
    SELECT $2::uuid, $1::uuid, feed.seq, feed.seq, $4::bigint, $3::bigint, stamp.at
    FROM feed, stamp
), published AS (
    INSERT INTO outbox (routing_key, body)
    SELECT '{MEMBERSHIP_CHANGED}', jsonb_build_object(
        'schema', 1, 'account_id', $2::uuid, 'segment_id', $1::uuid, 'generation', $3::bigint,
        'at', stamp.at, 'seq_first', feed.seq, 'seq_last', feed.seq,
        'initial', true, 'total_count', $4::bigint)
    FROM feed, stamp
)
INSERT INTO segment_count_history AS h
    (account_id, segment_id, minute, total_count, entered, left_count)
SELECT $2::uuid, $1::uuid, date_trunc('minute', stamp.at), $4::bigint, $4::bigint, 0 FROM stamp
ON CONFLICT (account_id, segment_id, minute) DO UPDATE
SET total_count = EXCLUDED.total_count, entered = h.entered + EXCLUDED.entered
"""  # noqa: S608 (a constant)

# A later build: what it moved, read from worker.builds' build_diff (`id` null: a member that
# left; `member` null: a match that entered). $1 account, $2 cause, $3 segment, $4
# generation, $5 total_count, $6 added, $7 removed.
_BUILD_MOVED = """
WITH added (segment_id, contact_id) AS ({added}),
removed (segment_id, contact_id) AS ({removed}),
counted AS (
    SELECT $3::uuid AS segment_id, $4::bigint AS generation, $5::bigint AS total_count,
           $6::bigint AS added, $7::bigint AS removed
), {record}
SELECT 1
"""
_ADDED = "SELECT $3::uuid, d.id FROM build_diff d WHERE d.member IS NULL"
_REMOVED = "SELECT $3::uuid, d.member FROM build_diff d WHERE d.id IS NULL"
# A build that found no members: build_diff holds only `id`, and every match entered.
_ALL_ADDED = "SELECT $3::uuid, d.id FROM build_diff d"
_NONE_REMOVED = "SELECT NULL::uuid, NULL::uuid WHERE false"
_RECORD = record_ctes("$1::uuid", "$2::text", one_segment=True)
_BUILD_STATEMENTS = {
    True: _BUILD_MOVED.format(added=_ADDED, removed=_REMOVED, record=_RECORD),
    False: _BUILD_MOVED.format(added=_ALL_ADDED, removed=_NONE_REMOVED, record=_RECORD),
}


async def record_build(
    conn: Conn,
    account_id: UUID,
    segment_id: UUID,
    recording: Recording,
    *,
    total_count: int,
    added: int,
    removed: int,
    had_members: bool,
) -> None:
    """In a build's transaction, after it wrote the difference and before build_diff is
    dropped: the initial item if the segment has none yet, else one item per contact moved
    (nothing if none moved)."""
    started = await conn.fetchval(
        "SELECT true FROM segment_change_feeds WHERE account_id = $1 AND segment_id = $2",
        account_id,
        segment_id,
    )
    if not started:
        await conn.execute(
            _RECORD_INITIAL, segment_id, account_id, recording.generation, total_count
        )
    elif added or removed:
        await conn.execute(
            _BUILD_STATEMENTS[had_members],
            account_id,
            recording.cause,
            segment_id,
            recording.generation,
            total_count,
            added,
            removed,
        )
    else:
        return
    await notify_relay(conn)
