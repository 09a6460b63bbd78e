"""The chaos checker's feed check (bench/chaos_feeds.py) against real PostgreSQL: a segment
built and changed by the service's own code passes it; each planted inconsistency between
the feed and the members (a change nobody recorded, one recorded that did not happen, a
duplicate or missing seq, a counter that disagrees, a wrong initial count) is caught. And the
checker's copy kept from membership.changed messages (bench/chaos_messages.py)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from bench.chaos_feeds import Baseline, Item, feed_violations, read_feeds, take_baselines
from bench.chaos_messages import MessageCopy
from tests.test_membership_changes import build, country, set_country
from tests.worker_support import save_segment, seed_contacts
from worker.changes import apply_changes

# Each plant: SQL on ($1 account, $2 segment, $3 a contact that is a member, $4 one that is
# not), and what the check must then say.
_ROW = """INSERT INTO segment_membership_changes
    (account_id, segment_id, seq_first, seq_last, entered, left_ids, cause, generation, at)"""
PLANTS = {
    "a member removed, unrecorded": (
        "DELETE FROM segment_members WHERE account_id = $1 AND segment_id = $2"
        " AND contact_id = $3 AND $4::uuid IS NOT NULL",
        "disagrees with its members",
    ),
    "a member added, unrecorded": (
        "INSERT INTO segment_members (account_id, segment_id, contact_id)"
        " SELECT $1, $2, $4 WHERE $3::uuid IS NOT NULL",
        "disagrees with its members",
    ),
    "a departure recorded that did not happen": (
        f"""WITH f AS (UPDATE segment_change_feeds SET last_seq = last_seq + 1
                       WHERE account_id = $1 AND segment_id = $2 RETURNING last_seq)
            {_ROW} SELECT $1, $2, last_seq, last_seq, '{{}}', ARRAY[$3::uuid], 'data', 1, now()
            FROM f WHERE $4::uuid IS NOT NULL""",
        "disagrees with its members",
    ),
    "an entry of a contact already a member": (
        f"""WITH f AS (UPDATE segment_change_feeds SET last_seq = last_seq + 2
                       WHERE account_id = $1 AND segment_id = $2 RETURNING last_seq)
            {_ROW} SELECT $1, $2, last_seq - 1, last_seq, ARRAY[$3::uuid, $4::uuid], '{{}}',
                          'data', 1, now() FROM f""",
        "impossible changes",
    ),
    "a seq given twice": (
        f"""{_ROW} SELECT $1, $2, last_seq, last_seq + 1, ARRAY[$4::uuid], ARRAY[$4::uuid],
                          'data', 1, now()
            FROM segment_change_feeds WHERE account_id = $1 AND segment_id = $2
              AND $3::uuid IS NOT NULL""",
        "(a duplicate)",
    ),
    "a seq missing": (
        """WITH f AS (UPDATE segment_change_feeds SET last_seq = last_seq + 1
                      WHERE account_id = $1 AND segment_id = $2)
           UPDATE segment_membership_changes SET seq_first = seq_first + 1,
                  seq_last = seq_last + 1
           WHERE account_id = $1 AND segment_id = $2 AND seq_first = 2
             AND $3::uuid IS NOT NULL AND $4::uuid IS NOT NULL""",
        "a gap after",
    ),
    "the counter ahead of the feed": (
        "UPDATE segment_change_feeds SET last_seq = last_seq + 1"
        " WHERE account_id = $1 AND segment_id = $2"
        " AND $3::uuid IS NOT NULL AND $4::uuid IS NOT NULL",
        "counter at",
    ),
    "a wrong initial count": (
        "UPDATE segment_membership_changes SET total_count = total_count + 1"
        " WHERE account_id = $1 AND segment_id = $2 AND seq_first = 1"
        " AND $3::uuid IS NOT NULL AND $4::uuid IS NOT NULL",
        "initial total_count",
    ),
}


async def _consistent_segment(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> tuple[dict[str, Any], dict[uuid.UUID, Baseline], list[uuid.UUID]]:
    """A segment built, its baseline taken, then changed by data (two in, one out)."""
    ids = await seed_contacts(conn, account_id, [{"country": "nl"}] * 3 + [{"country": "de"}] * 3)
    segment = await save_segment(conn, account_id, country("nl"))
    assert await take_baselines(conn, account_id) is None  # not built yet: no feed
    await build(conn, segment)
    baselines = await take_baselines(conn, account_id)
    assert baselines is not None and baselines[segment["id"]].members == frozenset(ids[:3])
    await set_country(conn, [ids[0]], "de")
    await set_country(conn, ids[3:5], "nl")
    await apply_changes(conn, account_id, ids, statement_timeout_ms=60_000)
    return segment, baselines, ids


async def test_the_service_s_own_feed_passes(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    segment, baselines, _ = await _consistent_segment(conn, account_id)
    assert feed_violations(await read_feeds(conn, account_id), baselines) == []
    # A rules change's build moves all but one, and records it consistently.
    segment["generation"] = await conn.fetchval(
        """UPDATE segments SET rules = $2, generation = generation + 1, status = 'PENDING'
           WHERE id = $1 RETURNING generation""",
        segment["id"],
        country("de"),
    )
    assert (await build(conn, segment, "updated")).outcome == "done"
    assert (
        await conn.fetchval(
            "SELECT last_seq FROM segment_change_feeds WHERE segment_id = $1", segment["id"]
        )
        == 1 + 3 + 6
    )  # the initial item, the data change's three, the rules change's six
    assert feed_violations(await read_feeds(conn, account_id), baselines) == []


@pytest.mark.parametrize("plant", sorted(PLANTS))
async def test_a_planted_inconsistency_is_caught(
    conn: asyncpg.Connection, account_id: uuid.UUID, plant: str
) -> None:
    segment, baselines, ids = await _consistent_segment(conn, account_id)
    sql, expected = PLANTS[plant]
    # ids[1] is a member throughout; ids[5] never is.
    status = await conn.execute(sql, account_id, segment["id"], ids[1], ids[5])
    assert not status.endswith(" 0"), f"the plant changed nothing: {status}"
    problems = feed_violations(await read_feeds(conn, account_id), baselines)
    assert any(expected in p for p in problems), problems


def test_the_message_copy_skips_repeats_and_reports_gaps_and_differences() -> None:
    """bench/chaos_messages.py on crafted messages: a repeat changes nothing; a gap and an
    item that differs from the feed are each reported."""
    segment, a, b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    baselines = {segment: Baseline("s", 1, frozenset())}
    initial = {"segment_id": str(segment), "seq_first": 1, "seq_last": 1, "initial": True,
               "total_count": 0}  # fmt: skip
    moved = {"segment_id": str(segment), "seq_first": 2, "seq_last": 3, "entered": [str(a)],
             "left": [str(b)]}  # fmt: skip
    feed = [Item(1, "initial", total_count=0), Item(2, "entered", a), Item(3, "left", b)]

    copy = MessageCopy()
    for body in (initial, moved, initial, moved):  # at least once: each twice
        copy.apply(body)
    assert copy.violations(baselines, {segment: feed}) == []
    assert copy.violations(baselines, {segment: [*feed, Item(4, "entered", b)]})  # one missing
    wrong = [feed[0], Item(2, "entered", b), feed[2]]
    assert "first difference at seq 2" in copy.violations(baselines, {segment: wrong})[0]

    gapped = MessageCopy()
    for body in (initial, {**moved, "seq_first": 3, "seq_last": 4}):
        gapped.apply(body)
    assert any("(a gap)" in p for p in gapped.violations(baselines, {})), gapped.problems
