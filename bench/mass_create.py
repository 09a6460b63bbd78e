"""Creating many segments at once: all of them `segment.created` in one go to one
`segments worker`, timed until every one is DONE, at several build concurrencies
(`SEGMENTS_BUILD_CONCURRENCY`), against the sum of their bare queries run one after another
(the compiled count, in the build's work_mem).

    .venv/bin/python -m bench.mass_create [--segments 1000] [--concurrency 1,2,4]

Segments are the change benchmark's (bench.worker_bench.change_shape: seven kinds, no two
alike) on the 100k-contact account; each run deletes its segments. Its own RabbitMQ vhost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg

from bench.common import ACCOUNT_SMALL, DEFAULT_DSN, production_settings
from bench.worker_bench import (
    ServiceProcess,
    change_shape,
    comma_ints,
    new_segment,
    publish_segment,
    vhost,
)
from worker.builds import BUILD_WORK_MEM
from worker.compiler import compile_count
from worker.db import connect
from worker.store import load_registry, load_segment_rules
from worker.topology import declare


async def _all_done(conn: asyncpg.Connection, segments: list[Any]) -> tuple[int, int]:
    """Until every segment is DONE (or one FAILED): (done, failed)."""
    while True:
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE status = 'DONE') AS done,
                      count(*) FILTER (WHERE status = 'FAILED') AS failed
               FROM segments WHERE account_id = $1 AND id = ANY($2::uuid[])""",
            ACCOUNT_SMALL,
            segments,
        )
        if row["done"] + row["failed"] == len(segments):
            return row["done"], row["failed"]
        await asyncio.sleep(0.1)


async def create_at_once(
    conn: asyncpg.Connection, dsn: str, n: int, concurrency: int
) -> dict[str, Any]:
    """n segments created at once with a worker of this build concurrency: seconds to all
    DONE (and the worker's peak RSS)."""
    segments = [await new_segment(conn, ACCOUNT_SMALL, change_shape(i)) for i in range(n)]
    settings = {"SEGMENTS_BUILD_CONCURRENCY": str(concurrency)}
    try:
        async with vhost() as amqp_url:
            connection = await aio_pika.connect(amqp_url)
            channel = await connection.channel(publisher_confirms=True)
            exchange = await declare(channel)
            worker = ServiceProcess(dsn, amqp_url, settings=settings)
            try:
                await worker.wait_ready()
                started = time.perf_counter()
                for segment in segments:
                    await publish_segment(exchange, "segment.created", ACCOUNT_SMALL, segment)
                done, failed = await _all_done(conn, segments)
                wall = time.perf_counter() - started
                rss = worker.peak_rss_mib()
            finally:
                worker.stop()
                await connection.close()
        members = await conn.fetchval(
            "SELECT sum(total_count) FROM segments WHERE id = ANY($1::uuid[])", segments
        )
        return {
            "concurrency": concurrency,
            "done": done,
            "failed": failed,
            "wall_s": round(wall, 1),
            "members": int(members or 0),
            "worker_peak_rss_mib": round(rss),
        }
    finally:
        await conn.execute("DELETE FROM segments WHERE id = ANY($1::uuid[])", segments)
        await conn.execute("VACUUM ANALYZE segment_members")


async def sum_of_bare_queries(conn: asyncpg.Connection, n: int) -> float:
    """The n segments' compiled counts, one after another, in the build's work_mem."""
    segments = [await new_segment(conn, ACCOUNT_SMALL, change_shape(i)) for i in range(n)]
    registry = await load_registry(conn, ACCOUNT_SMALL)
    total = 0.0
    try:
        for segment in segments:
            rules = await load_segment_rules(conn, segment)
            assert rules is not None
            compiled = compile_count(rules.query(registry, datetime.now(UTC)))
            async with conn.transaction():
                await conn.execute(f"SET LOCAL work_mem = '{BUILD_WORK_MEM}'")
                started = time.perf_counter()
                await conn.execute(compiled.sql, *compiled.params)
                total += time.perf_counter() - started
    finally:
        await conn.execute("DELETE FROM segments WHERE id = ANY($1::uuid[])", segments)
    return total


async def main(args: argparse.Namespace) -> None:
    conn = await connect(args.dsn)
    runs = []
    async with production_settings(conn) as set_for_the_run:
        bare = await sum_of_bare_queries(conn, args.segments)
        print(json.dumps({"sum_of_bare_queries_s": round(bare, 1)}), file=sys.stderr, flush=True)
        for concurrency in args.concurrency:
            run = await create_at_once(conn, args.dsn, args.segments, concurrency)
            run["ratio_to_sum_of_bare_queries"] = round(run["wall_s"] / bare, 2)
            print(json.dumps(run), file=sys.stderr, flush=True)
            runs.append(run)
    await conn.close()
    report = {
        "segments": args.segments,
        "server_settings_set_for_the_run": set_for_the_run,
        "sum_of_bare_queries_s": round(bare, 1),
        "runs": runs,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--segments", type=int, default=1000)
    parser.add_argument("--concurrency", type=comma_ints, default=[1, 2, 4])
    asyncio.run(main(parser.parse_args()))
