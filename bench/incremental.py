"""The incremental statement alone (worker.changes: the which-of-these-ids form of every live
segment of a batch, and the writes of the differences): contact-segment pairs per second.

    .venv/bin/python -m bench.incremental --dsn postgresql://postgres@127.0.0.1:5432/DB \\
        --segments 7 --sizes 100,1000 --batches 12

On the data of bench.gen_data (its big account): N segments of the seven kinds of
bench.worker_bench.change_shape, first-built by worker.builds (no broker); then batches of K
random contacts of the account applied the way the worker applies them
(worker.changes.apply_changes), each in a transaction rolled back, so every batch starts
from the built membership. Distinct candidates in every batch (K=1000 at 1M contacts: a
batch repeats no contact), timed per batch; pairs/s = N * K / median time.

Three moments: **stale**, `segment_members` without statistics, as right after the first
builds before autovacuum analysed it (the bench deletes its pg_statistic rows, which an
ANALYZE writes back, and marks it never analysed: only in a database of its own);
**analysed** after ANALYZE (what worker.member_statistics now does before a change batch when
much of the table changed); and **vacuumed** after VACUUM ANALYZE (what autovacuum leaves: the
new members' pages all-visible, so the lookups of current memberships stay in the index).
Two lookups of the candidates' current membership (LOOKUPS) and
three plan modes each: `custom` (planned at every execution), `generic` (planned once per
connection and statement text, then reused) and `auto` (PostgreSQL's choice after five custom
plans, the worker's default), interleaved batch by batch. Then change hints: a batch
re-evaluated in every segment against those the hints select.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from bench.common import ACCOUNT_BIG, DEFAULT_DSN, list_id
from bench.worker_bench import change_shape
from worker import changes
from worker.builds import build_segment
from worker.db import connect
from worker.dependencies import SegmentReads
from worker.hints import Hints
from worker.messages import SegmentMessage

# plan_cache_mode of the change statement (the change_plan_cache_mode setting), by label.
MODES = {"custom": "force_custom_plan", "auto": "auto", "generic": "force_generic_plan"}
# The statement's lookup of the candidates' current membership: as the worker writes it
# (candidate by candidate, a subquery per candidate behind OFFSET 0: index conditions on the
# contact id whatever the statistics and plan), and in one scan with both id arrays (the
# worker's form until session 8: the planner may combine both indexes), bounded by the
# statement's lowest and highest segment id as the worker's lookup is since session 9.
ONE_SCAN = """
    SELECT sm.segment_id, sm.contact_id FROM segment_members sm
    WHERE sm.account_id = $1::uuid
      AND sm.contact_id = ANY({candidates})
      AND sm.segment_id BETWEEN {lowest} AND {highest} AND sm.segment_id = ANY({segments})
)"""
NOW = changes._APPLY
_CURRENT_START = NOW.index("current AS MATERIALIZED (") + len("current AS MATERIALIZED (")
_CURRENT_END = NOW.index("), moves AS MATERIALIZED (") + 1
LOOKUPS = {
    "one scan": NOW[:_CURRENT_START] + ONE_SCAN + NOW[_CURRENT_END:],
    "per candidate": NOW,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def fresh_segments(conn: asyncpg.Connection, n: int) -> list[uuid.UUID]:
    """N new segments change_shape(0..n-1) of the big account, first-built; the bench's
    earlier ones deleted (with their members)."""
    await conn.execute("DELETE FROM segments WHERE name = 'bench.incremental'")
    segments = []
    for i in range(n):
        segment_id: uuid.UUID = await conn.fetchval(
            """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids)
               VALUES ($1, 'bench.incremental', 'v2', $2, $3) RETURNING id""",
            ACCOUNT_BIG,
            change_shape(i, ACCOUNT_BIG),
            [list_id(ACCOUNT_BIG, "all")],
        )
        message = SegmentMessage(
            schema_version=1, account_id=ACCOUNT_BIG, segment_id=segment_id, generation=1
        )
        result = await build_segment(conn, message, "created", statement_timeout_ms=600_000)
        log(f"segment {i}: {result.outcome}, {result.total_count} members")
        segments.append(segment_id)
    return segments


async def forget_statistics(conn: asyncpg.Connection) -> None:
    """segment_members as never analysed (what the first builds leave before autovacuum)."""
    await conn.execute("DELETE FROM pg_statistic WHERE starelid = 'segment_members'::regclass")
    # Never vacuumed or analysed: the planner then sizes the table from its pages alone.
    await conn.execute(
        "UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE oid = 'segment_members'::regclass"
    )


Variant = tuple[str, str]  # (lookup, plan mode)
VARIANTS: list[Variant] = [(lookup, mode) for lookup in LOOKUPS for mode in MODES]


async def one_batch(
    conn: asyncpg.Connection,
    segments: Sequence[uuid.UUID],
    candidates: list[uuid.UUID],
    variant: Variant,
) -> float:
    lookup, mode = variant
    changes._APPLY = LOOKUPS[lookup]  # what worker.changes formats its statement from
    transaction = conn.transaction()
    await transaction.start()
    try:
        started = time.perf_counter()
        await changes.apply_changes(
            conn,
            ACCOUNT_BIG,
            candidates,
            statement_timeout_ms=600_000,
            segment_ids=segments,
            plan_cache_mode=MODES[mode],
        )
        return time.perf_counter() - started
    finally:
        await transaction.rollback()
        changes._APPLY = NOW


async def measure(
    conns: dict[Variant, asyncpg.Connection],
    segments: Sequence[uuid.UUID],
    batches: list[list[uuid.UUID]],
) -> dict[Variant, list[float]]:
    """Every batch in every variant, interleaved (one connection each, warmed up first)."""
    times: dict[Variant, list[float]] = {variant: [] for variant in VARIANTS}
    for variant in VARIANTS:
        for _ in range(6):  # warm-up: past the five custom plans `auto` starts with
            await one_batch(conns[variant], segments, batches[0], variant)
    for batch in batches[1:]:
        for variant in VARIANTS:
            times[variant].append(await one_batch(conns[variant], segments, batch, variant))
    return times


# Change hints of the three kinds of change the shim sends, against no hints at all.
HINTS = {
    "fields: country": Hints(fields=frozenset({"country", "updated_at"})),
    "events: open": Hints(events=frozenset({"open"})),
    "lists": Hints(lists=True),
}


async def measure_hints(
    conn: asyncpg.Connection, k: int, batches: list[list[uuid.UUID]]
) -> list[str]:
    """A batch re-evaluated in every segment (no hints) and in those the hints select, side by
    side (the worker's lookup, `auto` plans)."""
    lines = [
        "",
        f"Change hints, K={k}: every live segment against those the hints select",
        "",
        "| hints | segments evaluated | all: median ms | hinted: median ms | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    everything = await SegmentReads().select(conn, ACCOUNT_BIG, None)
    for label, hints in HINTS.items():
        selection = await SegmentReads().select(conn, ACCOUNT_BIG, hints)
        times: dict[str, list[float]] = {"all": [], "hinted": []}
        for batch in batches:
            for name, chosen in (("all", everything), ("hinted", selection)):
                times[name].append(
                    await one_batch(conn, chosen.segment_ids, batch, ("per candidate", "auto"))
                )
        every, hinted = (statistics.median(times[n]) * 1000 for n in ("all", "hinted"))
        lines.append(
            f"| {label} | {len(selection.segment_ids)} of {len(everything.segment_ids)} | "
            f"{every:,.1f} | {hinted:,.1f} | {hinted / every:.2f} |"
        )
        log(lines[-1])
    return lines


def row(moment: str, k: int, n: int, variant: Variant, samples: list[float]) -> str:
    median = statistics.median(samples)
    return (
        f"| {moment} | {k} | {variant[0]} | {variant[1]} | {median * 1000:,.1f} | "
        f"{min(samples) * 1000:,.1f} | {max(samples) * 1000:,.1f} | {n * k / median:,.0f} |"
    )


async def run(args: argparse.Namespace) -> None:
    conn = await connect(args.dsn, statement_timeout_ms=600_000)
    ids = [
        r["id"]
        for r in await conn.fetch("SELECT id FROM contacts WHERE account_id = $1", ACCOUNT_BIG)
    ]
    segments = await fresh_segments(conn, args.segments)
    rng = random.Random(20261205)
    sizes = [int(k) for k in args.sizes.split(",")]
    conns = {v: await connect(args.dsn, statement_timeout_ms=600_000) for v in VARIANTS}
    lines = [
        f"{args.segments} segments, {len(ids):,} contacts in the account; "
        f"{args.batches - 1} batches per size after a warm-up",
        "",
        "| segment_members | K | lookup | plan | median ms | min ms | max ms | pairs/s |",
        "|---|---:|---|---|---:|---:|---:|---:|",
    ]
    batches = {k: [rng.sample(ids, k) for _ in range(args.batches)] for k in sizes}
    for k in sizes:  # the data the batches read, in the caches for every moment
        for batch in batches[k]:
            await one_batch(conn, segments, batch, VARIANTS[0])
    for moment in ("stale", "analysed", "vacuumed"):
        if moment == "stale":
            await forget_statistics(conn)
        elif moment == "analysed":
            await conn.execute("ANALYZE segment_members")
        else:
            await conn.execute("VACUUM ANALYZE segment_members")
        for k in sizes:
            times = await measure(conns, segments, batches[k])
            for variant in VARIANTS:
                lines.append(row(moment, k, len(segments), variant, times[variant]))
                log(lines[-1])
    for k in sizes:
        lines += await measure_hints(conn, k, batches[k])
    for c in (conn, *conns.values()):
        await c.close()
    print("\n".join(lines))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="a database of its own (see above)")
    parser.add_argument("--segments", type=int, default=7)
    parser.add_argument("--sizes", default="100,1000", help="candidates per batch")
    parser.add_argument("--batches", type=int, default=12, help="per size, the first a warm-up")
    return parser.parse_args()


def main(argv: Any = None) -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
