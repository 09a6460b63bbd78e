"""Where one change batch's time goes, statement by statement: compiling (Python), planning
and executing (PostgreSQL, from EXPLAIN ANALYZE), and the round trip as a whole (the rest is
parsing the statement's text and moving it).

    .venv/bin/python -m bench.batch_profile --messages 10 --per-message 100

On the live segments of bench.worker_bench's 100k-contact account (`--reuse` leaves 1,000
of them): `--messages` contact.changed of `--per-message` random contacts each, with the
hints of the mixed workload in turn (a field update, events, a list change), planned as the
worker plans a batch (worker.dependencies), each statement run in a transaction that is
rolled back. Nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time
from datetime import UTC, datetime

from bench.common import ACCOUNT_SMALL, DEFAULT_DSN
from worker.changes import change_statements, limit_change_statement
from worker.db import connect
from worker.dependencies import SegmentReads
from worker.hints import Hints
from worker.store import SegmentRules, load_registry

_FIELDS = ("status", "country", "tags")
_EVENTS = ("open", "click", "bounce")


def mixed_hints(turn: int) -> Hints:
    """The hint of bench.worker_bench's mixed write number `turn`."""
    kind, which = turn % 3, turn // 3
    if kind == 0:
        return Hints(fields=frozenset({_FIELDS[which % 3], "updated_at"}))
    if kind == 1:
        return Hints(events=frozenset({_EVENTS[which % 3]}))
    return Hints(lists=True)


def _ms(label: str, text: str) -> float:
    found = re.search(label + r" Time: ([\d.]+)", text)
    return float(found.group(1)) if found else float("nan")


async def run(args: argparse.Namespace) -> None:
    conn = await connect(args.dsn)
    ids = [
        r[0]
        for r in await conn.fetch("SELECT id FROM contacts WHERE account_id = $1", ACCOUNT_SMALL)
    ]
    rng = random.Random(args.seed)
    changes = [(mixed_hints(i), rng.sample(ids, args.per_message)) for i in range(args.messages)]
    plan = await SegmentReads().plan(conn, ACCOUNT_SMALL, changes)
    registry = await load_registry(conn, ACCOUNT_SMALL)
    now = datetime.now(UTC)
    print(
        f"{len(plan.work)} statements, {plan.evaluated} segments evaluated, "
        f"{plan.skipped} skipped, {plan.pairs:,} contact-segment pairs\n"
    )
    print("| segments | contacts | compile ms | plan ms | execute ms | round trip ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    totals = [0.0, 0.0, 0.0, 0.0]
    for work in plan.work:
        rows = await conn.fetch(
            """SELECT id, account_id, generation, dialect, rules, contact_list_ids, timezone
               FROM segments WHERE account_id = $1 AND id = ANY($2::uuid[]) ORDER BY id""",
            ACCOUNT_SMALL,
            work.segment_ids,
        )
        started = time.perf_counter()
        queries = [(r["id"], SegmentRules.from_row(r).query(registry, now)) for r in rows]
        statements = change_statements(queries, work.contact_ids, "data")
        compile_ms = (time.perf_counter() - started) * 1000
        for sql, params in statements:
            transaction = conn.transaction()
            await transaction.start()
            await limit_change_statement(conn, 600_000, "auto")  # as the worker runs it
            started = time.perf_counter()
            explained = await conn.fetch(f"EXPLAIN (ANALYZE, TIMING OFF, SUMMARY) {sql}", *params)
            trip_ms = (time.perf_counter() - started) * 1000
            await transaction.rollback()  # EXPLAIN ANALYZE wrote the differences: undone
            text = "\n".join(r[0] for r in explained)
            cells = [compile_ms, _ms("Planning", text), _ms("Execution", text), trip_ms]
            totals = [t + c for t, c in zip(totals, cells, strict=True)]
            print(
                f"| {len(work.segment_ids)} | {len(work.contact_ids)} | "
                + " | ".join(f"{c:,.1f}" for c in cells)
                + " |"
            )
    print("| **all** | | " + " | ".join(f"**{t:,.0f}**" for t in totals) + " |")
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
