"""The benchmark's live segments checked against the tests' reference evaluator
(tests/reference.py, which shares no code with the compiler) on a random sample of the
account's contacts: a benchmark of wrong answers would measure nothing.

A time window moves while the check runs, so a contact whose event sits on a window's edge
may differ between when its membership was written and now: a contact is reported only if
the reference disagrees with its membership at both moments (the segment's `built_clock_at`, its
last full evaluation, and now).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import asyncpg

from bench.chaos_check import IndexedEvaluator
from tests.reference_db import load_data


async def sample_disagreements(
    conn: asyncpg.Connection,
    account: uuid.UUID,
    segment_ids: list[uuid.UUID],
    contacts: int = 300,
    seed: int = 0,
) -> list[str]:
    """For `contacts` random contacts of the account, every segment's membership against the
    reference's verdict; one line per segment that disagrees."""
    ids = [r[0] for r in await conn.fetch("SELECT id FROM contacts WHERE account_id = $1", account)]
    sample = random.Random(seed).sample(ids, min(contacts, len(ids)))
    data = await load_data(conn, account, sample)
    now = datetime.now(UTC)
    members: dict[uuid.UUID, set[uuid.UUID]] = {}
    for r in await conn.fetch(
        """SELECT segment_id, contact_id FROM segment_members
           WHERE account_id = $1 AND segment_id = ANY($2::uuid[]) AND contact_id = ANY($3)""",
        account,
        segment_ids,
        sample,
    ):
        members.setdefault(r["segment_id"], set()).add(r["contact_id"])
    problems = []
    for row in await conn.fetch(
        """SELECT id, dialect, rules, contact_list_ids, timezone, built_clock_at FROM segments
           WHERE account_id = $1 AND id = ANY($2::uuid[]) ORDER BY id""",
        account,
        segment_ids,
    ):
        have = members.get(row["id"], set())
        wants = [
            IndexedEvaluator(data, account, moment, timezone=row["timezone"]).members(
                row["dialect"], row["rules"], row["contact_list_ids"]
            )
            for moment in (now, row["built_clock_at"] or now)
        ]
        now_wrong, built_wrong = have ^ wants[0], have ^ wants[1]
        wrong = now_wrong & built_wrong  # a contact right at either moment is right
        if wrong:
            problems.append(
                f"segment {row['id']}: {len(wrong & have)} of the sample too many,"
                f" {len(wrong - have)} missing"
            )
    return problems
