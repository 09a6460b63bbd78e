"""Change-to-membership latency measured from outside, one change at a time.

    .venv/bin/python -m bench.probe [--probes 200] [--background 0,1000,2000] [--segments 100]

On the benchmark data (`python -m bench.gen_data` first): a real `segments worker` process
(its own vhost), N live segments of the 100k-contact account (bench.worker_bench's shapes),
and one probe segment `city equals <probe value>`. Each probe flips one contact's city into
or out of that value, publishes `contact.changed` with publisher confirms, and polls
`segment_members` until the contact's membership shows the change. The lag is from the
confirm to the first poll that sees it (and, beside it, from the start of the publish).

Probes start at random times (a random pause of 0.2 to 1.2 s between them), so a timer in
the consumer that made the lag depend on when in the second a change was published shows as
a spread across the phase deciles printed at the end. Optional background load: contacts
changed per second (messages of 100 ids, as bench.worker_bench publishes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.common import ACCOUNT_SMALL, DEFAULT_DSN, list_id
from bench.worker_bench import (
    comma_ints,
    live_segments,
    new_segment,
    publish_flips,
    publish_segment,
    wait_built,
    worker_on_own_vhost,
)
from worker.db import connect
from worker.messages import ContactChanged, contract_message

PROBE_CITY = "probe-city"
PROBE_RULES = {
    "any": [
        {"all": [{"kind": "field", "field": "city", "operator": "equals", "value": PROBE_CITY}]}
    ]
}
POLL_INTERVAL_S = 0.001


async def _is_member(conn: asyncpg.Connection, segment: uuid.UUID, contact: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM segment_members WHERE segment_id = $1"
            " AND contact_id = $2)",
            segment,
            contact,
        )
    )


async def _probe_once(
    conn: asyncpg.Connection,
    watcher: asyncpg.Connection,
    exchange: Any,
    segment: uuid.UUID,
    contact: uuid.UUID,
) -> dict[str, float]:
    """Flip the contact in or out of the probe segment; seconds until the flip is visible."""
    entering = not await _is_member(watcher, segment, contact)
    await conn.execute(
        "UPDATE contacts SET city = $2 WHERE id = $1", contact, PROBE_CITY if entering else None
    )
    body = ContactChanged(
        schema_version=1,
        account_id=ACCOUNT_SMALL,
        contact_ids=[contact],
        changed_at=datetime.now(UTC),
    )
    phase = time.time() % 1.0
    started = time.perf_counter()
    await exchange.publish(contract_message(body), routing_key="contact.changed")
    confirmed = time.perf_counter()
    while await _is_member(watcher, segment, contact) != entering:
        if time.perf_counter() - confirmed > 30:
            raise RuntimeError("a probe's change was not visible within 30 s")
        await asyncio.sleep(POLL_INTERVAL_S)
    seen = time.perf_counter()
    return {"phase": phase, "from_confirm_s": seen - confirmed, "from_publish_s": seen - started}


def quantiles_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "max_ms": at(1.0)}


def _by_phase(probes: list[dict[str, float]]) -> list[float | None]:
    """Median lag (ms) of the probes published in each tenth of a second."""
    deciles: list[list[float]] = [[] for _ in range(10)]
    for probe in probes:
        deciles[int(probe["phase"] * 10)].append(probe["from_confirm_s"])
    return [round(statistics.median(d) * 1000, 1) if d else None for d in deciles]


async def _run_probes(
    conn: asyncpg.Connection,
    watcher: asyncpg.Connection,
    exchange: Any,
    segment: uuid.UUID,
    contact: uuid.UUID,
    count: int,
    seed: int,
) -> list[dict[str, float]]:
    rng = random.Random(seed)
    probes = []
    for _ in range(count):
        await asyncio.sleep(rng.uniform(0.2, 1.2))
        probes.append(await _probe_once(conn, watcher, exchange, segment, contact))
    return probes


async def _with_background(
    dsn: str,
    exchange: Any,
    rate: int,
    probes: Any,
) -> list[dict[str, float]]:
    """Run `probes` (a coroutine) while another connection changes `rate` contacts/s."""
    if rate == 0:
        result: list[dict[str, float]] = await probes
        return result
    load_conn = await connect(dsn)
    done = False
    try:
        ids = [r[0] for r in await load_conn.fetch(
            "SELECT id FROM contacts WHERE account_id = $1 AND city IS DISTINCT FROM $2",
            ACCOUNT_SMALL, PROBE_CITY)]  # fmt: skip
        load = asyncio.create_task(publish_flips(load_conn, exchange, ids, rate, lambda: done))
        try:
            result = await probes
        finally:
            done = True
            await load
        return result
    finally:
        await load_conn.close()


async def main(args: argparse.Namespace) -> None:
    conn = await connect(args.dsn)
    watcher = await connect(args.dsn)
    report: dict[str, Any] = {"code": args.code_dir or ".", "segments": args.segments, "runs": []}
    # In the probe segment's universe (bench.worker_bench's segments draw from list "all").
    contact: uuid.UUID = await conn.fetchval(
        "SELECT contact_id FROM contact_list_members WHERE list_id = $1 ORDER BY contact_id"
        " LIMIT 1",
        list_id(ACCOUNT_SMALL, "all"),
    )
    old_city = await conn.fetchval("SELECT city FROM contacts WHERE id = $1", contact)
    segments: list[uuid.UUID] = []
    try:
        async with worker_on_own_vhost(args.dsn, args.code_dir) as (exchange, _worker):
            segments = await live_segments(conn, exchange, args.segments)
            probe_segment = await new_segment(conn, ACCOUNT_SMALL, PROBE_RULES)
            segments.append(probe_segment)
            started_db = await conn.fetchval("SELECT clock_timestamp()")
            await publish_segment(exchange, "segment.created", ACCOUNT_SMALL, probe_segment)
            await wait_built(conn, probe_segment, started_db)
            for rate in args.background:
                probes = await _with_background(
                    args.dsn,
                    exchange,
                    rate,
                    _run_probes(conn, watcher, exchange, probe_segment, contact, args.probes, rate),
                )
                run = {
                    "background_contacts_per_s": rate,
                    "probes": len(probes),
                    "from_confirm": quantiles_ms([p["from_confirm_s"] for p in probes]),
                    "from_publish": quantiles_ms([p["from_publish_s"] for p in probes]),
                    "median_ms_by_publish_phase_decile": _by_phase(probes),
                }
                report["runs"].append(run)
                print(json.dumps(run), flush=True)
    finally:
        await conn.execute("DELETE FROM segments WHERE id = ANY($1::uuid[])", segments)
        await conn.execute("UPDATE contacts SET city = $2 WHERE id = $1", contact, old_city)
    await watcher.close()
    await conn.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--probes", type=int, default=200, help="probes per background rate")
    parser.add_argument(
        "--background",
        type=comma_ints,
        default=[0, 1000, 2000],
        help="background changed contacts per second, comma-separated (0: none)",
    )
    parser.add_argument(
        "--segments", type=int, default=100, help="live segments besides the probe's"
    )
    parser.add_argument("--code-dir", help="run the worker from this checkout (to compare)")
    asyncio.run(main(parser.parse_args()))
