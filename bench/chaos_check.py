"""The chaos suite's history checker (bench/chaos.py): once the system has settled, is the
final state one the recorded history allows?

- every acknowledged write is present (chaos_history.py's register rule; acknowledged events
  exist);
- every segment is DONE at its current generation, and its members and total_count are what
  the tests' reference evaluator (tests/reference.py, which shares no code with the compiler)
  finds on the final data, so every acknowledged contact.changed was applied;
- every segment's membership-change feed, replayed from its baseline, gives its members
  (chaos_feeds.py), and the membership.changed messages brought exactly the feed's items
  (chaos_messages.py);
- nothing waits: the outbox is sent, no message is left in a work or dead-letter queue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.chaos_feeds import Baseline, feed_violations, read_feeds
from bench.chaos_history import History, register_violations
from bench.chaos_messages import MessageCopy
from bench.chaos_workload import DIRECT_FIELDS, FIELDS, Account
from tests.reference import Contact, Data, Evaluator, Event
from tests.reference_db import load_data

_COLUMNS = {"status", "country", "tags", "isp_id", *DIRECT_FIELDS}


async def final_registers(conn: asyncpg.Connection, account: Account) -> dict[tuple[Any, ...], Any]:
    final: dict[tuple[Any, ...], Any] = {}
    rows = await conn.fetch(
        "SELECT email, status, country, city, tags, isp_id, attributes FROM contacts"
        " WHERE account_id = $1",
        account.account_id,
    )
    for row in rows:
        for name in _COLUMNS:
            value = row[name]
            final[("contact", row["email"], name)] = sorted(value) if name == "tags" else value
        attributes = row["attributes"] or {}
        for name in FIELDS:
            final[("contact", row["email"], name)] = attributes.get(name)
    for row in await conn.fetch(
        "SELECT c.email, m.list_id FROM contact_list_members m JOIN contacts c"
        " ON c.account_id = m.account_id AND c.id = m.contact_id WHERE m.account_id = $1",
        account.account_id,
    ):
        final[("member", row["email"], row["list_id"])] = True
    for email in account.emails:
        for list_id in account.lists[1:]:
            final.setdefault(("member", email, list_id), False)
    names = {v: k for k, v in account.segments.items()}
    for row in await conn.fetch(
        "SELECT id, rules FROM segments WHERE account_id = $1", account.account_id
    ):
        final[("rules", names.get(row["id"]))] = row["rules"]
    return final


async def missing_events(conn: asyncpg.Connection, account: Account, history: History) -> list[str]:
    stored = {
        (r["contact_id"], r["type"], r["occurred_at"])
        for r in await conn.fetch(
            "SELECT contact_id, type, occurred_at FROM events WHERE account_id = $1",
            account.account_id,
        )
    }
    return [
        f"lost event: {kind} of {email} at {at.isoformat()}"
        for email, kind, at, write in history.events
        if write.acked and (account.contact_ids[email], kind, at) not in stored
    ]


class IndexedEvaluator(Evaluator):
    """The reference evaluator with its two lookups indexed by contact: the same answers,
    in time linear in the data rather than quadratic (it was written for the property
    tests' dozen contacts; a chaos run has thousands)."""

    def __init__(self, data: Data, account_id: uuid.UUID, *args: Any, **kwargs: Any) -> None:
        super().__init__(data, account_id, *args, **kwargs)
        self._lists: dict[uuid.UUID, set[uuid.UUID]] = {}
        for m in data.members:
            if m.account_id == account_id:
                self._lists.setdefault(m.contact_id, set()).add(m.list_id)
        self._events: dict[tuple[uuid.UUID, str], list[Event]] = {}
        for e in data.events:
            if e.account_id == account_id:
                self._events.setdefault((e.contact_id, e.type), []).append(e)

    def lists_of(self, contact: Contact) -> set[uuid.UUID]:
        return self._lists.get(contact.id, set())

    def events_of(self, contact: Contact, event_type: str) -> list[Event]:
        return list(self._events.get((contact.id, event_type), []))


async def membership_violations(conn: asyncpg.Connection, account: Account) -> list[str]:
    data = await load_data(conn, account.account_id)
    now = datetime.now(UTC)
    rows = await conn.fetch(
        """SELECT id, name, dialect, rules, contact_list_ids, status, generation,
                  built_generation, total_count, timezone
           FROM segments WHERE account_id = $1""",
        account.account_id,
    )
    by_id = {r["id"]: r for r in rows}
    expected: dict[uuid.UUID, set[uuid.UUID]] = {}

    def reference(segment_id: uuid.UUID) -> set[uuid.UUID]:
        if segment_id not in expected:
            row = by_id[segment_id]
            for named in _referenced(row["rules"]):
                reference(named)
            evaluator = IndexedEvaluator(
                data, account.account_id, now, segment_members=expected, timezone=row["timezone"]
            )
            expected[segment_id] = evaluator.members(
                row["dialect"], row["rules"], row["contact_list_ids"]
            )
        return expected[segment_id]

    problems = []
    for row in rows:
        name = row["name"]
        if row["status"] != "DONE" or row["built_generation"] != row["generation"]:
            problems.append(
                f"segment {name} not settled: {row['status']} built"
                f" {row['built_generation']} of generation {row['generation']}"
            )
            continue
        want = reference(row["id"])
        have = {
            r["contact_id"]
            for r in await conn.fetch(
                "SELECT contact_id FROM segment_members WHERE account_id = $1 AND segment_id = $2",
                account.account_id,
                row["id"],
            )
        }
        if have != want:
            problems.append(
                f"wrong membership: segment {name} has {len(have - want)} contacts too many"
                f" and misses {len(want - have)} (examples: {_examples(have ^ want)})"
            )
        if row["total_count"] != len(want):
            problems.append(f"segment {name}: total_count {row['total_count']} != {len(want)}")
    return problems


def _referenced(rules: Any) -> list[uuid.UUID]:
    """The segment ids a rule tree names (its `segment` conditions)."""
    text = json.dumps(rules)
    found: list[uuid.UUID] = []
    if '"segment_ids"' not in text:
        return found

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if node.get("kind") == "segment":
                found.extend(uuid.UUID(str(i)) for i in node["segment_ids"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(rules)
    return found


def _examples(ids: set[uuid.UUID]) -> str:
    return ", ".join(str(i) for i in sorted(ids, key=str)[:3])


async def backlog(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
    return count


async def check(
    database_url: str,
    account: Account,
    history: History,
    queues: Mapping[str, int],
    baselines: Mapping[uuid.UUID, Baseline],
    copy: MessageCopy,
) -> list[str]:
    """Every violation of the final state (empty: the history holds)."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        await conn.execute("SET TimeZone = 'UTC'")
        problems = register_violations(history, await final_registers(conn, account), {})
        problems += await missing_events(conn, account, history)
        problems += [f"rejected valid write: {r}" for r in history.rejected]
        problems += await membership_violations(conn, account)
        feeds = await read_feeds(conn, account.account_id)
        problems += feed_violations(feeds, baselines)
        problems += copy.violations(baselines, feeds.items)
        if unsent := await backlog(conn):
            problems.append(f"outbox: {unsent} rows never sent")
    finally:
        await conn.close()
    problems += [
        f"{depth} messages left in {name}" for name, depth in sorted(queues.items()) if depth
    ]
    return problems


def dead_letters(queues: Mapping[str, int]) -> int:
    return sum(depth for name, depth in queues.items() if name.endswith(".dlq"))
