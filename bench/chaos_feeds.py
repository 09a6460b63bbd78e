"""The chaos checker's check of the membership-change feeds (docs/changes.md): for every
segment, the feed replayed from the members the segment had at a known seq (its baseline,
read by the suite once the first builds are done, before any write) gives the members it has
now; every `entered` is of a non-member and every `left` of a member; seqs go 1, 2, 3, ...
(no duplicate, no gap, never back) up to the segment's counter; the first item, and only it,
is the `initial` one, and when the baseline is at it, its `total_count` is the number of
members the first build found.

It reads the feed's table (sql/011) and unnests the rows here rather than through the
service's reader (worker/membership_feed.py), as the membership check shares no code with
the compiler: a bug in the service's reading must not hide one in its writing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

EXAMPLES = 3  # problems of one kind shown per segment; the rest are counted


@dataclass(frozen=True)
class Item:
    seq: int
    change: str  # "initial", "entered" or "left"
    contact_id: uuid.UUID | None = None
    total_count: int | None = None


@dataclass(frozen=True)
class Baseline:
    """A segment's members when its feed's last seq was `seq` (one snapshot of both)."""

    name: str
    seq: int
    members: frozenset[uuid.UUID]


def unnest(row: Mapping[str, Any] | asyncpg.Record) -> list[Item]:
    """One feed row as items: the initial row is one item; a change row's `entered` take
    seq_first onwards in array order, then its `left_ids` (sql/011)."""
    if row["total_count"] is not None:
        return [Item(row["seq_first"], "initial", total_count=row["total_count"])]
    moved = [("entered", c) for c in row["entered"]] + [("left", c) for c in row["left_ids"]]
    return [Item(row["seq_first"] + i, change, c) for i, (change, c) in enumerate(moved)]


def _seq_problems(name: str, items: list[Item], last_seq: int | None) -> list[str]:
    problems = []
    previous = 0
    for item in items:
        if item.seq != previous + 1:
            what = "a duplicate" if item.seq == previous else (
                "going back" if item.seq < previous else f"a gap after {previous}"
            )  # fmt: skip
            problems.append(f"feed of {name}: seq {item.seq} after {previous} ({what})")
            break
        previous = item.seq
    if not items or items[0].change != "initial":
        problems.append(f"feed of {name}: does not start with its initial item")
    if later := [i.seq for i in items[1:] if i.change == "initial"]:
        problems.append(f"feed of {name}: another initial item at seq {later[0]}")
    if last_seq != (items[-1].seq if items else None):
        shown = items[-1].seq if items else None
        problems.append(f"feed of {name}: counter at {last_seq}, last item at seq {shown}")
    return problems


def feed_problems(
    baseline: Baseline, items: list[Item], last_seq: int | None, members: Iterable[uuid.UUID]
) -> list[str]:
    """Whatever in one segment's feed (its items in seq order, its counter) contradicts its
    members now, replayed from its baseline (empty: consistent)."""
    name = baseline.name
    problems = _seq_problems(name, items, last_seq)
    first = items[0] if items else None
    at_initial = baseline.seq == 1 and first is not None and first.change == "initial"
    if at_initial and first is not None and first.total_count != len(baseline.members):
        problems.append(
            f"feed of {name}: initial total_count {first.total_count},"
            f" but the first build made {len(baseline.members)} members"
        )
    state: set[uuid.UUID | None] = set(baseline.members)
    impossible: list[str] = []
    for item in items:
        if item.seq <= baseline.seq or item.change == "initial":
            continue
        member = item.contact_id in state
        if (item.change == "entered") == member:
            was = "a member" if member else "not a member"
            impossible.append(f"seq {item.seq} {item.contact_id} {item.change} but was {was}")
        if item.change == "entered":
            state.add(item.contact_id)
        else:
            state.discard(item.contact_id)
    if impossible:
        shown = "; ".join(impossible[:EXAMPLES])
        problems.append(f"feed of {name}: {len(impossible)} impossible changes ({shown})")
    have: set[uuid.UUID | None] = set(members)
    if state != have:
        odd = sorted(state ^ have, key=str)[:EXAMPLES]
        problems.append(
            f"feed of {name} disagrees with its members: replayed from seq {baseline.seq} it"
            f" has {len(state - have)} contacts too many and misses {len(have - state)}"
            f" (examples: {', '.join(map(str, odd))})"
        )
    return problems


async def take_baselines(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> dict[uuid.UUID, Baseline] | None:
    """Every segment's members and last seq, in one snapshot; None while a segment of the
    account has not finished its first build (it has no feed yet)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        segments = await conn.fetch(
            """SELECT s.id, s.name, f.last_seq FROM segments s
               LEFT JOIN segment_change_feeds f ON f.account_id = s.account_id
                                               AND f.segment_id = s.id
               WHERE s.account_id = $1""",
            account_id,
        )
        if any(r["last_seq"] is None for r in segments):
            return None
        members = await _members(conn, account_id)
    return {
        r["id"]: Baseline(r["name"], r["last_seq"], frozenset(members.get(r["id"], ())))
        for r in segments
    }


async def _members(conn: asyncpg.Connection, account_id: uuid.UUID) -> dict[uuid.UUID, set[Any]]:
    members: dict[uuid.UUID, set[Any]] = {}
    for r in await conn.fetch(
        "SELECT segment_id, contact_id FROM segment_members WHERE account_id = $1", account_id
    ):
        members.setdefault(r["segment_id"], set()).add(r["contact_id"])
    return members


@dataclass(frozen=True)
class Feeds:
    """An account's feeds, counters and members, read in one snapshot."""

    items: dict[uuid.UUID, list[Item]]
    counters: dict[uuid.UUID, int]
    members: dict[uuid.UUID, set[Any]]


async def read_feeds(conn: asyncpg.Connection, account_id: uuid.UUID) -> Feeds:
    """One snapshot: the service may still be writing, and each of its transactions changes
    members, feed and counter together."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(
            """SELECT segment_id, seq_first, seq_last, total_count, entered, left_ids
               FROM segment_membership_changes WHERE account_id = $1
               ORDER BY segment_id, seq_first, seq_last""",
            account_id,
        )
        counters = {
            r["segment_id"]: r["last_seq"]
            for r in await conn.fetch(
                "SELECT segment_id, last_seq FROM segment_change_feeds WHERE account_id = $1",
                account_id,
            )
        }
        members = await _members(conn, account_id)
    items: dict[uuid.UUID, list[Item]] = {}
    for row in rows:
        items.setdefault(row["segment_id"], []).extend(unnest(row))
    return Feeds(items, counters, members)


def feed_violations(feeds: Feeds, baselines: Mapping[uuid.UUID, Baseline]) -> list[str]:
    """feed_problems of every segment with a baseline."""
    problems = []
    for segment_id, baseline in baselines.items():
        problems += feed_problems(
            baseline,
            feeds.items.get(segment_id, []),
            feeds.counters.get(segment_id),
            feeds.members.get(segment_id, set()),
        )
    return problems
