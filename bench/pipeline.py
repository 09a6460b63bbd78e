"""The whole pipeline at 1M contacts / 10M events (the data of `python -m bench.gen_data`):
real `segments api` and `segments worker` processes, their own RabbitMQ vhost.

    .venv/bin/python -m bench.pipeline [--rates 250,500,1000,2000,4000] [--seconds 30]

1. Builds through the API: for every shape of bench.shapes, POST /api/v2/segments/ on the
   1M-contact account, poll GET until DONE; that time next to the compiled SQL alone
   (`SELECT count(*) FROM (member ids)`, run just before and just after; the median).
2. Changes: N live segments (bench.worker_bench.change_shape) on the chosen account;
   contact.changed at increasing rates, published as a producer would (after a real change
   of the contacts); throughput, lag p50/p99 (the worker's own histogram) per rate.
3. Peak RSS (VmHWM) of the worker and of the API.

Writes bench/out/pipeline.json and two plots (--plots, default docs/img/): build time vs
bare SQL per shape, and lag quantiles vs rate. Deletes the segments it made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import aio_pika
import asyncpg
import httpx

from bench.common import ACCOUNT_BIG, ACCOUNT_SMALL, DEFAULT_DSN, OUT_DIR
from bench.shapes import SHAPES, bench_context
from bench.worker_bench import (
    ServiceProcess,
    _change_run,
    comma_ints,
    live_segments,
    measure_reference,
    vhost,
)
from worker.accounts import create_api_key
from worker.db import connect
from worker.topology import declare

V2 = "/api/v2/segments/"


async def _build_via_api(
    http: httpx.AsyncClient, conn: asyncpg.Connection, rules: Any, universe: UUID
) -> tuple[UUID, float, int]:
    """Create a segment over HTTP; (id, seconds from the POST to DONE, total_count)."""
    started = time.perf_counter()
    body = {
        "name": "pipeline bench",
        "color": "#7cb7de",
        "rules_json": rules,
        "contact_list_ids": [str(universe)],
    }
    response = await http.post(V2, json=body)
    if response.status_code not in (200, 201):
        raise RuntimeError(f"POST {V2}: {response.status_code} {response.text}")
    segment_id = UUID(response.json()["id"])
    while True:
        body = (await http.get(f"{V2}{segment_id}/")).raise_for_status().json()
        if body["status"] == "DONE":
            return segment_id, time.perf_counter() - started, body["total_count"]
        if body["status"] == "FAILED":
            raise RuntimeError(f"build failed: {body.get('error_reason')}")
        await asyncio.sleep(0.02)


async def bench_builds(
    http: httpx.AsyncClient, conn: asyncpg.Connection, only: list[str] | None
) -> list[dict[str, Any]]:
    now = await conn.fetchval("SELECT now()")
    ctx = bench_context(now)
    results = []
    for make in SHAPES:
        shape = make(ctx)
        if only and shape.key not in only:
            continue
        segment_id, build_s, members = await _build_via_api(http, conn, shape.rules, ctx.universe)
        refs = [await measure_reference(conn, segment_id) for _ in range(2)]
        bare = statistics.median(r.bare_sql_s for r in refs)
        floor = statistics.median(r.sql_and_write_s for r in refs)
        # The relay and the queue, by the database's clock: saved -> build claimed. (Not
        # claimed -> DONE: last_built_at is when the build's data was read, its transaction's
        # start.) The worker's log has the build's own steps.
        to_claim_s = await conn.fetchval(
            "SELECT extract(epoch FROM build_started_at - created_at) FROM segments WHERE id = $1",
            segment_id,
        )
        await conn.execute("DELETE FROM segments WHERE id = $1", segment_id)
        results.append(
            {
                "shape": shape.key,
                "title": shape.title,
                "members": members,
                "api_to_done_s": build_s,
                "saved_to_claimed_s": float(to_claim_s),
                "bare_sql_s": bare,
                "sql_and_write_s": floor,
                "ratio": build_s / bare,
                "ratio_vs_sql_and_write": build_s / floor,
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


async def bench_changes(
    conn: asyncpg.Connection,
    worker: ServiceProcess,
    exchange: Any,
    args: argparse.Namespace,
) -> dict[str, Any]:
    account = ACCOUNT_BIG if args.change_account == "big" else ACCOUNT_SMALL
    started = time.perf_counter()
    segments = await live_segments(conn, exchange, args.segments, account)
    built_s = time.perf_counter() - started
    ids = [r[0] for r in await conn.fetch("SELECT id FROM contacts WHERE account_id = $1", account)]
    try:
        runs = []
        for rate in args.rates:
            runs.append(await _change_run(conn, worker, exchange, ids, rate, args.seconds, account))
            print(json.dumps(runs[-1]), flush=True)
    finally:
        await conn.execute("DELETE FROM segments WHERE id = ANY($1::uuid[])", segments)
    return {
        "account_contacts": len(ids),
        "segments": args.segments,
        "segments_built_s": built_s,
        "runs": runs,
    }


def plot(report: dict[str, Any], folder: Path) -> list[Path]:
    """Two PNGs: builds per shape (API to DONE vs the bare SQL and vs the SQL plus writing its
    rows), lag quantiles per rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    builds = report.get("builds") or []
    if builds:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        keys = [b["shape"] for b in builds]
        x = range(len(keys))
        ax.bar([i - 0.27 for i in x], [b["bare_sql_s"] for b in builds], 0.27, label="bare SQL")
        ax.bar([i for i in x], [b["sql_and_write_s"] for b in builds], 0.27,
               label="SQL + insert its rows")  # fmt: skip
        ax.bar([i + 0.27 for i in x], [b["api_to_done_s"] for b in builds], 0.27,
               label="API to DONE")  # fmt: skip
        for i, b in enumerate(builds):
            ax.annotate(f"{b['ratio']:.2f}x", (i + 0.27, b["api_to_done_s"]), ha="center",
                        va="bottom", fontsize=8)  # fmt: skip
        ax.set_xticks(list(x), keys)
        ax.set_xlabel("shape (docs/benchmarks.md lists them)")
        ax.set_ylabel("seconds")
        ax.set_title("Segment builds at 1M contacts / 10M events: API to DONE vs the SQL alone")
        ax.legend()
        fig.tight_layout()
        written.append(folder / "pipeline_builds.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    runs = (report.get("changes") or {}).get("runs") or []
    if runs:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        rates = [r["target_rate"] for r in runs]
        ax.plot(rates, [r["lag_p50_s"] for r in runs], "o-", label="lag p50")
        ax.plot(rates, [r["lag_p99_s"] for r in runs], "o-", label="lag p99")
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="goal: p99 < 1 s")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(rates, [str(r) for r in rates])
        ax.set_xlabel("changed contacts per second (published)")
        ax.set_ylabel("seconds")
        changes = report["changes"]
        ax.set_title(
            f"Change-to-membership lag, {changes['segments']} live segments, "
            f"{changes['account_contacts']:,} contacts"
        )
        ax.legend()
        fig.tight_layout()
        written.append(folder / "pipeline_lag.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


async def main(args: argparse.Namespace) -> None:
    conn = await connect(args.dsn)
    report: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds")}
    async with vhost() as amqp_url:
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare(channel)
        worker = ServiceProcess(args.dsn, amqp_url, command="worker")
        api = ServiceProcess(
            args.dsn,
            amqp_url,
            command="api",
            settings={"SEGMENTS_API_RATE_LIMIT_PER_MINUTE": "1000000"},
        )
        key = await create_api_key(conn, ACCOUNT_BIG)
        try:
            await asyncio.gather(worker.wait_ready(), api.wait_ready())
            async with httpx.AsyncClient(
                base_url=api.url, headers={"X-API-Key": key}, timeout=60
            ) as http:
                if "builds" in args.phases:
                    report["builds"] = await bench_builds(http, conn, args.only)
            if "changes" in args.phases:
                report["changes"] = await bench_changes(conn, worker, exchange, args)
            report["peak_rss_mib"] = {"worker": worker.peak_rss_mib(), "api": api.peak_rss_mib()}
        finally:
            worker.stop()
            api.stop()
            await connection.close()
            await conn.execute("DELETE FROM api_keys WHERE account_id = $1", ACCOUNT_BIG)
    await conn.close()
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "pipeline.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if args.plots:
        for path in plot(report, args.plots):
            print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--phases", default="builds,changes", help="builds, changes or both")
    parser.add_argument("--only", nargs="*", help="shape keys to build, e.g. --only a d")
    parser.add_argument("--rates", type=comma_ints, default=[250, 500, 1000, 2000, 4000])
    parser.add_argument("--seconds", type=float, default=30, help="per rate")
    parser.add_argument("--segments", type=int, default=100, help="live segments")
    parser.add_argument("--change-account", choices=("big", "small"), default="big")
    parser.add_argument(
        "--plots",
        type=lambda v: Path(v) if v else None,
        default=Path("docs/img"),
        help="folder of the PNGs; '' for none",
    )
    asyncio.run(main(parser.parse_args()))
