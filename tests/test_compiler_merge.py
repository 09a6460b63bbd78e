"""OR-ed single "has such an event" groups share one scan of the events (`type = ANY`) and
still mean exactly what the reference evaluator says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.reference_db import reference_members
from worker.compiler import SegmentQuery, compile_count, compile_member_ids
from worker.rules import FieldRegistry, parse_v2_rules


def _ever(metric: str, kind: str = "deliverability", days: int | None = None) -> dict[str, object]:
    condition: dict[str, object] = {"kind": kind, "metric": metric, "operator": "ever"}
    if days is not None:
        condition["days_window"] = {"mode": "last", "days": days}
    return condition


async def test_bounced_or_complained_reads_events_once_and_matches_the_reference(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    now = datetime.now(UTC)
    for i, (kind, age) in enumerate(
        [("bounce", 1), ("complaint", 2), ("open", 1), ("bounce", 40), (None, 0), ("click", 3)]
    ):
        contact = await conn.fetchval(
            "INSERT INTO contacts (account_id, email, status) VALUES ($1, $2, 'subscribed')"
            " RETURNING id",
            account_id,
            f"m{i}@example.com",
        )
        if kind:
            await conn.execute(
                "INSERT INTO events (account_id, contact_id, type, occurred_at)"
                " VALUES ($1, $2, $3, $4)",
                account_id,
                contact,
                kind,
                now - timedelta(days=age),
            )
    rules = {
        "any": [
            {"all": [_ever("bounce", days=30)]},
            {"all": [_ever("complaint", days=30)]},
            {"all": [_ever("click", kind="activity")]},  # another window: another alternative
        ]
    }
    tree = parse_v2_rules(rules, FieldRegistry.builtin_only())
    query = SegmentQuery(account_id, tree, (), now)
    compiled = compile_member_ids(query)
    assert compiled.sql.count("FROM events e") == 1
    assert "e.type = ANY(" in compiled.sql
    expected = await reference_members(conn, account_id, "v2", rules)
    got = {r[0] for r in await conn.fetch(compiled.sql, *compiled.params)}
    assert got == expected
    assert len(expected) == 3  # the recent bounce, the complaint, the click
    count = compile_count(query)
    assert await conn.fetchval(count.sql, *count.params) == 3
