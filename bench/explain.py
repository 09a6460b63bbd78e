"""Explaining one contact on the 1M-contact account: the explain statement (every node's
verdict, the universe and the event counts: worker.compiler.compile_explain) and the observed
values (worker.observed), side by side with the verdict alone (matching_among of one contact,
what an incremental update runs). Read-only: no segment row is written.

    .venv/bin/python -m bench.explain --contacts 200
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from bench.common import ACCOUNT_BIG, DEFAULT_DSN, list_id
from worker.compiler import SegmentQuery, compile_explain, compile_matching_among
from worker.db import Conn, connect
from worker.explain_contact import preorder
from worker.observed import load_contact_data
from worker.rules import ActivityCondition, FieldRegistry, parse_rules

# Nested rules of every kind but `segment` (the bench data has no materialised segments).
RULES: dict[str, Any] = {
    "all": [
        {"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"},
        {
            "any": [
                {"kind": "activity", "metric": "open", "operator": "count_gte", "value": 2,
                 "days_window": {"mode": "last", "days": 30}},
                {"kind": "activity", "metric": "click", "operator": "ever"},
                {"kind": "field", "field": "tags", "operator": "has_any", "value": ["vip"]},
            ]
        },
        {"not": {"kind": "membership", "operator": "in",
                 "list_ids": [str(list_id(ACCOUNT_BIG, "blocklist"))]}},
        {"not": {"kind": "deliverability", "metric": "bounce", "operator": "ever"}},
        {"kind": "field", "field": "opens_count", "operator": "gte", "value": 1},
        {"kind": "isp", "operator": "not_in", "values": [3]},
    ]
}  # fmt: skip


async def _timed(run: Awaitable[Any]) -> float:
    """Seconds to await `run` (a coroutine does nothing until awaited)."""
    start = time.perf_counter()
    await run
    return time.perf_counter() - start


def _row(name: str, times: list[float], base: float) -> str:
    times = sorted(times)
    median, p90 = times[len(times) // 2], times[int(len(times) * 0.9)]
    return f"| {name} | {median * 1000:.2f} | {p90 * 1000:.2f} | {median / base:.2f}x |"


async def measure(conn: Conn, contacts: int) -> list[str]:
    tree = parse_rules("v2", RULES, FieldRegistry.from_declarations({}))
    universe = (list_id(ACCOUNT_BIG, "all"),)
    query = SegmentQuery(ACCOUNT_BIG, tree, universe, datetime.now(UTC))
    nodes = list(preorder(tree.root))
    counted = [c for c in tree.conditions() if isinstance(c, ActivityCondition)]
    ids: list[UUID] = [
        r[0]
        for r in await conn.fetch(
            "SELECT id FROM contacts WHERE account_id = $1 ORDER BY md5(id::text) LIMIT $2",
            ACCOUNT_BIG,
            contacts,
        )
    ]
    verdict, explain, observed = [], [], []
    for contact in ids:
        alone = compile_matching_among(query, [contact])
        both = compile_explain(query, nodes, counted, contact)
        verdict.append(await _timed(conn.fetch(alone.sql, *alone.params)))
        explain.append(await _timed(conn.fetch(both.sql, *both.params)))
        data = load_contact_data(conn, ACCOUNT_BIG, contact, tree.conditions(), {})
        observed.append(await _timed(data))
    base = sorted(verdict)[len(verdict) // 2]
    return [
        f"{len(ids)} contacts, {len(nodes)} nodes, {len(counted)} event counts",
        "",
        "| statement | median ms | p90 ms | median vs verdict alone |",
        "|---|---:|---:|---:|",
        _row("verdict alone (matching_among, one contact)", verdict, base),
        _row("explain statement (every node, universe, counts)", explain, base),
        _row("observed values (worker.observed)", observed, base),
    ]


async def main_async(dsn: str, contacts: int) -> None:
    conn = await connect(dsn)
    try:
        print("\n".join(await measure(conn, contacts)))
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    args = parser.parse_args()
    asyncio.run(main_async(args.dsn, args.contacts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
