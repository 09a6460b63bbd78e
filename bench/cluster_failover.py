"""Kill the RabbitMQ node that leads the service's queues, with messages in flight: nothing lost.

    .venv/bin/python -m bench.cluster_failover [--rounds 10] [--messages 1000]

Starts the three-node cluster of bench/rabbitmq_cluster.py (or uses it if running), a fresh
database and a vhost of its own on the cluster, and two `segments worker` processes given
every node's address. Each round: the workers are stopped (SIGSTOP) so that changes pile up;
`--messages` contact.changed messages are published with publisher confirms (each flips the
country of some contacts, written first); the node leading `segments.contact_changes` is
killed (SIGKILL of its Erlang VM); the workers resume (SIGCONT) and carry on against the other
nodes; the killed node is restarted. The round has converged when the work queues are empty
and every segment's members and total_count equal its rules evaluated afresh on the data.
Prints one line per round and exits 1 on any lost change or wrong membership
(`--plant-unannounced` shows that it does: one change is made without its message).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
import asyncpg

from bench import rabbitmq_cluster
from bench.worker_bench import ServiceProcess
from worker.broker import connect_robust
from worker.compiler import SegmentQuery, compile_member_ids
from worker.db import connect
from worker.messages import ContactChanged, SegmentMessage, contract_message
from worker.migrations import migrate
from worker.rules import FieldRegistry, parse_rules
from worker.topology import CONTACT_CHANGES_QUEUE, WORK_QUEUES, declare

SERVER = os.environ.get("SEGMENTS_BENCH_SERVER", "postgresql://postgres@127.0.0.1:5432")
COUNTRIES = ("de", "fr", "nl", "es")
RULES = [
    *({"any": [{"all": [_c]}]} for _c in (
        {"kind": "field", "field": "country", "operator": "equals", "value": c}
        for c in COUNTRIES
    )),
    {"all": [
        {"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"},
        {"not": {"kind": "field", "field": "country", "operator": "in", "value": ["de", "fr"]}},
    ]},
]  # fmt: skip


@dataclass
class Round:
    killed: str
    published: int
    seconds_to_converge: float
    wrong_segments: int
    dead_letters: int


class Cluster:
    def __init__(self, vhost: str) -> None:
        self.nodes = rabbitmq_cluster.nodes()
        self.vhost = vhost

    @property
    def url(self) -> str:
        return ",".join(n.url + self.vhost for n in self.nodes)

    def alive(self) -> rabbitmq_cluster.Node:
        for node in self.nodes:
            if node.running():
                return node
        raise RuntimeError("no node of the cluster answers")

    def queue_counts(self) -> dict[str, int]:
        out = self.alive().ctl("list_queues", "-p", self.vhost, "name", "messages", "-q")
        counts = {}
        for line in out.splitlines():
            name, _, messages = line.rpartition("\t")
            if name and messages.isdigit():
                counts[name] = int(messages)
        return counts

    def leader_of(self, queue: str) -> rabbitmq_cluster.Node:
        leader = rabbitmq_cluster.queue_leaders(self.alive(), self.vhost)[queue]
        return next(n for n in self.nodes if n.name == leader)


async def _setup(dsn: str) -> tuple[uuid.UUID, list[uuid.UUID]]:
    await migrate(dsn)
    conn = await connect(dsn)
    try:
        account = await conn.fetchval(
            "INSERT INTO accounts (name) VALUES ('failover') RETURNING id"
        )
        await conn.executemany(
            "INSERT INTO contacts (account_id, email, status, country) VALUES ($1, $2, $3, $4)",
            [
                (account, f"c{i}@example.com", "subscribed" if i % 5 else "unsubscribed",
                 COUNTRIES[i % len(COUNTRIES)])
                for i in range(3000)
            ],
        )  # fmt: skip
        contacts = [
            r[0] for r in await conn.fetch("SELECT id FROM contacts WHERE account_id = $1", account)
        ]
        return account, contacts
    finally:
        await conn.close()


async def _wrong_segments(conn: asyncpg.Connection, account: uuid.UUID) -> int:
    """Segments whose members or total_count differ from their rules evaluated now."""
    wrong = 0
    registry = FieldRegistry.from_declarations({})
    for row in await conn.fetch(
        "SELECT id, rules, status, total_count FROM segments WHERE account_id = $1", account
    ):
        tree = parse_rules("v2", row["rules"], registry)
        compiled = compile_member_ids(SegmentQuery(account, tree, (), datetime.now(UTC)))
        expected = {r[0] for r in await conn.fetch(compiled.sql, *compiled.params)}
        members = {
            r[0]
            for r in await conn.fetch(
                "SELECT contact_id FROM segment_members WHERE account_id = $1 AND segment_id = $2",
                account,
                row["id"],
            )
        }
        if row["status"] != "DONE" or members != expected or row["total_count"] != len(expected):
            wrong += 1
    return wrong


async def _publish_flips(
    exchange: aio_pika.abc.AbstractExchange,
    conn: asyncpg.Connection,
    account: uuid.UUID,
    contacts: Sequence[uuid.UUID],
    messages: int,
    rng: random.Random,
) -> int:
    """Change some contacts, then say so, `messages` times; returns confirmed publishes."""
    confirmed = 0
    for _ in range(messages):
        changed = rng.sample(list(contacts), 5)
        await conn.execute(
            "UPDATE contacts SET country = $3 WHERE account_id = $1 AND id = ANY($2::uuid[])",
            account,
            changed,
            rng.choice(COUNTRIES),
        )
        body = ContactChanged(
            schema_version=1, account_id=account, contact_ids=changed, changed_at=datetime.now(UTC)
        )
        while True:  # at least once: a publish lost with its node is sent again
            try:
                await exchange.publish(
                    contract_message(body), routing_key="contact.changed", timeout=10
                )
                confirmed += 1
                break
            except (aio_pika.exceptions.AMQPError, ConnectionError, TimeoutError, RuntimeError):
                await asyncio.sleep(0.2)
    return confirmed


async def _converge(
    cluster: Cluster, conn: asyncpg.Connection, account: uuid.UUID, limit: float
) -> tuple[float, int]:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        counts = await asyncio.to_thread(cluster.queue_counts)
        busy = sum(counts.get(q.name, 0) for q in WORK_QUEUES)
        if busy == 0 and await _wrong_segments(conn, account) == 0:
            return time.monotonic() - started, 0
        await asyncio.sleep(0.5)
    return time.monotonic() - started, await _wrong_segments(conn, account)


def _signal_all(workers: Sequence[ServiceProcess], sig: signal.Signals) -> None:
    for worker in workers:
        os.kill(worker.process.pid, sig)


@dataclass
class Run:
    """What one round works with."""

    cluster: Cluster
    workers: list[ServiceProcess]
    exchange: aio_pika.abc.AbstractExchange
    conn: asyncpg.Connection
    account: uuid.UUID
    contacts: list[uuid.UUID]


async def _build_all(run: Run) -> None:
    for rules in RULES:
        segment = await run.conn.fetchval(
            "INSERT INTO segments (account_id, name, rules) VALUES ($1, 'f', $2) RETURNING id",
            run.account,
            rules,
        )
        body = SegmentMessage(
            schema_version=1, account_id=run.account, segment_id=segment, generation=1
        )
        await run.exchange.publish(contract_message(body), routing_key="segment.created")
    seconds, wrong = await _converge(run.cluster, run.conn, run.account, 120)
    print(f"initial builds: {seconds:.1f} s, wrong segments {wrong}", flush=True)


async def _round(run: Run, args: argparse.Namespace, number: int, rng: random.Random) -> Round:
    _signal_all(run.workers, signal.SIGSTOP)
    published = await _publish_flips(
        run.exchange, run.conn, run.account, run.contacts, args.messages, rng
    )
    if args.plant_unannounced and number == 1:
        # The self-test: a change nobody announces must show as a wrong segment.
        await run.conn.execute(
            "UPDATE contacts SET country = 'xx' WHERE account_id = $1 AND id = $2",
            run.account,
            run.contacts[0],
        )
    leader = await asyncio.to_thread(run.cluster.leader_of, CONTACT_CHANGES_QUEUE.name)
    counts = await asyncio.to_thread(run.cluster.queue_counts)
    leader.kill()
    _signal_all(run.workers, signal.SIGCONT)
    seconds, wrong = await _converge(run.cluster, run.conn, run.account, args.converge_s)
    await asyncio.to_thread(leader.start)
    counts_after = await asyncio.to_thread(run.cluster.queue_counts)
    dead = sum(n for q, n in counts_after.items() if q.endswith(".dlq"))
    print(
        f"round {number}: killed {leader.name} with "
        f"{counts.get(CONTACT_CHANGES_QUEUE.name, 0)} queued; published {published}; "
        f"converged in {seconds:.1f} s; wrong segments {wrong}; dead letters {dead}",
        flush=True,
    )
    return Round(leader.name, published, seconds, wrong, dead)


async def run(args: argparse.Namespace) -> int:
    await asyncio.to_thread(rabbitmq_cluster.start)
    vhost = f"failover_{uuid.uuid4().hex[:8]}"
    cluster = Cluster(vhost)
    cluster.nodes[0].ctl("add_vhost", vhost)
    cluster.nodes[0].ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    database = f"segments_failover_{uuid.uuid4().hex[:8]}"
    dsn = f"{SERVER}/{database}"
    account, contacts = await _setup(dsn)
    workers = [ServiceProcess(dsn, cluster.url) for _ in range(2)]
    try:
        for worker in workers:
            await worker.wait_ready()
        connection = await connect_robust(cluster.url)
        exchange = await declare(await connection.channel(publisher_confirms=True))
        conn = await connect(dsn)
        current = Run(cluster, workers, exchange, conn, account, contacts)
        await _build_all(current)
        rng = random.Random(args.seed)
        rounds = [await _round(current, args, n, rng) for n in range(1, args.rounds + 1)]
        await conn.close()
        await connection.close()
    finally:
        _signal_all(workers, signal.SIGCONT)
        for worker in workers:
            worker.stop()
        admin = await asyncpg.connect(f"{SERVER}/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        cluster.alive().ctl("delete_vhost", vhost, check=False)
        if args.stop_cluster:
            await asyncio.to_thread(rabbitmq_cluster.stop)
    print(
        f"{len(rounds)} leader kills, {sum(r.published for r in rounds)} changes confirmed, "
        f"wrong segments {sum(r.wrong_segments for r in rounds)}, dead letters "
        f"{sum(r.dead_letters for r in rounds)}, slowest convergence "
        f"{max((r.seconds_to_converge for r in rounds), default=0):.1f} s"
    )
    return 1 if any(r.wrong_segments or r.dead_letters for r in rounds) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--converge-s", type=float, default=120)
    parser.add_argument("--stop-cluster", action="store_true")
    parser.add_argument(
        "--plant-unannounced",
        action="store_true",
        help="self-test: change a contact without a message; the run must then fail",
    )
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
