"""The service's processes as the chaos suite runs them, and the faults it injects into them
and into the servers under them (bench/chaos.py).

Each fault is a coroutine that breaks something, keeps it broken for `duration` seconds,
repairs it, and returns what it observed (e.g. how long /readyz took to say 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx

from bench.chaos_proxy import FaultProxy
from bench.chaos_servers import PrivatePostgres, PrivateRabbit
from bench.chaos_workload import Account, Producer
from worker.locks import segment_lock_key

READY_WITHIN_S = 5.0  # under a blackhole, /readyz must say 503 this soon
RECOVER_WITHIN_S = 30.0  # after a fault, /readyz must say 200 again this soon...
RESTART_WITHIN_S = 90.0  # ...or this soon when the API process itself was killed (a start)
KILL_INTO_BUILD_S = 1.0  # kill_in_build kills this long into the build's work


@dataclass
class Service:
    """One `segments` process (api or worker), restarted on demand after a kill."""

    name: str
    command: str
    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0

    async def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "segments.cli", self.command,
            env={**os.environ, **self.env},
            stdout=log, stderr=log,
        )  # fmt: skip
        log.close()

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            await self.process.wait()

    async def ensure_running(self) -> None:
        self.signal(signal.SIGCONT)
        if self.process is None or self.process.returncode is not None:
            self.restarts += 1
            await self.start()

    async def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                await self.kill()


@dataclass
class Rig:
    """Everything a fault may touch."""

    services: dict[str, Service]
    pg: PrivatePostgres
    rabbit: PrivateRabbit
    pg_proxy: FaultProxy
    amqp_proxy: FaultProxy
    api_url: str
    database_url: str  # direct, not through the proxy
    producer: Producer | None = None  # the outside producer of contact.changed
    account: Account | None = None
    # Starts a large build; when (the database's clock), None if not acknowledged.
    big_segment: Callable[[], Awaitable[datetime | None]] | None = None
    big_segment_id: uuid.UUID | None = None  # ...of this segment
    backlog: int = 1000  # contact.changed waiting in the broker at rabbit_restart_backlog
    observations: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def of_role(self, role: str) -> list[Service]:
        return [s for s in self.services.values() if s.name.startswith(role)]


async def readyz_status(api_url: str, timeout: float) -> int | None:
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            return (await http.get(f"{api_url}/readyz")).status_code
    except httpx.HTTPError:
        return None


async def wait_readyz(rig: Rig, want: int, within: float) -> float | None:
    """Seconds until /readyz answered `want`, or None if it did not within `within`."""
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < within:
        left = within - elapsed
        if await readyz_status(rig.api_url, timeout=max(0.1, min(left, 5.0))) == want:
            return time.monotonic() - start
        await asyncio.sleep(0.2)
    return None


async def _kill(rig: Rig, role: str, duration: float) -> None:
    for service in rig.of_role(role)[:1]:
        await service.kill()
    await asyncio.sleep(duration)
    for service in rig.of_role(role):
        await service.ensure_running()


async def _pause(rig: Rig, role: str, duration: float) -> None:
    services = rig.of_role(role)[:1]
    for service in services:
        service.signal(signal.SIGSTOP)
    await asyncio.sleep(duration)
    for service in services:
        service.signal(signal.SIGCONT)


async def _network(rig: Rig, proxy: FaultProxy, how: str, duration: float, label: str) -> None:
    if how == "cut":
        proxy.cut()
    else:
        proxy.blackhole()
        # The promise: a hung dependency is noticed by /readyz within READY_WITHIN_S. It is
        # the API's relay that speaks to the broker and the API's pool to the database.
        took = await wait_readyz(rig, 503, READY_WITHIN_S + 0.5)
        if took is None or took > READY_WITHIN_S:
            rig.violations.append(
                f"/readyz did not answer 503 within {READY_WITHIN_S} s of {label}"
            )
        else:
            rig.observations.append(f"{label}: /readyz 503 after {took:.1f} s")
    await asyncio.sleep(max(0.0, duration))
    proxy.heal()


async def _rabbit(rig: Rig, how: str, duration: float) -> None:
    if how == "stop_app":
        await asyncio.to_thread(rig.rabbit.stop_app)
        await asyncio.sleep(duration)
        await asyncio.to_thread(rig.rabbit.start_app)
    else:
        await asyncio.to_thread(rig.rabbit.restart)


async def _rabbit_backlog(rig: Rig, duration: float) -> None:
    """A broker restart with a backlog in flight: the consumers paused while an outside
    producer publishes `rig.backlog` contact.changed, resumed so that they take their
    prefetch (unacknowledged), and the node restarted under them."""
    assert rig.producer is not None and rig.account is not None
    consumers = [*rig.of_role("relay"), *rig.of_role("worker")]
    for service in consumers:
        service.signal(signal.SIGSTOP)
    ids = list(rig.account.contact_ids.values())
    try:
        for i in range(rig.backlog):
            while not await rig.producer.publish(rig.account.account_id, [ids[i % len(ids)]]):
                await asyncio.sleep(0.2)
    finally:
        for service in consumers:
            service.signal(signal.SIGCONT)
    # The consumers take their prefetch back: wait (up to 10 s) until the backlog is held
    # unacknowledged by them, or as much of it as their prefetch allows.
    ready = unacked = 0
    for _ in range(50):
        ready, unacked = await _in_flight(rig)
        if unacked >= rig.backlog:
            break
        await asyncio.sleep(0.2)
    rig.observations.append(f"rabbit_restart_backlog: {unacked} unacknowledged, {ready} ready")
    await asyncio.to_thread(rig.rabbit.restart)


async def _in_flight(rig: Rig) -> tuple[int, int]:
    """Messages ready and unacknowledged over every queue of the suite's vhost."""
    out = await asyncio.to_thread(
        rig.rabbit.ctl, "list_queues", "-p", "chaos", "messages_ready",
        "messages_unacknowledged", "--no-table-headers",
    )  # fmt: skip
    ready = unacked = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            ready, unacked = ready + int(parts[0]), unacked + int(parts[1])
    return ready, unacked


async def _pg_restart(rig: Rig, duration: float) -> None:
    await asyncio.to_thread(rig.pg.restart)


async def _pg_terminate(rig: Rig, duration: float) -> None:
    """End every backend of the service (application_name `segments...`), not the suite's."""
    conn = await asyncpg.connect(rig.database_url, timeout=10)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name LIKE 'segments%' AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()


async def _kill_in_build(rig: Rig, duration: float) -> None:
    """Change the big segment's rules (a build of seconds follows), and kill every worker
    (one of them holds the build) once that build has worked KILL_INTO_BUILD_S; record how
    far into it the kill landed. A build quicker than that (a quiet machine) is let be, and
    the rules changed again, to be killed in half the time."""
    assert rig.big_segment is not None and rig.big_segment_id is not None
    assert rig.account is not None
    landed: list[str] = []
    for at_least in (KILL_INTO_BUILD_S, KILL_INTO_BUILD_S / 2, KILL_INTO_BUILD_S / 4):
        if (since := await rig.big_segment()) is None:
            landed.append("the rules change was not acknowledged")
            break
        conn = await asyncpg.connect(rig.database_url, timeout=10)
        try:
            seen = await _into_build(
                conn, rig.account.account_id, rig.big_segment_id, since, at_least, 30
            )
        finally:
            await conn.close()
        if seen is None:
            landed.append("no build seen running within 30 s")
            break
        if seen[1] is not None:
            landed.append(f"killed {seen[0]:.1f} s into a build (segment {seen[1]})")
            break
        landed.append(f"a build ended {seen[0]:.1f} s in, unkilled")
    for service in [*rig.of_role("relay"), *rig.of_role("worker")]:
        await service.kill()
    rig.observations.append(f"kill_in_build: {'; '.join(landed)}")
    await asyncio.sleep(duration)
    for service in [*rig.of_role("relay"), *rig.of_role("worker")]:
        await service.ensure_running()


# Who holds a segment's advisory lock (a bigint key, which pg_locks shows as classid, objid
# and objsubid 1), in a transaction begun since $4 (a build begun before the rules change, or
# a killed worker's backend still running its statement, is not the one to kill): the
# backend, its transaction's start, whether it is running one of a build's statements on its
# temporary table (worker/builds.py) right now, since when, the time now, and the status of
# the segment ($3 of account $5).
_LOCK_HOLDER = """
SELECT a.pid, a.xact_start, a.query_start, clock_timestamp() AS now,
       a.state = 'active' AND a.query LIKE '%build_diff%' AS building,
       (SELECT status FROM segments WHERE account_id = $5 AND id = $3) AS status
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND a.xact_start >= $4
"""


async def _into_build(
    conn: asyncpg.Connection,
    account_id: uuid.UUID,
    segment_id: uuid.UUID,
    since: datetime,
    at_least: float,
    within: float,
) -> tuple[float, str | None] | None:
    """Once a build of the segment begun since `since` has worked `at_least` seconds (from
    the start of its first statement seen on its temporary table; polled every 20 ms): how
    long, and the segment's status. If that build's transaction ends sooner: how long it was
    last seen working, and None. None if no build was seen within `within` seconds."""
    key = segment_lock_key(segment_id) & 0xFFFF_FFFF_FFFF_FFFF
    build: tuple[int, datetime] | None = None  # (pid, xact_start) of the build seen
    worked_since: datetime | None = None
    into = 0.0
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        row = await conn.fetchrow(
            _LOCK_HOLDER, key >> 32, key & 0xFFFF_FFFF, segment_id, since, account_id
        )
        holder = None if row is None else (row["pid"], row["xact_start"])
        if build is not None and holder != build:
            return into, None  # it ended (committed or rolled back) before `at_least`
        if row is not None and worked_since is None and row["building"]:
            build, worked_since = holder, row["query_start"]
        if row is not None and worked_since is not None:
            into = (row["now"] - worked_since).total_seconds()
            if into >= at_least:
                return into, row["status"]
        await asyncio.sleep(0.02)
    return None if build is None else (into, None)


Fault = Callable[[Rig, float], Awaitable[None]]

FAULTS: dict[str, Fault] = {
    "kill_api": lambda rig, d: _kill(rig, "api", d),
    "kill_relay": lambda rig, d: _kill(rig, "relay", d),
    "kill_worker": lambda rig, d: _kill(rig, "worker", d),
    "stop_api": lambda rig, d: _pause(rig, "api", d),
    "stop_relay": lambda rig, d: _pause(rig, "relay", d),
    "stop_worker": lambda rig, d: _pause(rig, "worker", d),
    "cut_pg": lambda rig, d: _network(rig, rig.pg_proxy, "cut", d, "cut_pg"),
    "cut_amqp": lambda rig, d: _network(rig, rig.amqp_proxy, "cut", d, "cut_amqp"),
    "blackhole_pg": lambda rig, d: _network(rig, rig.pg_proxy, "blackhole", d, "blackhole_pg"),
    "blackhole_amqp": lambda rig, d: _network(
        rig, rig.amqp_proxy, "blackhole", d, "blackhole_amqp"
    ),
    "rabbit_stop_app": lambda rig, d: _rabbit(rig, "stop_app", d),
    "rabbit_restart": lambda rig, d: _rabbit(rig, "restart", d),
    "rabbit_restart_backlog": _rabbit_backlog,
    "pg_restart": _pg_restart,
    "pg_terminate": _pg_terminate,
    "kill_in_build": _kill_in_build,
}
