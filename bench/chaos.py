"""The chaos suite (docs/reliability.md): the service as real processes on servers of its own,
a recorded workload, faults on a seeded schedule, then a check of the history.

    .venv/bin/python -m bench.chaos --seed 1 --duration 180
    .venv/bin/python -m bench.chaos --faults rabbit_restart --duration 60 --backlog 1000
    .venv/bin/python -m bench.chaos --self-test   # must catch a planted lost notification

Starts a PostgreSQL server and a RabbitMQ node in a scratch directory (never the shared
ones), the API (`segments api`), a worker that runs the outbox relay ("relay") and more
workers without one, each behind a FaultProxy to the database and the broker. Prints a JSON
summary last; exits 1 on any violation (0 in --self-test mode only if the planted violation
was caught).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.chaos_check import check, dead_letters
from bench.chaos_faults import (
    FAULTS,
    RECOVER_WITHIN_S,
    RESTART_WITHIN_S,
    Rig,
    Service,
    wait_readyz,
)
from bench.chaos_feeds import Baseline, take_baselines
from bench.chaos_history import History
from bench.chaos_messages import MessageCopy
from bench.chaos_proxy import FaultProxy
from bench.chaos_servers import PrivatePostgres, PrivateRabbit, free_port, remove_tree
from bench.chaos_workload import Account, Api, Driver, Producer, set_up, write_directly
from worker.locks import segment_lock_key

VHOST = "chaos"
DATABASE = "segments_chaos"
SERVICE_ENV = {
    "SEGMENTS_LOG_FORMAT": "json",
    "SEGMENTS_API_RATE_LIMIT_PER_MINUTE": "1000000",
    "SEGMENTS_OUTBOX_POLL_INTERVAL_S": "1",
    "SEGMENTS_WORKER_METRICS_PORT": "0",
    # Short backoffs so a run settles in seconds; enough attempts that no outage of the
    # schedule's length can exhaust them (a dead-lettered valid message is a failure).
    "SEGMENTS_RETRY_DELAYS_S": "1,2,5",
    "SEGMENTS_MAX_ATTEMPTS": "50",
    "SEGMENTS_STUCK_AFTER_S": "20",
    "SEGMENTS_SHUTDOWN_GRACE_S": "5",
}


@dataclass
class Outcome:
    seed: int
    faults: dict[str, int] = field(default_factory=dict)
    acked: int = 0
    uncertain: int = 0
    not_sent: int = 0
    violations: list[str] = field(default_factory=list)
    dead_letters: int = 0
    converge_s: float | None = None
    observations: list[str] = field(default_factory=list)
    log_lines: int = 0

    def summary(self) -> dict[str, Any]:
        wrong = sum(v.startswith("wrong membership") for v in self.violations)
        lost = sum(v.startswith("lost") for v in self.violations)
        feeds = sum(v.startswith("feed of") for v in self.violations)
        messages = sum(v.startswith("messages of") for v in self.violations)
        return {
            "seed": self.seed,
            "faults": self.faults,
            "writes_acknowledged": self.acked,
            "writes_uncertain": self.uncertain,
            "writes_not_sent": self.not_sent,
            "lost": lost,
            "wrong_memberships": wrong,
            "feed_inconsistencies": feeds,
            "message_inconsistencies": messages,
            "dead_letters": self.dead_letters,
            "converge_s": None if self.converge_s is None else round(self.converge_s, 1),
            "violations": self.violations,
            "observations": self.observations,
            "log_lines_checked": self.log_lines,
        }


async def _start_servers(work: Path) -> tuple[PrivatePostgres, PrivateRabbit]:
    taken: set[int] = set()
    pg = PrivatePostgres(work / "pg", free_port(taken))
    node = f"chaos{uuid.uuid4().hex[:6]}@localhost"
    rabbit = PrivateRabbit(work / "rabbit", free_port(taken), node)
    await asyncio.gather(asyncio.to_thread(pg.create), asyncio.to_thread(rabbit.create))
    return pg, rabbit


def _services(
    work: Path, database_url: str, amqp_url: str, api_port: int, workers: int
) -> dict[str, Service]:
    env = {**SERVICE_ENV, "SEGMENTS_DATABASE_URL": database_url, "SEGMENTS_AMQP_URL": amqp_url}
    services = {
        "api": Service("api", "api", {**env, "SEGMENTS_API_PORT": str(api_port)}, work / "api.log"),
        "relay": Service("relay", "worker", env, work / "relay.log"),
    }
    for i in range(1, workers + 1):
        no_relay = {**env, "SEGMENTS_OUTBOX_RELAY_ENABLED": "false"}
        services[f"worker{i}"] = Service(f"worker{i}", "worker", no_relay, work / f"worker{i}.log")
    return services


async def _migrate(database_url: str) -> None:
    from worker.migrations import migrate

    await migrate(database_url)


_T0 = time.monotonic()


def say(message: str) -> None:
    """Progress on stdout, with the seconds since the suite started."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", flush=True)


def _schedule(
    rng: random.Random, kinds: list[str], duration: float, gap: tuple[float, float]
) -> list[tuple[float, str, float]]:
    """(start offset, kind, duration) of each fault, one at a time, seeded."""
    plan, at = [], rng.uniform(*gap)
    while at < duration - 2:
        kind = rng.choice(kinds)
        length = rng.uniform(2, 8) if kind.startswith("blackhole") else rng.uniform(0.5, 5)
        plan.append((at, kind, length))
        at += length + rng.uniform(*gap)
    return plan


async def _inject(
    rig: Rig,
    plan: list[tuple[float, str, float]],
    start: float,
    duration: float,
    outcome: Outcome,
) -> None:
    for at, kind, length in plan:
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        if time.monotonic() - start > duration:
            break  # faults that take longer than planned (restarts) push the rest out
        say(f"fault {kind} for {length:.1f}s")
        outcome.faults[kind] = outcome.faults.get(kind, 0) + 1
        try:
            await FAULTS[kind](rig, length)
        except Exception as exc:  # a fault that fails to inject is reported, not fatal
            rig.observations.append(f"{kind}: injection failed: {exc!r}")
        await _repair(rig)
        # Within 30 s of a fault's end without any process restarted; a killed API must
        # first start again (seconds of imports and migrations check on a busy machine).
        within = RESTART_WITHIN_S if kind == "kill_api" else RECOVER_WITHIN_S
        if await wait_readyz(rig, 200, within) is None:
            rig.violations.append(f"not ready within {within} s after {kind}")


async def _repair(rig: Rig) -> None:
    """Whatever a fault left broken: proxies healed, processes running."""
    rig.pg_proxy.heal()
    rig.amqp_proxy.heal()
    for service in rig.services.values():
        await service.ensure_running()


async def _settle(
    rig: Rig,
    account: Account,
    history: History,
    baselines: Mapping[uuid.UUID, Baseline],
    copy: MessageCopy,
    vhost: str,
    timeout: float,
) -> tuple[list[str], float | None, int]:
    start = time.monotonic()
    problems: list[str] = ["not checked"]
    queues: dict[str, int] = {}
    while time.monotonic() - start < timeout:
        try:
            queues = await asyncio.to_thread(rig.rabbit.queue_depths, vhost)
            problems = await check(rig.database_url, account, history, queues, baselines, copy)
        except Exception as exc:  # a server still restarting: try again
            problems = [f"check failed: {exc!r}"]
        if not problems:
            return [], time.monotonic() - start, 0
        await asyncio.sleep(1)
    return problems, None, dead_letters(queues)


def _check_logs(work: Path, outcome: Outcome) -> None:
    """Every line every process wrote is one JSON object (tracebacks inside it)."""
    for path in sorted(work.glob("*.log")):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            outcome.log_lines += 1
            try:
                assert isinstance(json.loads(line), dict)
            except (ValueError, AssertionError):
                outcome.violations.append(f"log {path.name}:{number} is not JSON: {line[:120]!r}")
                break


def _big_rules(flip: bool) -> dict[str, Any]:
    """The big segment's rules: the two variants swap every member out and every other
    contact in, so a rules change moves all N contacts, a build of seconds."""
    c_num = {"kind": "field", "field": "c_num", "operator": "lt" if flip else "gte", "value": 50}
    not_nl = {"not": {"kind": "field", "field": "country", "operator": "equals", "value": "NL"}}
    return {"all": [c_num, not_nl]}


async def _change_big_rules(
    api: Api, database_url: str, account: Account, segment_id: uuid.UUID
) -> datetime | None:
    """Once the big segment is built at its generation (up to 60 s: the build after an
    earlier kill may still run), a rules change to the variant it does not have, so that the
    build moves half its members. When it was sent (the database's clock), if acknowledged."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        deadline = time.monotonic() + 60
        while True:
            row = await conn.fetchrow(
                """SELECT status = 'DONE' AND built_generation = generation AS built,
                          rules::text AS rules
                   FROM segments WHERE account_id = $1 AND id = $2""",
                account.account_id,
                segment_id,
            )
            assert row is not None
            if row["built"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        sent: datetime = await conn.fetchval("SELECT clock_timestamp()")
    finally:
        await conn.close()
    body = {"rules_json": _big_rules(flip='"gte"' in row["rules"])}
    answer = await api.call("PATCH", f"/api/v2/segments/{segment_id}", body)
    return sent if answer is not None and answer.is_success else None


async def _baselines(
    database_url: str, account_id: uuid.UUID, timeout: float
) -> dict[uuid.UUID, Baseline]:
    """Every segment's members and feed seq once its first build is done (chaos_feeds.py)."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout
        while (taken := await take_baselines(conn, account_id)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the first builds did not finish within {timeout} s")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return taken


async def _open_rig(args: argparse.Namespace, work: Path) -> Rig:
    """Servers, proxies, a migrated database and the service's processes, started."""
    pg, rabbit = await _start_servers(work)
    pg_proxy, amqp_proxy = FaultProxy(pg.port), FaultProxy(rabbit.port)
    await pg_proxy.start()
    await amqp_proxy.start()
    rabbit.add_vhost(VHOST)
    direct_url = f"postgresql://postgres@127.0.0.1:{pg.port}/{DATABASE}"
    proxied_url = f"postgresql://postgres@127.0.0.1:{pg_proxy.port}/{DATABASE}"
    await _migrate(direct_url)
    api_port = free_port()
    amqp_url = f"amqp://guest:guest@127.0.0.1:{amqp_proxy.port}/{VHOST}"
    services = _services(work, proxied_url, amqp_url, api_port, args.workers)
    rig = Rig(
        services, pg, rabbit, pg_proxy, amqp_proxy, f"http://127.0.0.1:{api_port}", direct_url
    )
    rig.producer = Producer(f"{rabbit.url}{VHOST}")
    rig.backlog = args.backlog
    for service in services.values():
        await service.start()
    return rig


async def _close_rig(rig: Rig) -> None:
    await rig.producer.close()
    await asyncio.gather(*(service.stop() for service in rig.services.values()))
    await rig.pg_proxy.close()
    await rig.amqp_proxy.close()
    await asyncio.gather(asyncio.to_thread(rig.rabbit.stop), asyncio.to_thread(rig.pg.stop))


async def _workload(
    args: argparse.Namespace, rig: Rig, outcome: Outcome, copy: MessageCopy
) -> None:
    api = Api(rig.api_url)
    if await wait_readyz(rig, 200, 90) is None:
        raise RuntimeError("the API did not get ready; see api.log (--keep keeps it)")
    await copy.start(f"{rig.rabbit.url}{VHOST}")  # bound before any segment exists
    history = History()
    conn = await asyncpg.connect(rig.database_url)
    try:
        account = await set_up(api, conn, args.contacts, history)
    finally:
        await conn.close()
    rig.account = account
    say("account, contacts and segments set up")
    if args.big_contacts:
        big = await _seed_big(api, rig.database_url, account, args.big_contacts)
        rig.big_segment = lambda: _change_big_rules(api, rig.database_url, account, big)
        rig.big_segment_id = big
    baselines = await _baselines(rig.database_url, account.account_id, args.settle_timeout)
    say("first builds done; the feeds' baselines taken")
    rng = random.Random(args.seed)
    drivers = [
        Driver(i, Api(rig.api_url, account), account, history, rig.database_url, rig.producer,
               random.Random(rng.random()), owns_segments=i == 0, drivers=args.drivers)
        for i in range(args.drivers)
    ]  # fmt: skip
    kinds = [k for k in (args.faults.split(",") if args.faults else sorted(FAULTS)) if k]
    if not args.big_contacts:
        kinds = [k for k in kinds if k != "kill_in_build"]
    plan = [] if kinds == ["none"] else _schedule(rng, kinds, args.duration, args.gap)
    start = time.monotonic()
    until = start + args.duration
    await asyncio.gather(
        *(d.run(until) for d in drivers), _inject(rig, plan, start, args.duration, outcome)
    )
    await _repair(rig)
    for d in drivers:
        await d.finish(wait_s=60)
    if args.self_test:
        await _plant_unannounced(rig.database_url, account, history)
        await _plant_unrecorded(rig.database_url, account)
    say("workload done; settling")
    problems, converge, dlq = await _settle(
        rig, account, history, baselines, copy, VHOST, args.settle_timeout
    )
    outcome.violations += rig.violations + problems
    outcome.observations += rig.observations
    applied = sum(len(items) for items in copy.items.values())
    outcome.observations.append(
        f"membership.changed: {copy.received} messages received, {applied} feed items applied"
    )
    outcome.converge_s, outcome.dead_letters = converge, dlq
    outcome.acked, outcome.uncertain = history.acked, history.uncertain
    outcome.not_sent = history.not_sent


async def run(args: argparse.Namespace) -> Outcome:
    outcome = Outcome(args.seed)
    work = Path(tempfile.mkdtemp(prefix="chaos-", dir=args.work_dir))
    work.chmod(0o755)  # the servers run as their own users (chaos_servers.py)
    say(f"seed {args.seed}, logs in {work}")
    rig = await _open_rig(args, work)
    say("servers and processes started")
    copy = MessageCopy()
    try:
        await _workload(args, rig, outcome, copy)
    finally:
        say("stopping")
        await copy.close()
        await _close_rig(rig)
        say("stopped")
    _check_logs(work, outcome)
    if not args.keep:
        remove_tree(work)
    return outcome


async def _plant_unannounced(database_url: str, account: Account, history: History) -> None:
    """The self-test's bug: a contact leaves `subscribed` in the database and nobody tells
    the service. Recorded as an acknowledged write, as a producer that forgot would think."""
    conn = await asyncpg.connect(database_url)
    try:
        email = await conn.fetchval(
            "SELECT email FROM contacts WHERE account_id = $1 AND status = 'subscribed'"
            " ORDER BY email LIMIT 1",
            account.account_id,
        )
    finally:
        await conn.close()
    write = history.write(("contact", email, "status"), "unsubscribed")
    assert await write_directly(database_url, account, email, "status", "unsubscribed") == (
        "committed"
    )
    history.settle([write], acked=True)
    say(f"self-test: {email} unsubscribed in the database, not announced")


async def _plant_unrecorded(database_url: str, account: Account) -> None:
    """The self-test's second bug: a feed item saying a member left when it did not, written
    as the service would (the segment's lock held, the counter moved), with no message."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            member = await conn.fetchrow(
                "SELECT segment_id, contact_id FROM segment_members WHERE account_id = $1"
                " ORDER BY segment_id, contact_id LIMIT 1",
                account.account_id,
            )
            assert member is not None
            segment_id, contact_id = member["segment_id"], member["contact_id"]
            await conn.execute("SELECT pg_advisory_xact_lock($1)", segment_lock_key(segment_id))
            await conn.execute(
                """WITH feed AS (
                       UPDATE segment_change_feeds SET last_seq = last_seq + 1
                       WHERE account_id = $1 AND segment_id = $2 RETURNING last_seq)
                   INSERT INTO segment_membership_changes (account_id, segment_id, seq_first,
                       seq_last, left_ids, cause, generation, at)
                   SELECT $1, $2, last_seq, last_seq, ARRAY[$3::uuid], 'data', 1, now()
                   FROM feed""",
                account.account_id,
                segment_id,
                contact_id,
            )
    finally:
        await conn.close()
    say(f"self-test: {contact_id} recorded as leaving segment {segment_id}, still a member")


async def _seed_big(api: Api, database_url: str, account: Account, contacts: int) -> uuid.UUID:
    """Many contacts straight into the database, in a list of their own, and a segment over
    them whose build takes seconds: what kill_in_build lands in."""
    big_list = (await api.must("POST", "/api/v2/lists", {"name": "big"}))["id"]
    conn = await asyncpg.connect(database_url)
    try:
        ids = await conn.fetch(
            """INSERT INTO contacts (account_id, email, status, country, attributes)
               SELECT $1, 'big' || g || '@chaos.test',
                      CASE WHEN g % 3 = 0 THEN 'unsubscribed' ELSE 'subscribed' END,
                      CASE WHEN g % 2 = 0 THEN 'DE' ELSE 'FR' END,
                      jsonb_build_object('c_num', g % 100)
               FROM generate_series(1, $2) AS g RETURNING id""",
            account.account_id,
            contacts,
        )
        await conn.execute(
            """INSERT INTO contact_list_members (list_id, contact_id, account_id)
               SELECT $2, id, account_id FROM contacts
               WHERE account_id = $1 AND email LIKE 'big%'""",
            account.account_id,
            uuid.UUID(big_list),
        )
    finally:
        await conn.close()
    # Written behind the service's back: announced, as any direct write must be.
    for start in range(0, len(ids), 10_000):
        chunk = [str(r["id"]) for r in ids[start : start + 10_000]]
        await api.must("POST", "/api/v2/contacts/changes", {"contact_ids": chunk})
    body = {
        "name": "big", "color": "#7cb7de", "contact_list_ids": [big_list],
        "rules_json": _big_rules(False),
    }  # fmt: skip
    return uuid.UUID((await api.must("POST", "/api/v2/segments", body))["id"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--duration", type=float, default=180, help="seconds of workload and faults"
    )
    parser.add_argument(
        "--faults",
        default="",
        help=f"comma-separated kinds (default all): {', '.join(sorted(FAULTS))}; 'none' for none",
    )
    parser.add_argument(
        "--gap",
        type=float,
        nargs=2,
        default=(2.0, 6.0),
        metavar=("MIN", "MAX"),
        help="seconds between faults",
    )
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument(
        "--backlog",
        type=int,
        default=1000,
        help="contact.changed in flight at each rabbit_restart_backlog",
    )
    parser.add_argument(
        "--big-contacts",
        type=int,
        default=0,
        help="contacts of the large build kill_in_build interrupts (0: no such fault)",
    )
    parser.add_argument("--workers", type=int, default=2, help="workers besides the relay's")
    parser.add_argument("--drivers", type=int, default=2, help="concurrent writers")
    parser.add_argument("--settle-timeout", type=float, default=120)
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="plant an unannounced write; succeed only if it is caught",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    parser.add_argument("--work-dir", default=None, help="where the scratch directory goes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The suite's own broker client (the outside producer) fails on purpose during faults.
    for name in ("aio_pika", "aiormq"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if args.self_test:
        args.settle_timeout = min(args.settle_timeout, 20)
    outcome = asyncio.run(run(args))
    summary = outcome.summary()
    for line in outcome.violations:
        print(f"VIOLATION {line}", flush=True)
    print(json.dumps(summary), flush=True)
    if args.self_test:
        for planted in ("wrong membership", "feed of"):
            caught = any(v.startswith(planted) for v in outcome.violations)
            print(f"self-test: planted {planted!r} " + ("caught" if caught else "NOT caught"))
        return 0 if summary["wrong_memberships"] and summary["feed_inconsistencies"] else 1
    return 1 if outcome.violations else 0


if __name__ == "__main__":
    sys.exit(main())
