"""Worker benchmark: builds and incremental updates through the real broker and a real
`segments worker` process, on the benchmark data (`python -m bench.gen_data` first).

    .venv/bin/python -m bench.worker_bench [--rate 1000] [--seconds 30] [--segments 100]

1. Build time, message to DONE, for a segment over the 100k-contact account and over the
   1M-contact account, next to the time of its compiled SQL alone (run side by side,
   alternating). First build (all members inserted) and rebuild (nothing changes).
2. contact.changed throughput and change-to-membership lag with N live segments: messages of
   100 contact ids published at the given rate; lag from the worker's own histogram
   (`segments_change_lag_seconds`, quantiles interpolated within buckets, as Prometheus'
   histogram_quantile does).
3. The worker process's peak RSS (VmHWM), read after each phase.
Uses its own RabbitMQ vhost (made and deleted with rabbitmqctl) and deletes its segments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.common import ACCOUNT_BIG, ACCOUNT_SMALL, DEFAULT_DSN, list_id
from worker.compiler import compile_member_ids
from worker.db import connect
from worker.messages import ContactChanged, SegmentMessage
from worker.publishing import contract_message
from worker.store import load_registry, load_segment_rules
from worker.topology import declare

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
SUBSCRIBED_OPENERS = {
    "any": [
        {
            "all": [
                {"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"},
                {"kind": "activity", "metric": "open", "operator": "ever",
                 "days_window": {"mode": "last", "days": 90}},
            ]
        }
    ]
}  # fmt: skip


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def vhost() -> AsyncIterator[str]:
    name = f"segments_bench_{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield AMQP + name
    finally:
        _rabbitmqctl("delete_vhost", name)


class WorkerProcess:
    def __init__(self, dsn: str, amqp_url: str) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "SEGMENTS_DATABASE_URL": dsn,
            "SEGMENTS_AMQP_URL": amqp_url,
            "SEGMENTS_WORKER_METRICS_PORT": str(self.port),
            "SEGMENTS_LOG_LEVEL": "warning",
            "SEGMENTS_REFRESH_INTERVAL_S": "86400",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "worker"], env=env, stderr=subprocess.DEVNULL
        )

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{self.port}/metrics")).text

    async def wait_ready(self) -> None:
        for _ in range(300):
            try:
                await self.metrics()
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        raise RuntimeError("worker did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


async def _new_segment(conn: asyncpg.Connection, account: uuid.UUID, rules: Any) -> uuid.UUID:
    segment_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids)
           VALUES ($1, 'bench', 'v2', $2, $3) RETURNING id""",
        account,
        rules,
        [list_id(account, "all")],
    )
    return segment_id


async def _publish(exchange: Any, key: str, account: uuid.UUID, segment: uuid.UUID) -> None:
    body = SegmentMessage(schema_version=1, account_id=account, segment_id=segment, generation=1)
    await exchange.publish(contract_message(body), routing_key=key)


async def _wait_built(conn: asyncpg.Connection, segment: uuid.UUID, after: datetime) -> None:
    while True:
        row = await conn.fetchrow(
            "SELECT status, last_built_at FROM segments WHERE id = $1", segment
        )
        if row["status"] == "DONE" and row["last_built_at"] > after:
            return
        if row["status"] == "FAILED":
            raise RuntimeError("build failed")
        await asyncio.sleep(0.005)


async def _bare_sql_s(conn: asyncpg.Connection, segment: uuid.UUID) -> float:
    rules = await load_segment_rules(conn, segment)
    assert rules is not None
    query = rules.query(await load_registry(conn, rules.account_id), datetime.now(UTC))
    compiled = compile_member_ids(query)
    started = time.perf_counter()
    await conn.fetchval(f"SELECT count(*) FROM ({compiled.sql}) m", *compiled.params)
    return time.perf_counter() - started


async def bench_builds(conn: asyncpg.Connection, exchange: Any, runs: int) -> list[dict[str, Any]]:
    results = []
    for label, account in (("100k contacts", ACCOUNT_SMALL), ("1M contacts", ACCOUNT_BIG)):
        first, rebuild, bare = [], [], []
        for _ in range(runs):
            segment = await _new_segment(conn, account, SUBSCRIBED_OPENERS)
            for key, sink in (("segment.created", first), ("segment.rebuild", rebuild)):
                bare.append(await _bare_sql_s(conn, segment))
                start_db = await conn.fetchval("SELECT clock_timestamp()")
                started = time.perf_counter()
                await _publish(exchange, key, account, segment)
                await _wait_built(conn, segment, start_db)
                sink.append(time.perf_counter() - started)
            members = await conn.fetchval("SELECT total_count FROM segments WHERE id = $1", segment)
            await conn.execute("DELETE FROM segments WHERE id = $1", segment)
        results.append(
            {
                "data": label,
                "members": members,
                "bare_sql_s": statistics.median(bare),
                "first_build_s": statistics.median(first),
                "rebuild_s": statistics.median(rebuild),
                "first_build_ratio": statistics.median(first) / statistics.median(bare),
                "rebuild_ratio": statistics.median(rebuild) / statistics.median(bare),
            }
        )
    return results


def _quantile(text: str, name: str, q: float) -> float | None:
    """histogram_quantile over one histogram of a scrape (linear within the bucket)."""
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == name + "_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return None


async def bench_changes(
    conn: asyncpg.Connection, worker: WorkerProcess, exchange: Any, args: argparse.Namespace
) -> dict[str, Any]:
    shapes = [
        SUBSCRIBED_OPENERS,
        {"any": [{"all": [{"kind": "field", "field": "country", "operator": "in",
                           "value": ["DE", "FR", "US"]}]}]},
        {"any": [{"all": [{"kind": "field", "field": "tags", "operator": "has_any",
                           "value": ["vip"]}]}]},
        {"any": [{"all": [{"kind": "activity", "metric": "click", "operator": "count_gte",
                           "value": 2, "days_window": {"mode": "last", "days": 60}}]}]},
    ]  # fmt: skip
    segments = [
        await _new_segment(conn, ACCOUNT_SMALL, shapes[i % len(shapes)])
        for i in range(args.segments)
    ]
    start_db = await conn.fetchval("SELECT clock_timestamp()")
    for segment in segments:
        await _publish(exchange, "segment.created", ACCOUNT_SMALL, segment)
    for segment in segments:
        await _wait_built(conn, segment, start_db)
    ids = [r[0] for r in await conn.fetch(
        "SELECT id FROM contacts WHERE account_id = $1", ACCOUNT_SMALL)]  # fmt: skip
    per_message = 100
    sent = 0
    started = time.perf_counter()
    rng = random.Random(7)
    while time.perf_counter() - started < args.seconds:
        batch = rng.sample(ids, per_message)
        # A real change: flip status, so memberships move, then tell the worker.
        await conn.execute(
            """UPDATE contacts SET status = CASE status WHEN 'subscribed' THEN 'unsubscribed'
                   ELSE 'subscribed' END WHERE id = ANY($1::uuid[])""",
            batch,
        )
        body = ContactChanged(
            schema_version=1, account_id=ACCOUNT_SMALL, contact_ids=batch,
            changed_at=datetime.now(UTC),
        )  # fmt: skip
        await exchange.publish(contract_message(body), routing_key="contact.changed")
        sent += per_message
        target = started + sent / args.rate
        await asyncio.sleep(max(0.0, target - time.perf_counter()))
    publish_s = time.perf_counter() - started
    channel = exchange.channel
    queue = await channel.declare_queue("segments.contact_changes", passive=True)
    while queue.declaration_result.message_count:
        await asyncio.sleep(0.05)
        queue = await channel.declare_queue("segments.contact_changes", passive=True)
    drained_s = time.perf_counter() - started
    await asyncio.sleep(1)  # the last batch: its window and transaction
    scrape = await worker.metrics()
    await conn.execute("DELETE FROM segments WHERE id = ANY($1::uuid[])", segments)
    return {
        "segments": args.segments,
        "target_rate": args.rate,
        "contacts_changed": sent,
        "published_rate": round(sent / publish_s),
        "throughput": round(sent / drained_s),
        "lag_p50_s": _quantile(scrape, "segments_change_lag_seconds", 0.5),
        "lag_p99_s": _quantile(scrape, "segments_change_lag_seconds", 0.99),
    }


async def main(args: argparse.Namespace) -> None:
    conn = await connect(args.dsn)
    async with vhost() as amqp_url:
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare(channel)
        worker = WorkerProcess(args.dsn, amqp_url)
        try:
            await worker.wait_ready()
            builds = await bench_builds(conn, exchange, args.runs)
            rss_builds = worker.peak_rss_mib()
            changes = await bench_changes(conn, worker, exchange, args)
            rss_all = worker.peak_rss_mib()
        finally:
            worker.stop()
            await connection.close()
    await conn.close()
    print(json.dumps({"builds": builds, "changes": changes,
                      "worker_peak_rss_mib": {"after_builds": rss_builds,
                                              "after_changes": rss_all}}, indent=2))  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="changed contacts per second")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--segments", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
