"""Benchmark `segments import`: 1M contacts from CSV (and 1M events), end to end.

    .venv/bin/python -m bench.import_bench [--contacts 1000000] [--events 1000000]

Generates the files in /tmp (reused when they exist with the same size), migrates a scratch
database `segments_import_bench`, creates an account with a few declared custom fields, then
runs the real command (`python -m segments.cli import ...` as a subprocess) for:

1. contacts, first load (every row inserted);
2. the same file again (every row checked, none changed: no messages);
3. events by email (every row looked up and inserted), if --events > 0.

It prints one line per run (rows, seconds, rows/s, CPU seconds of the import process and of
its PostgreSQL backend, the load average, the command's JSON summary) and drops the scratch
database at the end (--keep keeps it). On a shared machine the CPU seconds say more than the
wall time: with 2 cores the import cannot beat the larger of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from worker.migrations import migrate

SERVER_DSN = os.environ.get("BENCH_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "segments_import_bench"
TMP = Path("/tmp")
FIRST = ["ada", "alan", "grace", "linus", "margaret", "ken", "barbara", "dennis", "edsger"]
LAST = ["lovelace", "turing", "hopper", "torvalds", "hamilton", "thompson", "liskov", "ritchie"]
COUNTRIES = ["US", "GB", "DE", "FR", "CA", "ES", "IT", "NL", "BR", "AU", "IN", "PL"]
CITIES = ["New York", "London", "Berlin", "Paris", "Toronto", "Madrid", "Rome", "Amsterdam"]
TAGS = ["vip", "newsletter", "beta", "customer", "lead", "churned", "partner"]
STATUSES = ["subscribed"] * 8 + ["unsubscribed", "bounced", "pending"]
EVENT_TYPES = ["delivered"] * 5 + ["open"] * 3 + ["click", "bounce", "unsubscribe"]
FIELDS = {"score": "number", "vip": "boolean", "signup": "datetime", "plan": "text"}


def _dsn(database: str) -> str:
    return urlunsplit(urlsplit(SERVER_DSN)._replace(path="/" + database))


def email(i: int) -> str:
    return f"user{i}@example{i % 97}.com"


def write_contacts(path: Path, count: int) -> None:
    rng = random.Random(1)
    base = datetime(2020, 1, 1, tzinfo=UTC)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "email", "first_name", "last_name", "name", "company", "status", "country",
                "city", "language", "tags", "isp_id", "attr.score", "attr.vip", "attr.signup",
                "attr.plan", "created_at",
            ]
        )  # fmt: skip
        for i in range(count):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            created = base + timedelta(minutes=rng.randrange(2_500_000))
            writer.writerow(
                [
                    email(i),
                    first.title(),
                    last.title(),
                    f"{first.title()} {last.title()}",
                    f"Company {i % 5000}" if rng.random() < 0.6 else "",
                    rng.choice(STATUSES),
                    rng.choice(COUNTRIES),
                    rng.choice(CITIES) if rng.random() < 0.8 else "",
                    rng.choice(["en", "de", "fr", "es"]),
                    "|".join(rng.sample(TAGS, rng.randrange(4))),
                    rng.randrange(1, 12) if rng.random() < 0.9 else "",
                    rng.randrange(100),
                    rng.choice(["true", "false", ""]),
                    created.date().isoformat(),
                    rng.choice(["free", "pro", "team"]),
                    created.isoformat(),
                ]
            )


def write_events(path: Path, count: int, contacts: int) -> None:
    rng = random.Random(2)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    campaigns = [f"00000000-0000-4000-8000-{n:012d}" for n in range(50)]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "type", "campaign_id", "occurred_at"])
        for _ in range(count):
            occurred = base + timedelta(seconds=rng.randrange(60_000_000))
            writer.writerow(
                [
                    email(rng.randrange(contacts)),
                    rng.choice(EVENT_TYPES),
                    rng.choice(campaigns),
                    occurred.isoformat(),
                ]
            )


def ensure_file(path: Path, write: Any, *args: int) -> None:
    stamp = path.with_suffix(path.suffix + ".rows")
    if path.exists() and stamp.exists() and stamp.read_text() == repr(args):
        return
    started = time.monotonic()
    write(path, *args)
    stamp.write_text(repr(args))
    size = path.stat().st_size / 1e6
    print(f"generated {path} ({size:.0f} MB) in {time.monotonic() - started:.1f}s", flush=True)


async def setup() -> str:
    """A fresh scratch database with one account; returns the account id."""
    await drop()
    await migrate(_dsn(DATABASE))
    conn = await asyncpg.connect(_dsn(DATABASE))
    try:
        account_id = await conn.fetchval(
            "INSERT INTO accounts (name) VALUES ('import bench') RETURNING id"
        )
        await conn.executemany(
            "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, $2, $3)",
            [(account_id, key, type_) for key, type_ in FIELDS.items()],
        )
    finally:
        await conn.close()
    return str(account_id)


async def drop() -> None:
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    finally:
        await conn.close()


def _backend_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BackendCpu:
    """CPU seconds of the import's PostgreSQL backend, sampled while it runs (the process
    is gone once the import disconnects, so the last sample stands for the total)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> BackendCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        pid = None
        while not self._stop.wait(0.2):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = pid or asyncio.run(_import_backend_pid())
                if pid:
                    self.seconds = _backend_cpu_s(pid)


async def _import_backend_pid() -> int | None:
    conn = await asyncpg.connect(_dsn(DATABASE))
    try:
        pid: int | None = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = "
            "'segments' AND pid <> pg_backend_pid() LIMIT 1",
            DATABASE,
        )
        return pid
    finally:
        await conn.close()


def run_import(label: str, kind: str, path: Path, account_id: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "segments.cli", "import", kind, str(path)]
    command += ["--account", account_id]
    env = {**os.environ, "SEGMENTS_DATABASE_URL": _dsn(DATABASE), "SEGMENTS_LOG_FORMAT": "json"}
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with BackendCpu() as backend:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{label}: exit {done.returncode}\n{done.stderr}")
    summary: dict[str, Any] = json.loads(done.stdout)
    python_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (
        cpu_before.ru_utime + cpu_before.ru_stime
    )
    rate = summary["read"] / summary["seconds"]
    print(
        f"{label}: {summary['read']:,} rows in {summary['seconds']:.1f}s ({rate:,.0f} rows/s); "
        f"CPU: import process {python_cpu:.1f}s, its PostgreSQL backend ~{backend.seconds:.1f}s; "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}; process wall {wall:.1f}s\n"
        f"  {json.dumps(summary)}",
        flush=True,
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    contacts_csv = TMP / f"segments_import_bench_contacts_{args.contacts}.csv"
    events_csv = TMP / f"segments_import_bench_events_{args.events}.csv"
    ensure_file(contacts_csv, write_contacts, args.contacts)
    if args.events:
        ensure_file(events_csv, write_events, args.events, args.contacts)

    account_id = asyncio.run(setup())
    try:
        run_import("contacts, first load", "contacts", contacts_csv, account_id)
        run_import("contacts, same file again", "contacts", contacts_csv, account_id)
        if args.events:
            run_import("events by email", "events", events_csv, account_id)
    finally:
        if not args.keep:
            asyncio.run(drop())


if __name__ == "__main__":
    main()
