"""segment_members is analysed before a change batch once much of it changed (first builds),
not a minute later by autovacuum (worker.member_statistics)."""

from __future__ import annotations

import functools
import uuid

import asyncpg
from prometheus_client import REGISTRY

from tests.waiting import wait_for
from worker.member_statistics import FLOOR, SHARE, MemberStatistics

_STATS = """SELECT n_live_tup, n_mod_since_analyze, last_analyze
            FROM pg_stat_user_tables WHERE relid = 'segment_members'::regclass"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_large_membership_change_is_analysed_once(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    clock = Clock()
    statistics = MemberStatistics(interval_s=2, clock=clock)
    await conn.execute("ANALYZE segment_members")
    assert not await statistics.keep_fresh(conn)  # nothing changed since
    live = (await conn.fetchrow(_STATS))["n_live_tup"]
    inserted = int(live * SHARE * 2) + 2 * FLOOR  # well past the trigger
    segment_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO segment_members (segment_id, contact_id, account_id)
           SELECT $1, gen_random_uuid(), $2 FROM generate_series(1, $3)""",
        segment_id,
        account_id,
        inserted,
    )
    try:

        async def counted() -> bool:
            return bool((await conn.fetchrow(_STATS))["n_mod_since_analyze"] >= inserted)

        await wait_for(counted)  # the statistics collector has seen the inserts
        assert not await statistics.keep_fresh(conn)  # checked less than 2 s ago
        clock.now += 2
        before = (await conn.fetchrow(_STATS))["last_analyze"]
        analyses = _analyses()
        assert await statistics.keep_fresh(conn)
        assert _analyses() == analyses + 1
        after = await conn.fetchrow(_STATS)
        assert after["last_analyze"] is not None and after["last_analyze"] != before
        assert after["n_mod_since_analyze"] < inserted
        clock.now += 2
        assert not await statistics.keep_fresh(conn)  # fresh now
    finally:
        await conn.execute("DELETE FROM segment_members WHERE segment_id = $1", segment_id)


async def test_a_change_past_the_floor_but_below_the_share_is_left_to_autovacuum(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    """The share counts: a change of a large table past the floor alone is no jump (a share
    sent as an integer made every 10,000 moved members an analyse)."""
    statistics = MemberStatistics(interval_s=0, clock=Clock())
    bulk, changed = uuid.uuid4(), uuid.uuid4()

    async def insert(segment_id: uuid.UUID, rows: int) -> None:
        await conn.execute(
            """INSERT INTO segment_members (segment_id, contact_id, account_id)
               SELECT $1, gen_random_uuid(), $2 FROM generate_series(1, $3)""",
            segment_id,
            account_id,
            rows,
        )

    async def modified_at_least(rows: int) -> bool:
        return bool((await conn.fetchrow(_STATS))["n_mod_since_analyze"] >= rows)

    await insert(bulk, 200_000)
    try:
        await conn.execute("ANALYZE segment_members")
        live = (await conn.fetchrow(_STATS))["n_live_tup"]
        below = FLOOR + int(live * SHARE / 2)  # past the floor, half the share
        await insert(changed, below)
        await wait_for(functools.partial(modified_at_least, below))
        analyses = _analyses()
        assert not await statistics.keep_fresh(conn)
        assert _analyses() == analyses
        await insert(changed, int(live * SHARE))  # now past both
        await wait_for(functools.partial(modified_at_least, below + int(live * SHARE)))
        assert await statistics.keep_fresh(conn)
    finally:
        await conn.execute(
            "DELETE FROM segment_members WHERE segment_id = ANY($1::uuid[])", [bulk, changed]
        )


def _analyses() -> float:
    return REGISTRY.get_sample_value("segments_member_statistics_analyses_total") or 0.0
