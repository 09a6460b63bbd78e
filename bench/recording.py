"""What recording membership changes costs (docs/changes.md), side by side with recording off
(SEGMENTS_RECORD_MEMBERSHIP_CHANGES), on the benchmark data (`python -m bench.gen_data`).

    .venv/bin/python -m bench.recording [--dsn DSN] [--phases lag,rules] [--rounds 2]
        [--rate 1000] [--seconds 20] [--segments 100] [--runs 3]

1. lag: contact.changed at `--rate` changed contacts/s (messages of 100 ids, statuses
   flipped so memberships move) with `--segments` live segments of the 100k-contact account,
   through a real `segments worker` process (bench.worker_bench's run): throughput and the
   worker's change-lag quantiles, for a worker recording and one not, in alternating rounds
   on the same segments (built once, by a recording worker, so they have their initial item).
2. rules: a segment of about 300,000 members of the 1M-contact account ("country in A"),
   built (the first build), then its rules changed to "country in B", where B keeps two
   thirds of A's members and adds as many new ones (the build after a rules change); each
   timed in the build's own transaction (worker.builds.build_segment), with and without
   recording, alternating which goes first. The segment is deleted after each run.
Writes segments (deleted after) and their records: run it on a database of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from typing import Any

import aio_pika
import asyncpg

from bench.common import ACCOUNT_BIG, ACCOUNT_SMALL, DEFAULT_DSN, list_id
from bench.worker_bench import ServiceProcess, _change_run, live_segments, new_segment, vhost
from worker.builds import build_segment
from worker.db import connect
from worker.messages import SegmentMessage
from worker.topology import declare

RECORD = "SEGMENTS_RECORD_MEMBERSHIP_CHANGES"
TARGET_MEMBERS = 300_000


async def bench_lag(conn: asyncpg.Connection, dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"recording": [], "not recording": []}
    async with vhost() as amqp_url:
        connection = await aio_pika.connect(amqp_url)
        exchange = await declare(await connection.channel(publisher_confirms=True))
        builder = ServiceProcess(dsn, amqp_url, settings={RECORD: "true"})
        await builder.wait_ready()
        segments = await live_segments(conn, exchange, args.segments)
        builder.stop()
        ids = [r[0] for r in await conn.fetch(
            "SELECT id FROM contacts WHERE account_id = $1", ACCOUNT_SMALL)]  # fmt: skip
        try:
            for round_ in range(args.rounds):
                order = [("recording", "true"), ("not recording", "false")]
                for label, value in order if round_ % 2 == 0 else order[::-1]:
                    worker = ServiceProcess(dsn, amqp_url, settings={RECORD: value})
                    await worker.wait_ready()
                    items, messages = await _feed_items(conn), await _messages(conn)
                    run = await _change_run(conn, worker, exchange, ids, args.rate, args.seconds)
                    run["feed_items_written"] = await _feed_items(conn) - items
                    run["messages_written"] = await _messages(conn) - messages
                    # Whether the relay kept up: membership.changed rows still unsent when the
                    # last change was applied.
                    run["messages_unsent_at_end"] = await _messages(conn, unsent=True)
                    worker.stop()
                    runs[label].append(run)
                    print(json.dumps({label: run}), file=sys.stderr, flush=True)
        finally:
            await conn.execute("DELETE FROM segments WHERE id = ANY($1::uuid[])", segments)
            await connection.close()
    return {"segments": args.segments, "rate": args.rate, "runs": runs}


async def _feed_items(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM segment_membership_changes"))


async def _messages(conn: asyncpg.Connection, *, unsent: bool = False) -> int:
    return int(
        await conn.fetchval(
            """SELECT count(*) FROM outbox WHERE routing_key = 'membership.changed'
                 AND (NOT $1 OR sent_at IS NULL)""",
            unsent,
        )
    )


def _country_rules(countries: list[str]) -> dict[str, Any]:
    condition = {"kind": "field", "field": "country", "operator": "in", "value": countries}
    return {"any": [{"all": [condition]}]}


async def pick_countries(conn: asyncpg.Connection) -> tuple[list[str], list[str]]:
    """A: countries with about TARGET_MEMBERS contacts in the big account's universe; B: A
    without countries holding about a third of them, with others holding about as many."""
    rows = await conn.fetch(
        """SELECT lower(c.country) AS country, count(*) AS n
           FROM contacts c JOIN contact_list_members m
             ON m.contact_id = c.id AND m.account_id = c.account_id AND m.list_id = $2
           WHERE c.account_id = $1 AND coalesce(c.country, '') <> ''
           GROUP BY 1 ORDER BY 2 DESC, 1""",
        ACCOUNT_BIG,
        list_id(ACCOUNT_BIG, "all"),
    )
    a, total = [], 0
    rest = []
    for row in rows:
        if total + row["n"] <= TARGET_MEMBERS * 1.05:
            a.append(row)
            total += row["n"]
        else:
            rest.append(row)
    dropped, dropped_n = [], 0
    for row in sorted(a, key=lambda r: r["n"]):
        if dropped_n + row["n"] <= total / 3 * 1.1:
            dropped.append(row)
            dropped_n += row["n"]
    added, added_n = [], 0
    for row in sorted(rest, key=lambda r: r["n"]):
        if added_n + row["n"] <= dropped_n * 1.1:
            added.append(row)
            added_n += row["n"]
    first = [r["country"] for r in a]
    second = [c for c in first if c not in {r["country"] for r in dropped}]
    return first, second + [r["country"] for r in added]


async def _timed_build(
    conn: asyncpg.Connection, segment: uuid.UUID, generation: int, trigger: str, record: bool
) -> dict[str, Any]:
    message = SegmentMessage(
        schema_version=1, account_id=ACCOUNT_BIG, segment_id=segment, generation=generation
    )
    started = time.perf_counter()
    result = await build_segment(
        conn, message, trigger, statement_timeout_ms=600_000, record=record
    )
    total = time.perf_counter() - started
    assert result.outcome == "done", result
    return {
        "total_s": total,
        "query_s": result.query_s,
        "write_s": result.write_s,
        "members": result.total_count,
        "added": result.added,
        "removed": result.removed,
    }


async def _one_run(conn: asyncpg.Connection, a: list[str], b: list[str], record: bool) -> Any:
    segment = await new_segment(conn, ACCOUNT_BIG, _country_rules(a))
    try:
        first = await _timed_build(conn, segment, 1, "created", record)
        await conn.execute(
            "UPDATE segments SET rules = $2, generation = 2, status = 'PENDING' WHERE id = $1",
            segment,
            _country_rules(b),
        )
        change = await _timed_build(conn, segment, 2, "updated", record)
    finally:
        await conn.execute("DELETE FROM segments WHERE id = $1", segment)
    # Dead rows of the deleted segment gone before the next run, as autovacuum would.
    for table in ("segment_members", "segment_membership_changes", "outbox"):
        await conn.execute(f"VACUUM {table}")
    return {"first_build": first, "rules_change": change}


async def bench_rules(conn: asyncpg.Connection, runs: int) -> dict[str, Any]:
    a, b = await pick_countries(conn)
    results: dict[str, list[Any]] = {"recording": [], "not recording": []}
    for run in range(runs):
        order = [True, False] if run % 2 == 0 else [False, True]
        for record in order:
            label = "recording" if record else "not recording"
            results[label].append(await _one_run(conn, a, b, record))
            print(json.dumps({label: results[label][-1]}), file=sys.stderr, flush=True)
    # Sent rows are kept a day by the relay; nobody publishes here, so drop what we made.
    await conn.execute("DELETE FROM outbox WHERE routing_key = 'membership.changed'")
    medians = {
        label: {
            step: statistics.median(r[step]["total_s"] for r in rows)
            for step in ("first_build", "rules_change")
        }
        for label, rows in results.items()
    }
    return {"countries": {"a": a, "b": b}, "runs": results, "medians_s": medians}


def markdown(report: dict[str, Any]) -> str:
    lines = []
    if "lag" in report:
        lines += [
            "| worker | round | throughput | lag p50 | lag p99 | feed items | messages"
            " | unsent at end |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for label, runs in report["lag"]["runs"].items():
            for i, run in enumerate(runs, start=1):
                lines.append(
                    f"| {label} | {i} | {run['throughput']:,} | {run['lag_p50_s']:.3f} s"
                    f" | {run['lag_p99_s']:.3f} s | {run['feed_items_written']:,}"
                    f" | {run['messages_written']:,} | {run['messages_unsent_at_end']:,} |"
                )
        lines.append("")
    if "rules" in report:
        medians = report["rules"]["medians_s"]
        on, off = medians["recording"], medians["not recording"]
        lines += ["| build | recording | not recording | ratio |", "|---|---:|---:|---:|"]
        for step in ("first_build", "rules_change"):
            lines.append(
                f"| {step.replace('_', ' ')} | {on[step]:.2f} s | {off[step]:.2f} s"
                f" | {on[step] / off[step]:.2f} |"
            )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    conn = await connect(args.dsn)
    report: dict[str, Any] = {}
    try:
        if "lag" in args.phases:
            report["lag"] = await bench_lag(conn, args.dsn, args)
        if "rules" in args.phases:
            report["rules"] = await bench_rules(conn, args.runs)
    finally:
        await conn.close()
    print(json.dumps(report, indent=2))
    print(markdown(report))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--phases", default="lag,rules", help="lag, rules or both")
    parser.add_argument("--rounds", type=int, default=2, help="lag runs per setting")
    parser.add_argument("--rate", type=int, default=1000, help="changed contacts per second")
    parser.add_argument("--seconds", type=float, default=20, help="per lag run")
    parser.add_argument("--segments", type=int, default=100, help="live segments")
    parser.add_argument("--runs", type=int, default=3, help="rules runs per setting")
    asyncio.run(main(parser.parse_args()))
