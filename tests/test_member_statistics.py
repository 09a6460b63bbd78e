"""segment_members is analysed before a change batch once much of it changed (first builds),
not a minute later by autovacuum (worker.member_statistics)."""

from __future__ import annotations

import uuid

import asyncpg

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
        assert await statistics.keep_fresh(conn)
        after = await conn.fetchrow(_STATS)
        assert after["last_analyze"] is not None and after["last_analyze"] != before
        assert after["n_mod_since_analyze"] < inserted
        clock.now += 2
        assert not await statistics.keep_fresh(conn)  # fresh now
    finally:
        await conn.execute("DELETE FROM segment_members WHERE segment_id = $1", segment_id)
