"""Preview on the benchmark data: exact count or estimate, by timeout, side by side.

    .venv/bin/python -m bench.preview [--timeouts 60000,3000,1000,300] [--runs 3]

On the 1M-contact account (`python -m bench.gen_data` first), the rule "subscribed and at
least 2 opens in the last 30 days" previewed with each timeout (worker.preview, the code the
API runs, on a pool of its own). Prints per run: the answer (exact count, or estimate with its
interval), whether the interval holds the exact count, and the time taken against the bound
(timeout + 200 ms). Read only.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from bench.common import ACCOUNT_BIG, DEFAULT_DSN
from bench.worker_bench import comma_ints
from worker.compiler import SegmentQuery
from worker.db import create_pool
from worker.preview import GRACE_MS, PreviewTooSlow, preview
from worker.rules import parse_rules
from worker.store import load_registry

RULES = {
    "all": [
        {"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"},
        {
            "kind": "activity",
            "metric": "open",
            "operator": "count_gte",
            "value": 2,
            "days_window": {"mode": "last", "days": 30},
        },
    ]
}


async def run(dsn: str, timeouts: list[int], runs: int) -> None:
    pool = await create_pool(dsn, min_size=2, max_size=2)
    try:
        async with pool.acquire() as conn:
            registry = await load_registry(conn, ACCOUNT_BIG)
        tree = parse_rules("v2", RULES, registry)
        query = SegmentQuery(ACCOUNT_BIG, tree, (), datetime.now(UTC))
        truth = (await preview(pool, query, timeout_ms=600_000)).total_count
        print(f"exact count: {truth}")
        print("timeout_ms | run | answer | holds | took_ms | bound_ms")
        for timeout_ms in timeouts:
            for number in range(1, runs + 1):
                started = time.monotonic()
                try:
                    got = await preview(pool, query, timeout_ms=timeout_ms)
                except PreviewTooSlow:
                    answer, holds = "503 (sample not drawn in time)", "-"
                else:
                    if got.exact:
                        answer, holds = f"exact {got.total_count}", "-"
                    else:
                        assert got.estimate is not None
                        e = got.estimate
                        answer = f"estimate {e.value} ({e.low} to {e.high})"
                        holds = "yes" if e.low <= (truth or 0) <= e.high else "NO"
                took = round((time.monotonic() - started) * 1000)
                print(f"{timeout_ms} | {number} | {answer} | {holds} | {took} | "
                      f"{timeout_ms + GRACE_MS}")  # fmt: skip
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.preview")
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--timeouts", type=comma_ints, default=[60_000, 3000, 1000, 300])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.dsn, args.timeouts, args.runs))


if __name__ == "__main__":
    main()
