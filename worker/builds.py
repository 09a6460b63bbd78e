"""One build of one segment: claim it for its generation, run the compiled query, write the
difference to its membership, finish (README: Worker behaviour).

Builds and incremental updates of one segment are serialised by a transaction-level advisory
lock on the segment, taken before any query reads data: whichever runs second sees what the
first committed, so the end state is the rules evaluated on the data as it is at the end.
The API never takes that lock; it bumps `generation` freely, and a build that finds the
generation moved under it rolls back everything it wrote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

import structlog

from worker.compiler import CompiledQuery, compile_member_ids
from worker.db import Conn
from worker.locks import segment_lock_key
from worker.membership_log import Recording, record_build
from worker.messages import SegmentMessage
from worker.propagation import queue_build_difference
from worker.rules import RulesInvalid
from worker.settings import REBUILD_CHECK_FROM_MEMBERS
from worker.store import SegmentRules, load_registry

log = structlog.get_logger(__name__)

Outcome = Literal["done", "failed", "stale", "duplicate", "gone"]
# What a rebuild's check found (write_difference), when it checked.
Checked = Literal["unchanged", "changed"]


@dataclass(frozen=True)
class BuildResult:
    outcome: Outcome
    total_count: int | None = None
    added: int = 0
    removed: int = 0
    # Seconds of the two database steps: the query and its pairing with the members, then
    # writing the difference (the rest of a build is claiming, commit and bookkeeping).
    query_s: float = 0.0
    write_s: float = 0.0
    checked: Checked | None = None


# Room to hash a large account's events instead of probing them contact by contact.
BUILD_WORK_MEM = "64MB"


class _GenerationMoved(Exception):
    """The rules changed while we built: this build must not write."""


# Step 1: the difference between the matches and the members, computed by one read-only
# statement. A statement that also writes (DELETE/INSERT in CTEs) cannot use parallel workers;
# CREATE TABLE AS can, so the query runs as fast as it does alone. Both sides come sorted by
# contact id (the matches by the workers, in parallel; the members from the primary key), so
# one merge full join pairs them: `id` null is a member to remove, `member` null a match to
# add, neither null is kept. Probing the members once per match instead was slower, and the
# temporary table then needed an index and statistics to be planned well. Figures:
# docs/benchmarks.md, "Figures behind the code's choices".
_DIFF = """CREATE TEMP TABLE build_diff ON COMMIT DROP AS
SELECT matched.id, members.contact_id AS member
FROM (SELECT id FROM ({members}) q ORDER BY id) matched
FULL JOIN (SELECT contact_id FROM segment_members
           WHERE account_id = {account} AND segment_id = {segment}
           ORDER BY contact_id) members ON members.contact_id = matched.id"""
# A rebuild checks first (_UNCHANGED) only when the segment's last total_count is at least
# this: step 1's pairing costs in proportion to the members, in one process, and the check
# pays for itself only where that is large. Whole rebuilds that found nothing, against their
# query alone: at 335,000 members 1.06x to 1.22x with the check, 1.35x to 1.52x without; at
# 33,600 members (where step 1 ran in parallel, as the query did not) 1.25x to 1.44x with
# it, 1.06x to 1.17x without (docs/benchmarks.md, "A rebuild that finds nothing to do").
# Only those two sizes were measured: 100,000 is a round number between them, and where the
# two cross depends on when the planner runs each in parallel. It is the default of the
# worker's setting rebuild_check_from_members, which lets an operator move it.
CHECK_FROM_MEMBERS = REBUILD_CHECK_FROM_MEMBERS
# Before step 1, for a rebuild (which usually finds nothing to do: incremental updates keep
# members current): are the members already what the query finds? Compared by fingerprint,
# the count and two sums of 64-bit hashes of the ids (each id once: the matches are distinct,
# which the property test checks, and so are the members, by their key), computed by each
# side's own parallel aggregate: the query runs as it does alone, and only the sums leave its
# workers. An exact comparison pairs the ids, which is what costs: step 1 brings every match
# to one process, sorted, and looking each match up among the members in the workers was
# little cheaper. A whole rebuild that finds nothing, at 1M contacts: 1.12x its query with
# the fingerprint, 1.46x through step 1 (docs/benchmarks.md, "A rebuild that finds nothing
# to do"). Two different sets of ids pass for the same only if they have the same size and
# both sums agree, about one chance in 2^128 for ids not chosen to collide; a difference
# found falls through to step 1.
# sum() of bigints adds in 128-bit integers (and returns numeric): no overflow, and 77 ms less
# at 335,000 ids than adding numerics row by row (892 against 969 ms, the query included).
_FINGERPRINT = """count(*) AS ids, sum(uuid_hash_extended({id}, 0)) AS sum0,
       sum(uuid_hash_extended({id}, 1)) AS sum1"""
_UNCHANGED = f"""SELECT matched.ids AS total,
       (matched.ids, matched.sum0, matched.sum1)
       IS NOT DISTINCT FROM (members.ids, members.sum0, members.sum1) AS same
FROM (SELECT {_FINGERPRINT.format(id="q.id")} FROM ({{members}}) q) matched,
     (SELECT {_FINGERPRINT.format(id="contact_id")} FROM segment_members
      WHERE account_id = {{account}} AND segment_id = {{segment}}) members"""  # noqa: S608 (constants)
# A segment without members (a first build): the matches alone, unsorted and unjoined, as
# fast as the query alone (quicker than the sorted merge; docs/benchmarks.md), then all
# inserted by _INSERT_ALL.
_FIRST_MATCHES = """CREATE TEMP TABLE build_diff ON COMMIT DROP AS
SELECT matched.id FROM ({members}) matched"""
# In key order, new rows fill both indexes' pages in turn instead of landing all over them
# (unsorted is much slower). No RETURNING: the count comes from the command status, cheaper
# than counting returned rows (both measured in docs/benchmarks.md).
_INSERT_ALL = """INSERT INTO segment_members (segment_id, contact_id, account_id)
SELECT $1::uuid, d.id, $2::uuid FROM build_diff d ORDER BY d.id"""
# Step 2: the difference, written ($1 the segment, $2 the account).
_MATERIALISE = """
WITH removed AS (
    DELETE FROM segment_members sm
    USING build_diff d
    WHERE d.id IS NULL AND sm.account_id = $2::uuid AND sm.segment_id = $1::uuid
      AND sm.contact_id = d.member
    RETURNING 1
), added AS (
    INSERT INTO segment_members (segment_id, contact_id, account_id)
    SELECT $1::uuid, d.id, $2::uuid FROM build_diff d
    WHERE d.member IS NULL
    -- In key order, as _INSERT_ALL. After the merge the rows are in that order already,
    -- which the sort notices in one pass.
    ORDER BY d.id
    RETURNING 1
)
-- The compiled query's ids are distinct (the property test checks it), so this is the
-- number of matches.
SELECT (SELECT count(*) FROM build_diff WHERE id IS NOT NULL) AS total,
       (SELECT count(*) FROM added) AS added,
       (SELECT count(*) FROM removed) AS removed
"""


async def build_segment(
    conn: Conn,
    message: SegmentMessage,
    trigger: str,
    *,
    statement_timeout_ms: int,
    now: datetime | None = None,
    record: bool = True,
    check_from: int = CHECK_FROM_MEMBERS,
) -> BuildResult:
    """Build `message.generation` of the segment. Raises transient errors for the caller to
    retry; ends FAILED itself when the rules cannot be compiled. `record`: record what it
    moves (worker.membership_log). `check_from`: a rebuild of a segment whose last total_count
    is at least this checks whether anything changed first (write_difference; tests lower it
    to take the check on small data)."""
    segment = await _claim(conn, message, trigger)
    if isinstance(segment, BuildResult):
        return segment
    try:
        registry = await load_registry(conn, message.account_id)
        clock = now or datetime.now(UTC)  # the membership is as fresh as this, for its clock
        query = segment.query(registry, clock)
    except RulesInvalid as exc:
        reason = f"the rules no longer fit this account's fields: {exc}"
        await mark_failed(conn, message, reason)
        return BuildResult("failed")
    compiled = compile_member_ids(query)
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1)", segment_lock_key(segment.segment_id)
            )
            # An int we format ourselves; SET cannot take a bind parameter.
            await conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
            # Room to hash a large account's events instead of probing them contact by
            # contact ("never opened" at 1M contacts: docs/benchmarks.md, work-mem).
            await conn.execute(f"SET LOCAL work_mem = '{BUILD_WORK_MEM}'")
            recording = Recording.of_build(trigger, message.generation) if record else None
            written = await write_difference(
                conn,
                compiled,
                segment.segment_id,
                message.account_id,
                recording,
                # A rebuild is asked for to make sure (or requeues a build that got stuck);
                # incremental updates keep the members current, so it usually finds nothing
                # to do. New rules move members, where checking first would be a pass for
                # nothing; so may a refresh (the clock moved: a window of days loses and
                # gains contacts at its edges). How often a calendar segment's nightly
                # refresh finds nothing was not measured; refreshes take step 1 directly.
                check_unchanged_from=check_from if trigger == "rebuild" else None,
            )
            finished = await conn.fetchval(
                """UPDATE segments
                   SET status = 'DONE', total_count = $3, built_generation = $2,
                       error_reason = NULL, last_built_at = now(), built_clock_at = $5,
                       updated_at = CASE WHEN total_count IS DISTINCT FROM $3 OR $4
                                         THEN now() ELSE updated_at END
                   WHERE account_id = $6 AND id = $1 AND generation = $2
                   RETURNING true""",
                segment.segment_id,
                message.generation,
                written.total_count,
                written.added > 0 or written.removed > 0,
                clock,
                message.account_id,
            )
            if not finished:
                raise _GenerationMoved
    except _GenerationMoved:
        return BuildResult("stale")
    return written


async def write_difference(
    conn: Conn,
    compiled: CompiledQuery,
    segment_id: UUID,
    account_id: UUID,
    recording: Recording | None = None,
    *,
    check_unchanged_from: int | None = None,
) -> BuildResult:
    """Steps 1 and 2, in the caller's transaction (which holds the segment's lock), and the
    record of what moved (part of step 2's time) unless `recording` is None. With
    `check_unchanged_from`, a segment whose last total_count is at least that is checked
    first: if its members are already what the query finds, it is left as it is after the
    check alone; otherwise the check has cost one more pass of the query."""
    started = time.perf_counter()
    has_members = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM segment_members
                          WHERE account_id = $1 AND segment_id = $2)""",
        account_id,
        segment_id,
    )
    unchanged_total = None
    checked: Checked | None = None
    if (
        has_members
        and check_unchanged_from is not None
        and await _last_count(conn, segment_id, account_id) >= check_unchanged_from
    ):
        unchanged_total = await _unchanged_total(conn, compiled, segment_id, account_id)
        checked = "changed" if unchanged_total is None else "unchanged"
    if unchanged_total is not None:
        queried = time.perf_counter()
        total, added, removed = unchanged_total, 0, 0
    elif has_members:
        diff = on_members(_DIFF, compiled)
        await conn.execute(diff, *compiled.params, segment_id, account_id)
        queried = time.perf_counter()
        # The planner takes a segment to have about one member (statistics lag behind
        # builds) and would then scan the whole difference once per member (a rebuild of
        # tens of thousands of members took tens of seconds; docs/benchmarks.md). Hash and
        # merge joins are linear whatever the sizes.
        # For this statement only: the caller's setting is back for what follows.
        previous = await conn.fetchval("SELECT current_setting('enable_nestloop')")
        await conn.execute("SET LOCAL enable_nestloop = off")
        row = await conn.fetchrow(_MATERIALISE, segment_id, account_id)
        await conn.execute("SELECT set_config('enable_nestloop', $1, true)", previous)
        assert row is not None
        total, added, removed = row["total"], row["added"], row["removed"]
    else:
        await conn.execute(_FIRST_MATCHES.format(members=compiled.sql), *compiled.params)
        queried = time.perf_counter()
        status = await conn.execute(_INSERT_ALL, segment_id, account_id)
        total = added = int(status.split()[-1])  # "INSERT 0 <rows>"
        removed = 0
    if recording is not None:
        await record_build(
            conn,
            account_id,
            segment_id,
            recording,
            total_count=total,
            added=added,
            removed=removed,
            had_members=has_members,
        )
    written = time.perf_counter()
    if unchanged_total is None:
        await queue_build_difference(conn, account_id, segment_id, first_build=not has_members)
        # Dropped now, not at commit, so that a build inside a caller's transaction can be
        # followed by another.
        await conn.execute("DROP TABLE build_diff")
    return BuildResult(
        "done",
        total,
        added,
        removed,
        query_s=queried - started,
        write_s=written - queried,
        checked=checked,
    )


def on_members(template: str, compiled: CompiledQuery) -> str:
    """_DIFF or _UNCHANGED for the compiled query, the segment and account as its next two
    parameters."""
    n = len(compiled.params)
    return template.format(
        members=compiled.sql, segment=f"${n + 1}::uuid", account=f"${n + 2}::uuid"
    )


async def _last_count(conn: Conn, segment_id: UUID, account_id: UUID) -> int:
    """The segment's total_count as its last build or change left it (0 if none)."""
    counted = await conn.fetchval(
        "SELECT total_count FROM segments WHERE account_id = $1 AND id = $2",
        account_id,
        segment_id,
    )
    return int(counted or 0)


async def _unchanged_total(
    conn: Conn, compiled: CompiledQuery, segment_id: UUID, account_id: UUID
) -> int | None:
    """The number of members if they are exactly what the query finds, else None."""
    sql = on_members(_UNCHANGED, compiled)
    # fetch(), not fetchrow(): asyncpg asks for fetchrow's row with a row limit, and
    # PostgreSQL runs a statement with a row limit without parallel workers (as
    # worker.db.fetch_count).
    (row,) = await conn.fetch(sql, *compiled.params, segment_id, account_id)
    return int(row["total"]) if row["same"] else None


async def _claim(conn: Conn, message: SegmentMessage, trigger: str) -> SegmentRules | BuildResult:
    """Mark the segment RUNNING for this generation, or say why there is nothing to do."""
    row = await conn.fetchrow(
        """SELECT id, account_id, generation, built_generation, status, dialect, rules,
                  contact_list_ids, timezone
           FROM segments WHERE id = $1 AND account_id = $2""",
        message.segment_id,
        message.account_id,
    )
    if row is None:
        return BuildResult("gone")
    if row["generation"] != message.generation:
        return BuildResult("stale")
    if (
        trigger in ("created", "updated")
        and row["status"] == "DONE"
        and row["built_generation"] == message.generation
    ):
        return BuildResult("duplicate")  # at-least-once delivery: already built
    # A DONE segment stays DONE while it is refreshed or rebuilt.
    claimed = await conn.fetchval(
        """UPDATE segments
           SET status = CASE WHEN status = 'DONE' THEN 'DONE' ELSE 'RUNNING' END,
               build_started_at = now(), error_reason = NULL
           WHERE account_id = $3 AND id = $1 AND generation = $2
           RETURNING true""",
        message.segment_id,
        message.generation,
        message.account_id,
    )
    if not claimed:
        return BuildResult("stale")
    return SegmentRules.from_row(row)


async def mark_failed(conn: Conn, message: SegmentMessage, reason: str) -> None:
    """FAILED with `reason`, if the segment is still at the message's generation."""
    await conn.execute(
        """UPDATE segments
           SET status = 'FAILED', error_reason = $3, total_count = NULL, updated_at = now()
           WHERE account_id = $4 AND id = $1 AND generation = $2""",
        message.segment_id,
        message.generation,
        reason,
        message.account_id,
    )
    log.warning(
        "build.failed",
        segment_id=str(message.segment_id),
        generation=message.generation,
        reason=reason,
    )
