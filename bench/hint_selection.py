"""What change hints select among 1,000 live segments of mixed kinds, and what selecting costs.

    .venv/bin/python -m bench.hint_selection --dsn postgresql://postgres@127.0.0.1:5432/DB \\
        --segments 1000

In a database of bench.gen_data (its big account; segments are written, so a database of its
own): N live segments, `mixed_shape(i)`, no two alike (the seven kinds of
bench.worker_bench.change_shape, each with values of its own). Then, for the hints the shim
sends (a field update, events, list changes) and for none: how many segments a batch
re-evaluates, and the time worker.dependencies takes to select them, the first time (every
segment's rules parsed) and then (cached, one query), median of --runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench.common import ACCOUNT_BIG, DEFAULT_DSN, list_id
from bench.worker_bench import change_shape
from worker.db import connect
from worker.dependencies import SegmentReads
from worker.hints import Hints

HINTS: dict[str, Hints | None] = {
    "fields: country, updated_at": Hints(fields=frozenset({"country", "updated_at"})),
    "fields: status, updated_at": Hints(fields=frozenset({"status", "updated_at"})),
    "events: open": Hints(events=frozenset({"open"})),
    "events: bounce": Hints(events=frozenset({"bounce"})),
    "lists": Hints(lists=True),
    "none (anything)": None,
}


def mixed_shape(i: int) -> tuple[dict[str, Any], list[str]]:
    """Segment i's rules and universe: change_shape(i)'s kind and values, made unique by a
    value of its own (an extra country, tag, day count or status), and a universe of lists
    for two segments in three (the others draw from all contacts, as v1 and simple ones do)."""
    rules = change_shape(i, ACCOUNT_BIG)
    for condition in (c for group in rules["any"] for c in group["all"]):
        value = condition.get("value")
        if isinstance(value, list):
            condition["value"] = [*value, f"unique-{i}"]
        elif isinstance(value, str):
            condition["value"] = f"{value}-{i}"
        if "days_window" in condition:
            condition["days_window"] = {"mode": "last", "days": 1 + i}
    universe = [str(list_id(ACCOUNT_BIG, "all"))] if i % 3 else []
    return rules, universe


async def run(args: argparse.Namespace) -> None:
    conn = await connect(args.dsn)
    await conn.execute("DELETE FROM segments WHERE name = 'bench.hint_selection'")
    shapes = [mixed_shape(i) for i in range(args.segments)]
    distinct = {repr(s) for s in shapes}
    await conn.executemany(
        """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids, status,
               total_count, built_generation)
           VALUES ($1, 'bench.hint_selection', 'v2', $2, $3::uuid[], 'DONE', 0, 1)""",
        [(ACCOUNT_BIG, rules, universe) for rules, universe in shapes],
    )
    live = await conn.fetchval(
        "SELECT count(*) FROM segments WHERE account_id = $1 AND status = 'DONE'", ACCOUNT_BIG
    )
    print(f"{args.segments} segments written ({len(distinct)} distinct), {live} live\n")
    print("| hints | segments evaluated | skipped | select, first (ms) | select, cached (ms) |")
    print("|---|---:|---:|---:|---:|")
    for label, hints in HINTS.items():
        reads = SegmentReads()
        started = time.perf_counter()
        selection = await reads.select(conn, ACCOUNT_BIG, hints)
        first = time.perf_counter() - started
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            await reads.select(conn, ACCOUNT_BIG, hints)
            times.append(time.perf_counter() - started)
        print(
            f"| {label} | {len(selection.segment_ids)} | {selection.skipped} | "
            f"{first * 1000:,.1f} | {statistics.median(times) * 1000:,.1f} |"
        )
    await conn.execute("DELETE FROM segments WHERE name = 'bench.hint_selection'")
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="a database of its own")
    parser.add_argument("--segments", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
