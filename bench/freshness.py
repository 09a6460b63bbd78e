"""Staleness of `fresh_as_of` under load: how far behind the clock segments say they are.

    .venv/bin/python -m bench.freshness [--dsn DSN] [--segments 100] [--rates 0,1000] [--seconds 30]

On benchmark data (`python -m bench.gen_data` first): a real `segments worker` process (its
own vhost, default settings: ticks every 0.25 s), N live segments of the small account
(bench.worker_bench's shapes), and contacts changed at each rate (messages of 100 ids,
bench.worker_bench.publish_flips). Meanwhile, every 0.1 s, one sample: the database clock minus
the oldest `fresh_as_of` of the N segments (the stalest segment: what an account's staleness
gauge shows), and minus the account's watermark alone. The first 5 s of each rate are dropped
(warm-up). Beside them, the change lag p99 the worker measured over the same run (from
`changed_at` to the membership update), to compare staleness with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg

from bench.common import ACCOUNT_SMALL, DEFAULT_DSN
from bench.probe import quantiles_ms
from bench.worker_bench import (
    comma_ints,
    live_segments,
    metric_quantile,
    publish_flips,
    worker_on_own_vhost,
)
from worker.db import connect

SAMPLE_EVERY_S = 0.1
WARM_UP_S = 5.0
_SAMPLE = """
SELECT extract(epoch FROM now - min(f))::float8 AS stalest_s,
       count(*) FILTER (WHERE f IS NULL) AS unknown,
       extract(epoch FROM now - freshness_watermark($1))::float8 AS watermark_s
FROM (SELECT clock_timestamp() AS now) c,
     LATERAL (SELECT segment_fresh_as_of($1, id) AS f FROM segments WHERE id = ANY($2::uuid[])) s
GROUP BY now
"""


async def _sample(
    conn: asyncpg.Connection, segments: list[uuid.UUID], seconds: float
) -> tuple[list[float], list[float], int]:
    """Samples after the warm-up: (stalest segment, watermark, samples with a null)."""
    stalest, watermark, unknown = [], [], 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        row = await conn.fetchrow(_SAMPLE, ACCOUNT_SMALL, segments)
        if elapsed >= WARM_UP_S and row is not None:
            if row["unknown"]:
                unknown += 1
            else:
                stalest.append(row["stalest_s"])
                watermark.append(row["watermark_s"])
        await asyncio.sleep(SAMPLE_EVERY_S)
    return stalest, watermark, unknown


async def _run(
    dsn: str, conn: asyncpg.Connection, worker: Any, exchange: Any, segments: list[uuid.UUID],
    ids: list[uuid.UUID], rate: int, seconds: float,
) -> dict[str, Any]:  # fmt: skip
    before = await worker.metrics()
    load_conn = await connect(dsn)
    done = False
    try:
        load = (
            asyncio.create_task(publish_flips(load_conn, exchange, ids, rate, lambda: done))
            if rate
            else None
        )
        try:
            stalest, watermark, unknown = await _sample(conn, segments, seconds)
        finally:
            done = True
            sent = await load if load is not None else 0
    finally:
        await load_conn.close()
    after = await worker.metrics()
    lag_p99 = metric_quantile(before, after, "segments_change_lag_seconds", 0.99)
    return {
        "contacts_per_s": rate,
        "contacts_changed": sent,
        "samples": len(stalest),
        "samples_unknown": unknown,
        "stalest_segment": quantiles_ms(stalest),
        "watermark": quantiles_ms(watermark),
        "change_lag_p99_ms": None if lag_p99 is None else round(lag_p99 * 1000, 1),
    }


async def main(args: argparse.Namespace) -> None:
    conn = await connect(args.dsn)
    report: dict[str, Any] = {"segments": args.segments, "runs": []}
    segments: list[uuid.UUID] = []
    try:
        async with worker_on_own_vhost(args.dsn, None) as (exchange, worker):
            segments = await live_segments(conn, exchange, args.segments)
            ids = [r[0] for r in await conn.fetch(
                "SELECT id FROM contacts WHERE account_id = $1", ACCOUNT_SMALL)]  # fmt: skip
            for rate in args.rates:
                run = await _run(
                    args.dsn, conn, worker, exchange, segments, ids, rate, args.seconds
                )
                report["runs"].append(run)
                print(json.dumps(run), flush=True)
    finally:
        await conn.execute("DELETE FROM segments WHERE id = ANY($1::uuid[])", segments)
        await conn.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--segments", type=int, default=100, help="live segments")
    parser.add_argument(
        "--rates", type=comma_ints, default=[0, 1000], help="changed contacts per second"
    )
    parser.add_argument("--seconds", type=float, default=30, help="per rate, warm-up included")
    asyncio.run(main(parser.parse_args()))
