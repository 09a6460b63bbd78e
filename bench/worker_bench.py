"""Worker benchmark: builds and incremental updates through the real broker and a real
`segments worker` process, on the benchmark data (`python -m bench.gen_data` first).

    .venv/bin/python -m bench.worker_bench [--rates 500,1000,2000] [--seconds 30] [--segments 100]

1. Build time, message to DONE, for a segment over the 100k-contact account and over the
   1M-contact account, next to the time of its compiled SQL alone, and of the SQL plus
   inserting its rows as members (run side by side, alternating). First build (all members
   inserted), rebuild right after (nothing changes), and rebuild after a vacuum of
   segment_members (what autovacuum does after a build's inserts: the visibility map set).
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
import functools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.common import (
    ACCOUNT_BIG,
    ACCOUNT_SMALL,
    DEFAULT_DSN,
    LISTS,
    list_id,
    production_settings,
)
from bench.sample_check import sample_disagreements
from segments.demo.data import COUNTRIES, TAGS
from worker.builds import BUILD_WORK_MEM
from worker.compiler import compile_member_ids
from worker.db import connect
from worker.messages import ChangeHints, ContactChanged, SegmentMessage, contract_message
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


class ServiceProcess:
    """`segments worker` or `segments api` as a subprocess on the benchmark database and
    vhost, with its /metrics on a free port."""

    PORT_SETTING = {"worker": "SEGMENTS_WORKER_METRICS_PORT", "api": "SEGMENTS_API_PORT"}

    def __init__(
        self,
        dsn: str,
        amqp_url: str,
        code_dir: str | None = None,
        *,
        command: str = "worker",
        settings: dict[str, str] | None = None,
    ) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "SEGMENTS_DATABASE_URL": dsn,
            "SEGMENTS_AMQP_URL": amqp_url,
            self.PORT_SETTING[command]: str(self.port),
            "SEGMENTS_LOG_LEVEL": "warning",
            "SEGMENTS_REFRESH_INTERVAL_S": "86400",
            **(settings or {}),
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "segments.cli", command],
            env=env,
            stderr=subprocess.DEVNULL,
            cwd=code_dir,  # `-m` imports the worker from here: another checkout to compare
        )

    def peak_rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.url}/metrics")).text

    async def wait_ready(self) -> None:
        for _ in range(300):
            try:
                await self.metrics()
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.process.args} did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


async def new_segment(conn: asyncpg.Connection, account: uuid.UUID, rules: Any) -> uuid.UUID:
    segment_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids)
           VALUES ($1, 'bench', 'v2', $2, $3) RETURNING id""",
        account,
        rules,
        [list_id(account, "all")],
    )
    return segment_id


async def publish_segment(exchange: Any, key: str, account: uuid.UUID, segment: uuid.UUID) -> None:
    body = SegmentMessage(schema_version=1, account_id=account, segment_id=segment, generation=1)
    await exchange.publish(contract_message(body), routing_key=key)


async def wait_built(conn: asyncpg.Connection, segment: uuid.UUID, after: datetime) -> None:
    while True:
        row = await conn.fetchrow(
            "SELECT status, last_built_at FROM segments WHERE id = $1", segment
        )
        if row["status"] == "DONE" and row["last_built_at"] > after:
            return
        if row["status"] == "FAILED":
            raise RuntimeError("build failed")
        await asyncio.sleep(0.005)


@dataclass(frozen=True)
class Reference:
    """What a build of a segment is measured against, in the build's session settings."""

    bare_sql_s: float  # the compiled SQL alone
    sql_and_write_s: float  # the SQL, then its rows inserted as members of a new segment


async def measure_reference(conn: asyncpg.Connection, segment: uuid.UUID) -> Reference:
    """The segment's compiled SQL alone; then the least a materialising build must do: the
    SQL plus inserting its rows into segment_members (rolled back)."""
    rules = await load_segment_rules(conn, segment)
    assert rules is not None
    query = rules.query(await load_registry(conn, rules.account_id), datetime.now(UTC))
    compiled = compile_member_ids(query)
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute(f"SET LOCAL work_mem = '{BUILD_WORK_MEM}'")
        started = time.perf_counter()
        # execute(), never fetchval(): asyncpg fetches fetchval's row with a row limit, and
        # PostgreSQL runs a statement with a row limit without parallel workers (1.45 s
        # against 0.9 s for this segment at 1M contacts).
        await conn.execute(f"SELECT count(*) FROM ({compiled.sql}) m", *compiled.params)
        bare = time.perf_counter() - started
        started = time.perf_counter()
        await conn.execute(
            f"CREATE TEMP TABLE bench_matched ON COMMIT DROP AS {compiled.sql}", *compiled.params
        )
        await conn.execute(
            """INSERT INTO segment_members (segment_id, contact_id, account_id)
               SELECT $1, id, $2 FROM bench_matched ORDER BY id""",
            uuid.uuid4(),
            rules.account_id,
        )
        written = time.perf_counter() - started
    finally:
        await transaction.rollback()
    await conn.execute("VACUUM segment_members")  # the rolled-back rows, before the build
    return Reference(bare, written)


def _build_sums(text: str) -> dict[str, float]:
    """Seconds the worker's build histograms summed so far: its whole builds, and each step."""
    sums = {"build": 0.0, "builds": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "segments_build_duration_seconds_sum":
                sums["build"] += sample.value
            elif sample.name == "segments_build_duration_seconds_count":
                sums["builds"] += sample.value
            elif sample.name == "segments_build_step_duration_seconds_sum":
                sums[sample.labels["step"]] = sample.value
    return sums


# Each segment: its first build, a rebuild right after (nothing changes), and another after a
# vacuum of segment_members.
_BUILD_KINDS = (
    ("segment.created", "first"),
    ("segment.rebuild", "rebuild"),
    ("segment.rebuild", "rebuild_after_vacuum"),
)


async def bench_builds(
    conn: asyncpg.Connection, worker: ServiceProcess, exchange: Any, runs: int
) -> list[dict[str, Any]]:
    results = []
    for label, account in (("100k contacts", ACCOUNT_SMALL), ("1M contacts", ACCOUNT_BIG)):
        refs = []
        timings: dict[str, dict[str, list[float]]] = {kind: {} for _, kind in _BUILD_KINDS}
        vacuums = []
        for _ in range(runs):
            segment = await new_segment(conn, account, SUBSCRIBED_OPENERS)
            for key, kind in _BUILD_KINDS:
                if kind == "rebuild_after_vacuum":
                    # What autovacuum does after the first build's inserts:
                    # the visibility map of the new members' pages is set.
                    started = time.perf_counter()
                    await conn.execute("VACUUM segment_members")
                    vacuums.append(time.perf_counter() - started)
                refs.append(await measure_reference(conn, segment))
                before = _build_sums(await worker.metrics())
                start_db = await conn.fetchval("SELECT clock_timestamp()")
                started = time.perf_counter()
                await publish_segment(exchange, key, account, segment)
                await wait_built(conn, segment, start_db)
                elapsed = time.perf_counter() - started
                # The worker records a build after returning its connection, a moment after
                # the commit this script saw: wait for the observation.
                after = _build_sums(await worker.metrics())
                while after["builds"] < before["builds"] + 1:
                    await asyncio.sleep(0.005)
                    after = _build_sums(await worker.metrics())
                steps = {
                    name: after[name] - before.get(name, 0.0) for name in after if name != "builds"
                }
                for name, value in (("message_to_done", elapsed), *steps.items()):
                    timings[kind].setdefault(name, []).append(value)
            members = await conn.fetchval("SELECT total_count FROM segments WHERE id = $1", segment)
            await conn.execute("DELETE FROM segments WHERE id = $1", segment)
        bare = statistics.median(r.bare_sql_s for r in refs)
        floor = statistics.median(r.sql_and_write_s for r in refs)
        result: dict[str, Any] = {
            "data": label,
            "members": members,
            "bare_sql_s": bare,
            "sql_and_write_s": floor,
            "vacuum_s": statistics.median(vacuums),
        }
        for kind, by_name in timings.items():
            # Medians of: message to DONE as the producer sees it; the worker's build (claim
            # to finish) and its two database steps, from its own histograms.
            result[kind] = {name: statistics.median(values) for name, values in by_name.items()}
            total = result[kind]["message_to_done"]
            result[kind]["ratio_to_bare_sql"] = total / bare
            result[kind]["ratio_to_sql_and_write"] = total / floor
        results.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)
    return results


def _buckets(text: str, name: str) -> dict[float, float]:
    """The cumulative bucket counts of one histogram in a scrape, by upper bound."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name + "_bucket":
                buckets[float(sample.labels["le"])] = sample.value
    return buckets


def _mean(before: str, after: str, name: str) -> float | None:
    """The mean of what one histogram observed between two scrapes."""

    def sum_count(text: str) -> tuple[float, float]:
        values = {"sum": 0.0, "count": 0.0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                for part in values:
                    if sample.name == f"{name}_{part}":
                        values[part] = sample.value
        return values["sum"], values["count"]

    (sum0, count0), (sum1, count1) = sum_count(before), sum_count(after)
    return (sum1 - sum0) / (count1 - count0) if count1 > count0 else None


def metric_quantile(before: str, after: str, name: str, q: float) -> float | None:
    """histogram_quantile over what one histogram observed between two scrapes (linear
    within the bucket, as Prometheus does)."""
    start = _buckets(before, name)
    buckets = sorted((le, n - start.get(le, 0.0)) for le, n in _buckets(after, name).items())
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


def change_shape(i: int, account: uuid.UUID = ACCOUNT_SMALL) -> dict[str, Any]:
    """The rules of live segment i: seven kinds of rule in turn, each with its own values
    (no two segments alike, so no work can be shared between equal rules)."""
    days = 7 + i
    countries = [COUNTRIES[(i + k) % len(COUNTRIES)] for k in range(3)]
    tags = [TAGS[i % len(TAGS)].lower()]
    lists = [spec.key for spec in LISTS]
    shapes: list[list[list[dict[str, Any]]]] = [
        [[{"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"},
          {"kind": "activity", "metric": "open", "operator": "ever",
           "days_window": {"mode": "last", "days": days}}]],
        [[{"kind": "field", "field": "country", "operator": "in", "value": countries}]],
        [[{"kind": "field", "field": "tags", "operator": "has_any", "value": tags}]],
        [[{"kind": "activity", "metric": "click", "operator": "count_gte", "value": 2 + i % 3,
           "days_window": {"mode": "last", "days": days}}]],
        [[{"kind": "activity", "metric": "open", "operator": "never",
           "days_window": {"mode": "last", "days": days}}]],
        [[{"kind": "field", "field": "last_open_at", "operator": "within_days", "value": days}],
         [{"kind": "deliverability", "metric": "bounce", "operator": "ever"}]],
        [[{"kind": "membership", "operator": "in",
           "list_ids": [str(list_id(account, lists[1 + i % 3]))]},
          {"kind": "membership", "operator": "not_in",
           "list_ids": [str(list_id(account, "blocklist"))]},
          {"kind": "field", "field": "status", "operator": "not_equals", "value": "bounced"}]],
    ]  # fmt: skip
    return {"any": [{"all": group} for group in shapes[i % len(shapes)]]}


async def live_segments(
    conn: asyncpg.Connection,
    exchange: Any,
    n: int,
    account: uuid.UUID = ACCOUNT_SMALL,
    first: int = 0,
) -> list[uuid.UUID]:
    """n segments of the account (default: the 100k one), change_shape(first..first+n-1),
    built."""
    shapes = range(first, first + n)
    segments = [await new_segment(conn, account, change_shape(i, account)) for i in shapes]
    start_db = await conn.fetchval("SELECT clock_timestamp()")
    for segment in segments:
        await publish_segment(exchange, "segment.created", account, segment)
    for segment in segments:
        await wait_built(conn, segment, start_db)
    # What autovacuum does soon after the builds' millions of inserts (statistics, visibility
    # map): the change runs measure the steady state, not the minute after a bulk load.
    await conn.execute("VACUUM ANALYZE segment_members")
    return segments


async def reused_segments(conn: asyncpg.Connection, exchange: Any, n: int) -> list[uuid.UUID]:
    """n built segments of the 100k-contact account: those an earlier run with --reuse left,
    and new ones (built now, and left too) for the rest. Building a thousand takes minutes,
    changing them seconds."""
    rows = await conn.fetch(
        """SELECT id FROM segments WHERE account_id = $1 AND name = 'bench' AND status = 'DONE'
           ORDER BY created_at, id LIMIT $2""",
        ACCOUNT_SMALL,
        n,
    )
    segments = [r["id"] for r in rows]
    if len(segments) < n:
        segments += await live_segments(conn, exchange, n - len(segments), first=len(segments))
    await conn.execute("VACUUM ANALYZE segment_members")
    return segments


def _settled(text: str) -> float:
    """contact.changed messages the worker has settled (acked, retried or dead-lettered)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "segments_messages_total"
        and sample.labels.get("queue") == "segments.contact_changes"
        # The workers' freshness ticks travel in the same queue; they are not changes.
        and sample.labels.get("reason") != "freshness_tick"
    )


async def _all_settled(worker: ServiceProcess, before: str, messages: int) -> None:
    """Until the worker has settled `messages` more than at `before` (the queue looking
    empty is not enough: up to the prefetch may wait unacknowledged in the worker)."""
    start = _settled(before)
    while _settled(await worker.metrics()) - start < messages:
        await asyncio.sleep(0.02)


# The mixed workload's writes, in turn: each changes `per_message` random contacts one way and
# says so with its exact hint (what the shim's own ingestion would send).
_FIELD_WRITES = {
    "status": """UPDATE contacts SET status = CASE status WHEN 'subscribed' THEN 'unsubscribed'
                     ELSE 'subscribed' END WHERE account_id = $2 AND id = ANY($1::uuid[])""",
    "country": """UPDATE contacts
                  SET country = ($3::text[])[1 + floor(random() * cardinality($3::text[]))::int]
                  WHERE account_id = $2 AND id = ANY($1::uuid[])""",
    "tags": """UPDATE contacts
               SET tags = ARRAY[($3::text[])[1 + floor(random() * cardinality($3::text[]))::int]]
               WHERE account_id = $2 AND id = ANY($1::uuid[])""",
}
# The values a field write draws from (the generator's own, so that memberships move).
_FIELD_VALUES: dict[str, list[str]] = {"country": list(COUNTRIES), "tags": list(TAGS)}
_EVENT_TYPES = ("open", "click", "bounce")
_CHANGED_LISTS = ("newsletter", "customers", "webinar", "blocklist")


async def _mixed_write(
    conn: asyncpg.Connection, account: uuid.UUID, batch: list[uuid.UUID], turn: int
) -> ChangeHints:
    """Write number `turn` of the mixed workload: a field update, events or a list change,
    a third each; returns its exact hint."""
    kind, which = turn % 3, (turn // 3) % 12
    if kind == 0:
        name = list(_FIELD_WRITES)[which % len(_FIELD_WRITES)]
        values = (_FIELD_VALUES[name],) if name in _FIELD_VALUES else ()
        await conn.execute(_FIELD_WRITES[name], batch, account, *values)
        return ChangeHints(fields=[name, "updated_at"])
    if kind == 1:
        event_type = _EVENT_TYPES[which % len(_EVENT_TYPES)]
        await conn.execute(
            """INSERT INTO events (account_id, contact_id, type, occurred_at)
               SELECT $2, c, $3, now() FROM unnest($1::uuid[]) c""",
            batch,
            account,
            event_type,
        )
        return ChangeHints(events=[event_type])
    key = _CHANGED_LISTS[which % len(_CHANGED_LISTS)]
    # Half joins the list, half leaves it (whoever is on it already stays).
    half = len(batch) // 2
    await conn.execute(
        """INSERT INTO contact_list_members (list_id, contact_id, account_id)
           SELECT $2, c, $3 FROM unnest($1::uuid[]) c ON CONFLICT DO NOTHING""",
        batch[:half],
        list_id(account, key),
        account,
    )
    await conn.execute(
        "DELETE FROM contact_list_members WHERE list_id = $2 AND contact_id = ANY($1::uuid[])",
        batch[half:],
        list_id(account, key),
    )
    return ChangeHints(lists=True)


# A write of the workload: changes `batch` (write number `turn`) and returns its exact hint.
Write = Callable[[asyncpg.Connection, uuid.UUID, list[uuid.UUID], int], Awaitable[ChangeHints]]


async def _flip_status(
    conn: asyncpg.Connection, account: uuid.UUID, batch: list[uuid.UUID], turn: int
) -> ChangeHints:
    await conn.execute(_FIELD_WRITES["status"], batch, account)
    return ChangeHints(fields=["status"])


async def publish_writes(
    conn: asyncpg.Connection,
    exchange: Any,
    ids: list[uuid.UUID],
    rate: int,
    until: Callable[[], bool],
    write: Write,
    account: uuid.UUID = ACCOUNT_SMALL,
    per_message: int = 100,
    hints: bool = False,
) -> int:
    """Change contacts at `rate` per second until `until()`: `write` changes `per_message`
    random contacts at a time, and one contact.changed announces it, with the write's exact
    hint when `hints`. Returns how many contacts were changed."""
    sent = turn = 0
    started = time.perf_counter()
    rng = random.Random(rate)
    while not until():
        batch = rng.sample(ids, per_message)
        hint = await write(conn, account, batch, turn)
        body = ContactChanged(
            schema_version=1, account_id=account, contact_ids=batch,
            changed_at=datetime.now(UTC), changed=hint if hints else None,
        )  # fmt: skip
        await exchange.publish(contract_message(body), routing_key="contact.changed")
        sent += per_message
        turn += 1
        await asyncio.sleep(max(0.0, started + sent / rate - time.perf_counter()))
    return sent


# Status flips of random contacts (so memberships move), announced with their exact hint.
publish_flips = functools.partial(publish_writes, write=_flip_status)


async def _change_run(
    conn: asyncpg.Connection,
    worker: ServiceProcess,
    exchange: Any,
    ids: list[uuid.UUID],
    rate: int,
    seconds: float,
    hints: bool = False,
    workload: str = "flips",
) -> dict[str, Any]:
    """contact.changed at `rate` contacts/s for `seconds`: throughput and lag quantiles."""
    before = await worker.metrics()
    started = time.perf_counter()
    sent = await publish_writes(
        conn,
        exchange,
        ids,
        rate,
        lambda: time.perf_counter() - started >= seconds,
        write=_mixed_write if workload == "mixed" else _flip_status,
        hints=hints,
    )
    publish_s = time.perf_counter() - started
    await _all_settled(worker, before, sent // 100)
    drained_s = time.perf_counter() - started
    after = await worker.metrics()
    return {
        "target_rate": rate,
        "contacts_changed": sent,
        "published_rate": round(sent / publish_s),
        "throughput": round(sent / drained_s),
        "lag_p50_s": metric_quantile(before, after, "segments_change_lag_seconds", 0.5),
        "lag_p99_s": metric_quantile(before, after, "segments_change_lag_seconds", 0.99),
        "mean_batch_contacts": _mean(before, after, "segments_incremental_batch_contacts"),
        "mean_batch_apply_s": _mean(before, after, "segments_incremental_duration_seconds"),
    }


async def bench_changes(
    conn: asyncpg.Connection, worker: ServiceProcess, exchange: Any, args: argparse.Namespace
) -> dict[str, Any]:
    started = time.perf_counter()
    if args.reuse:
        segments = await reused_segments(conn, exchange, args.segments)
    else:
        segments = await live_segments(conn, exchange, args.segments)
    created_s = time.perf_counter() - started
    ids = [r[0] for r in await conn.fetch(
        "SELECT id FROM contacts WHERE account_id = $1", ACCOUNT_SMALL)]  # fmt: skip
    # With and without hints side by side, rate by rate, when both are asked for.
    modes = [True, False] if args.hints == "both" else [args.hints == "on"]
    try:
        runs = [
            {
                "hints": hints,
                **await _change_run(
                    conn, worker, exchange, ids, rate, args.seconds, hints, args.workload
                ),
            }
            for rate in args.rates
            for hints in modes
        ]
        # Settled: every change applied. The memberships must be right, or nothing counts.
        disagreements = await sample_disagreements(conn, ACCOUNT_SMALL, segments)
    finally:
        if not args.reuse:
            await conn.execute("DELETE FROM segments WHERE id = ANY($1::uuid[])", segments)
    return {
        "segments": args.segments,
        "created_and_built_s": None if args.reuse else round(created_s, 1),
        "workload": args.workload,
        "runs": runs,
        "reference_sample": {"contacts": 300, "segments_disagreeing": disagreements},
    }


@asynccontextmanager
async def worker_on_own_vhost(
    dsn: str, code_dir: str | None
) -> AsyncIterator[tuple[Any, ServiceProcess]]:
    """A `segments worker` process (from `code_dir`, to compare checkouts) on a vhost of its
    own, started and ready, and an exchange to publish to with confirms; all stopped after."""
    async with vhost() as amqp_url:
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare(channel)
        worker = ServiceProcess(dsn, amqp_url, code_dir)
        try:
            await worker.wait_ready()
            yield exchange, worker
        finally:
            worker.stop()
            await connection.close()


async def main(args: argparse.Namespace) -> None:
    conn = await connect(args.dsn)
    report: dict[str, Any] = {"code": args.code_dir or "."}
    async with (
        production_settings(conn) if args.settings == "production" else nullcontext([]) as set_,
        worker_on_own_vhost(args.dsn, args.code_dir) as (exchange, worker),
    ):
        report["server_settings_set_for_the_run"] = set_
        # Not set by the run (a restart), but it moves the change figures by a third
        # (docs/database.md): every report says which it ran with.
        report["shared_buffers"] = await conn.fetchval("SELECT current_setting('shared_buffers')")
        if "builds" in args.phases:
            report["builds"] = await bench_builds(conn, worker, exchange, args.runs)
            report["worker_peak_rss_mib_after_builds"] = worker.peak_rss_mib()
        if "changes" in args.phases:
            report["changes"] = await bench_changes(conn, worker, exchange, args)
            report["worker_peak_rss_mib_after_changes"] = worker.peak_rss_mib()
    await conn.close()
    print(json.dumps(report, indent=2))


def comma_ints(text: str) -> list[int]:
    """ "1000,2000" -> [1000, 2000] (an argparse type)."""
    return [int(part) for part in text.split(",")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--phases", default="builds,changes", help="builds, changes or both")
    parser.add_argument("--runs", type=int, default=3, help="builds per data size")
    parser.add_argument(
        "--rates",
        type=comma_ints,
        default=[1000],
        help="changed contacts per second, comma-separated",
    )
    parser.add_argument("--seconds", type=float, default=30, help="per rate")
    parser.add_argument("--segments", type=int, default=100, help="live segments")
    parser.add_argument(
        "--hints",
        nargs="?",
        const="on",
        default="off",
        choices=("on", "off", "both"),
        help="contact.changed carries its exact change hint (on), none (off), or each rate"
        " is run both ways (both)",
    )
    parser.add_argument(
        "--workload",
        choices=("flips", "mixed"),
        default="flips",
        help="flips: status flips; mixed: a third field updates, events, list changes",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the segments for the next run, and use those an earlier one kept",
    )
    parser.add_argument("--code-dir", help="run the worker from this checkout (to compare)")
    parser.add_argument(
        "--settings",
        choices=("production", "server"),
        default="production",
        help="production (default): the server settings a change workload needs for the run"
        " (bench.common.PRODUCTION: autovacuum on, max_wal_size 16GB) where the server has"
        " others; server: leave the server's",
    )
    asyncio.run(main(parser.parse_args()))
