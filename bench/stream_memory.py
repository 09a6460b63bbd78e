"""Memory of the API while it streams large segments: the simple API's contacts
(`GET /api/segments/contacts`) and the v2 export (CSV and NDJSON).

    .venv/bin/python -m bench.stream_memory [--members 30000,300000]

Makes its own database (segments_bench_stream, dropped at the end unless --keep), an account,
and per size a DONE segment of that many members (contacts with names, tags and custom
fields), made in SQL. Starts `segments api` as a subprocess (no outbox relay, so no broker
needed), reads each endpoint to the end without keeping the body, and samples the process's
resident memory (VmRSS in /proc) every 20 ms. Prints one line per read: members, bytes,
seconds, the RSS before the read and the peak during it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import httpx

from worker.accounts import ALL_SCOPES, create_account
from worker.migrations import migrate

DEFAULT_SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/")
DATABASE = "segments_bench_stream"
_SAMPLE_S = 0.02


@dataclass
class Reading:
    label: str
    members: int
    bytes: int
    seconds: float
    rss_before_mib: float
    rss_peak_mib: float


def _dsn(server: str, database: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path="/" + database))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class PeakRss:
    """Samples a process's RSS in a thread while the block runs; `peak` is the highest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            self._stop.wait(_SAMPLE_S)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pid))


async def make_segment(conn: asyncpg.Connection, account_id: UUID, members: int) -> UUID:
    """`members` contacts of a new account-wide batch, all members of a new DONE segment."""
    segment_id: UUID = await conn.fetchval(
        """INSERT INTO segments (account_id, name, dialect, rules, status, total_count)
           VALUES ($1, $2, 'simple', '[]', 'DONE', $3) RETURNING id""",
        account_id,
        f"bench {members}",
        members,
    )
    await conn.execute(
        """INSERT INTO contacts (account_id, email, name, first_name, last_name, company,
                                 status, country, city, language, tags, attributes)
           SELECT $1, 'member' || g || '-' || $3::text || '@example.com', 'Member ' || g,
                  'Member', 'N' || g, 'Company ' || g % 1000, 'subscribed', 'nl',
                  'Amsterdam', 'nl', ARRAY['tag' || g % 7, 'vip'],
                  jsonb_build_object('plan', 'pro', 'score', g % 100)
           FROM generate_series(1, $2::int) g""",
        account_id,
        members,
        str(segment_id),
    )
    await conn.execute(
        """INSERT INTO segment_members (segment_id, contact_id, account_id)
           SELECT $1, id, account_id FROM contacts
           WHERE account_id = $2 AND email LIKE '%-' || $3::text || '@example.com'""",
        segment_id,
        account_id,
        str(segment_id),
    )
    await conn.execute("ANALYZE contacts; ANALYZE segment_members")
    return segment_id


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_api(dsn: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "SEGMENTS_DATABASE_URL": dsn,
        "SEGMENTS_API_PORT": str(port),
        "SEGMENTS_OUTBOX_RELAY_ENABLED": "false",
        "SEGMENTS_API_RATE_LIMIT_PER_MINUTE": "100000",
        "SEGMENTS_LOG_LEVEL": "warning",
    }
    script = Path(sys.executable).parent / "segments"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(script), "api"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"segments api exited:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling with a deadline
    process.kill()
    raise RuntimeError("segments api did not start within 60 s")


def read(url: str, path: str, key: str, pid: int, label: str, members: int) -> Reading:
    """Reads the whole body, counting bytes, keeping none."""
    before = rss_mib(pid)
    started = time.monotonic()
    size = 0
    with (
        PeakRss(pid) as peak,
        httpx.Client(base_url=url, timeout=600) as http,
        http.stream("GET", path, headers={"X-API-Key": key}) as response,
    ):
        response.raise_for_status()
        for chunk in response.iter_raw():
            size += len(chunk)
    return Reading(label, members, size, time.monotonic() - started, before, peak.peak)


async def prepare(dsn: str, sizes: list[int]) -> tuple[str, list[tuple[int, UUID, int]]]:
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        account = await create_account(conn, "stream bench", ALL_SCOPES)
        segments = []
        for members in sizes:
            segment_id = await make_segment(conn, account.account_id, members)
            number: int = await conn.fetchval(
                "SELECT number FROM segments WHERE id = $1", segment_id
            )
            segments.append((members, segment_id, number))
    finally:
        await conn.close()
    return account.api_key, segments


async def drop(server: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default="30000,300000", help="segment sizes, comma-separated")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server DSN")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    sizes = [int(s) for s in args.members.split(",")]
    dsn = _dsn(args.server, DATABASE)
    asyncio.run(drop(args.server))
    key, segments = asyncio.run(prepare(dsn, sizes))
    log_path = Path(tempfile.mkstemp(prefix="stream-bench-", suffix=".log")[1])
    process, url = start_api(dsn, log_path)
    readings = []
    try:
        read(url, "/api/segments", key, process.pid, "warm-up", 0)
        for members, segment_id, number in segments:
            export = f"/api/v2/segments/{segment_id}/contacts/export/"
            for label, path in (
                ("simple contacts (JSON)", f"/api/segments/contacts?segment_id={number}"),
                ("export csv", f"{export}?format=csv"),
                ("export ndjson", f"{export}?format=ndjson"),
            ):
                readings.append(read(url, path, key, process.pid, label, members))
                r = readings[-1]
                print(
                    f"{r.label:24} {r.members:>8,} members {r.bytes / 2**20:8.1f} MiB "
                    f"{r.seconds:6.1f} s  RSS before {r.rss_before_mib:6.1f} MiB, "
                    f"peak {r.rss_peak_mib:6.1f} MiB",
                    flush=True,
                )
    finally:
        process.terminate()
        process.wait(timeout=30)
        log_path.unlink(missing_ok=True)
        if not args.keep:
            asyncio.run(drop(args.server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
