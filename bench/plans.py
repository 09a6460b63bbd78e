"""Compiled SQL vs hand-written SQL, side by side, on the data of bench.gen_data.

    .venv/bin/python -m bench.plans --runs 5 --out bench/out/plans.md

For every shape in bench.shapes: compile the v2 rules with worker.compiler (count and
member-ids forms, universe = the big list), check that every hand-written query returns the
same contacts (exit 1 if not), time compiled and hand-written interleaved on one connection
(a warm-up, then --runs runs each), EXPLAIN (ANALYZE, BUFFERS) both, and time the
matching_among form for random candidate ids. Writes the results as markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from bench.common import DEFAULT_DSN, OUT_DIR
from bench.report import render
from bench.shapes import REFERENCED, SHAPES, Context, HandQuery, Shape, bench_context
from worker.compiler import (
    CompiledQuery,
    SegmentQuery,
    compile_count,
    compile_matching_among,
    compile_member_ids,
)
from worker.db import connect
from worker.rules import parse_v2_rules
from worker.store import load_registry

Timer = Callable[[], Awaitable[float]]
CANDIDATE_SIZES = (100, 1000)
GENERIC_TIMEOUT_MS = 60_000


class Mismatch(RuntimeError):
    """Compiled and hand-written SQL disagree: the benchmark compares nothing; stop."""


@dataclass
class Side:
    label: str
    sql: str
    params: tuple[Any, ...]
    samples: list[float] = field(default_factory=list)
    plan: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        # The fastest run: on a shared machine the least disturbed one.
        return min(self.samples)


@dataclass
class Generic:
    ms: float | None  # None: cancelled after GENERIC_TIMEOUT_MS
    plan: str


@dataclass
class Among:
    size: int
    matched: int
    side: Side
    generic: Generic | None = None


@dataclass
class ShapeResult:
    shape: Shape
    matched: int
    compiled: Side
    hand: list[tuple[HandQuery, Side]]
    compiled_ids: Side
    hand_ids: Side
    among: list[Among]
    generic: Generic | None = None

    @property
    def best_hand(self) -> tuple[HandQuery, Side]:
        return best_exact(self.hand)

    @property
    def ratio(self) -> float:
        return self.compiled.median / self.best_hand[1].median


@dataclass(frozen=True)
class Settings:
    runs: int
    generic: bool


def best_exact(hand: Sequence[tuple[HandQuery, Side]]) -> tuple[HandQuery, Side]:
    """The fastest hand-written variant that has exactly the segment's meaning."""
    return min(((q, s) for q, s in hand if q.exact), key=lambda pair: pair[1].median)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- timing -------------------------------------------------------------------------------
def count_timer(conn: asyncpg.Connection, side: Side) -> Timer:
    async def run() -> float:
        start = time.perf_counter()
        # execute(), never fetchval(): asyncpg fetches fetchval's row with a row limit, and
        # PostgreSQL runs a statement with a row limit without parallel workers.
        await conn.execute(side.sql, *side.params)
        return (time.perf_counter() - start) * 1000

    return run


def ids_timer(conn: asyncpg.Connection, side: Side) -> Timer:
    async def run() -> float:
        start = time.perf_counter()
        await conn.fetch(side.sql, *side.params)
        return (time.perf_counter() - start) * 1000

    return run


async def interleaved(sides: Sequence[Side], timers: Sequence[Timer], runs: int) -> None:
    """Run each side once per round, alternating the order every round, so that caching and
    drift favour no side."""
    pairs = list(zip(sides, timers, strict=True))
    for round_ in range(runs):
        for side, timer in pairs if round_ % 2 == 0 else reversed(pairs):
            side.samples.append(await timer())


async def explain(conn: asyncpg.Connection, side: Side) -> str:
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {side.sql}", *side.params)
    return "\n".join(r[0] for r in rows)


# -- checks -------------------------------------------------------------------------------
async def fetch_ids(conn: asyncpg.Connection, sql: str, params: Sequence[Any]) -> list[UUID]:
    return [r[0] for r in await conn.fetch(sql, *params)]


def check_same(what: str, expected: object, got: object) -> None:
    if expected != got:
        raise Mismatch(f"{what}: compiled gives {expected!r}, hand-written gives {got!r}")


async def checked_count(conn: asyncpg.Connection, shape: Shape, compiled: CompiledQuery) -> int:
    """The compiled count, after checking every hand-written query agrees (also the warm-up)."""
    matched: int = await conn.fetchval(compiled.sql, *compiled.params)
    for hand in shape.hand:
        got = await conn.fetchval(hand.count_sql, *hand.params)
        check_same(f"shape {shape.key} ({hand.label}) count", matched, got)
    return matched


# -- one shape ----------------------------------------------------------------------------
def segment_query(ctx: Context, shape: Shape, registry: Any) -> SegmentQuery:
    tree = parse_v2_rules(shape.rules, registry, known_list_ids=set(ctx.lists.values()))
    return SegmentQuery(ctx.account_id, tree, shape.list_ids(ctx), ctx.now, shape.timezone)


async def bench_counts(
    conn: asyncpg.Connection, shape: Shape, query: SegmentQuery, runs: int
) -> tuple[int, Side, list[tuple[HandQuery, Side]]]:
    compiled = compile_count(query)
    matched = await checked_count(conn, shape, compiled)
    compiled_side = Side("compiled", compiled.sql, compiled.params)
    hand = [(q, Side(q.label, q.count_sql, q.params)) for q in shape.hand]
    sides = [compiled_side, *(s for _, s in hand)]
    await interleaved(sides, [count_timer(conn, s) for s in sides], runs)
    return matched, compiled_side, hand


async def bench_ids(
    conn: asyncpg.Connection, query: SegmentQuery, best: HandQuery, matched: int, runs: int
) -> tuple[Side, Side, set[UUID]]:
    """The member-ids form, fetched to the client (so it includes transfer), against the
    best hand-written query's ids; both must return the same set, each id once."""
    compiled = compile_member_ids(query)
    ids = await fetch_ids(conn, compiled.sql, compiled.params)
    check_same("member ids: number of rows vs count", matched, len(ids))
    hand_ids = await fetch_ids(conn, best.ids_sql, best.params)
    check_same("member ids", set(ids), set(hand_ids))
    sides = [
        Side("compiled", compiled.sql, compiled.params),
        Side(best.label, best.ids_sql, best.params),
    ]
    await interleaved(sides, [ids_timer(conn, s) for s in sides], runs)
    return sides[0], sides[1], set(ids)


async def bench_among(
    conn: asyncpg.Connection,
    query: SegmentQuery,
    candidates: Sequence[UUID],
    members: set[UUID],
    runs: int,
) -> Among:
    compiled = compile_matching_among(query, candidates)
    got = set(await fetch_ids(conn, compiled.sql, compiled.params))
    check_same(f"matching_among({len(candidates)})", members.intersection(candidates), got)
    side = Side(f"among {len(candidates)}", compiled.sql, compiled.params)
    await interleaved([side], [ids_timer(conn, side)], runs)
    side.plan = await explain(conn, side)
    return Among(len(candidates), len(got), side)


@asynccontextmanager
async def session_setting(conn: asyncpg.Connection, name: str, value: str) -> AsyncIterator[None]:
    """SET name = value for the block, then back to the session's previous value (RESET
    would go back to the server default, not to what the session had set)."""
    previous = await conn.fetchval("SELECT current_setting($1)", name)
    await conn.execute("SELECT set_config($1, $2, false)", name, value)
    try:
        yield
    finally:
        await conn.execute("SELECT set_config($1, $2, false)", name, previous)


async def sql_literal(conn: asyncpg.Connection, type_oid: int, value: Any) -> str:
    type_name = await conn.fetchval("SELECT format_type($1::oid, NULL)", type_oid)
    text = await conn.fetchval(f"SELECT quote_literal(($1::{type_name})::text)", value)
    return f"{text}::{type_name}"


async def explain_generic(conn: asyncpg.Connection, side: Side) -> str:
    """EXPLAIN ANALYZE of the generic plan: PREPARE, then EXECUTE with the values written as
    literals (EXECUTE takes no bind parameters)."""
    statement = await conn.prepare(side.sql)
    types = [t.oid for t in statement.get_parameters()]
    literals = [await sql_literal(conn, oid, v) for oid, v in zip(types, side.params, strict=True)]
    await conn.execute(f"PREPARE bench_generic AS {side.sql}")
    try:
        rows = await conn.fetch(
            f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_generic({', '.join(literals)})"
        )
    finally:
        await conn.execute("DEALLOCATE bench_generic")
    return "\n".join(r[0] for r in rows)


async def generic(conn: asyncpg.Connection, side: Side, timer: Timer) -> Generic:
    """One timed run and the plan under a generic plan: what a prepared statement may switch
    to after five executions in plan_cache_mode auto (asyncpg caches prepared statements)."""
    async with (
        session_setting(conn, "plan_cache_mode", "force_generic_plan"),
        session_setting(conn, "statement_timeout", str(GENERIC_TIMEOUT_MS)),
    ):
        try:
            ms: float | None = await timer()
            plan = await explain_generic(conn, side)
        except asyncpg.QueryCanceledError:
            ms, plan = None, f"(cancelled after {GENERIC_TIMEOUT_MS} ms)"
    return Generic(ms, plan)


async def bench_shape(
    conn: asyncpg.Connection,
    ctx: Context,
    shape: Shape,
    registry: Any,
    candidates: dict[int, list[UUID]],
    settings: Settings,
) -> ShapeResult:
    query = segment_query(ctx, shape, registry)
    matched, compiled, hand = await bench_counts(conn, shape, query, settings.runs)
    best_query, best_side = best_exact(hand)
    compiled_ids, hand_ids, members = await bench_ids(
        conn, query, best_query, matched, settings.runs
    )
    compiled.plan = await explain(conn, compiled)
    best_side.plan = await explain(conn, best_side)
    among = [
        await bench_among(conn, query, candidates[size], members, settings.runs)
        for size in CANDIDATE_SIZES
    ]
    result = ShapeResult(shape, matched, compiled, hand, compiled_ids, hand_ids, among)
    if settings.generic:
        result.generic = await generic(conn, compiled, count_timer(conn, compiled))
        last = among[-1]
        last.generic = await generic(conn, last.side, ids_timer(conn, last.side))
    return result


# -- the run ------------------------------------------------------------------------------
async def dataset(conn: asyncpg.Connection) -> tuple[dict[str, int], datetime]:
    row = await conn.fetchrow("SELECT spec, now FROM bench_dataset")
    if row is None:
        raise SystemExit("no data: run `python -m bench.gen_data` first")
    spec: dict[str, int] = row["spec"]
    return spec, row["now"]


async def pick_candidates(conn: asyncpg.Connection, account_id: UUID) -> dict[int, list[UUID]]:
    """Random contacts of the account (fixed seed): what a contact.changed batch carries."""
    ids = await fetch_ids(
        conn, "SELECT id FROM contacts WHERE account_id = $1 ORDER BY id", (account_id,)
    )
    rng = random.Random(20240601)
    return {size: rng.sample(ids, size) for size in CANDIDATE_SIZES}


async def materialise_referenced(conn: asyncpg.Connection, ctx: Context, registry: Any) -> None:
    """The segments that shapes reference (bench.shapes.REFERENCED), with their members as a
    build writes them, on the data as it is (rebuilt every run: the data may have been
    reloaded)."""
    for key, rules in REFERENCED.items():
        segment_id = ctx.segments[key]
        await conn.execute(
            """INSERT INTO segments (id, account_id, name, rules, status)
               VALUES ($1, $2, $3, $4, 'DONE') ON CONFLICT (id) DO NOTHING""",
            segment_id,
            ctx.account_id,
            f"bench {key}",
            rules,
        )
        query = SegmentQuery(ctx.account_id, parse_v2_rules(rules, registry), (), ctx.now)
        compiled = compile_member_ids(query)
        async with conn.transaction():
            await conn.execute("DELETE FROM segment_members WHERE segment_id = $1", segment_id)
            n = len(compiled.params)
            await conn.execute(
                "INSERT INTO segment_members (segment_id, contact_id, account_id)\n"
                f"SELECT ${n + 1}::uuid, q.id, $1::uuid FROM ({compiled.sql}) q",
                *compiled.params,
                segment_id,
            )
        await conn.execute("ANALYZE segment_members")
        log(f"referenced segment {key}: materialised")


async def run(args: argparse.Namespace) -> str:
    conn = await connect(args.dsn)
    try:
        await conn.execute("SELECT set_config('plan_cache_mode', $1, false)", args.plan_cache_mode)
        if args.work_mem:
            await conn.execute("SELECT set_config('work_mem', $1, false)", args.work_mem)
        spec, now = await dataset(conn)
        ctx = bench_context(now)
        registry = await load_registry(conn, ctx.account_id)
        candidates = await pick_candidates(conn, ctx.account_id)
        if not args.only or "n" in args.only:  # the segment-of-segment shape
            await materialise_referenced(conn, ctx, registry)
        settings = Settings(args.runs, not args.no_generic)
        results = []
        for make in SHAPES:
            shape = make(ctx)
            if args.only and shape.key not in args.only:
                continue
            log(f"shape {shape.key}: {shape.title}")
            result = await bench_shape(conn, ctx, shape, registry, candidates, settings)
            log(
                f"  {result.matched:,} rows; compiled {result.compiled.median:.1f} ms,"
                f" best hand {result.best_hand[1].median:.1f} ms, ratio {result.ratio:.2f}"
            )
            results.append(result)
        server = await conn.fetchval("SHOW server_version")
        work_mem = await conn.fetchval("SHOW work_mem")
        return render(results, spec, args, f"{server}; `work_mem = {work_mem}`")
    finally:
        await conn.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--runs", type=int, default=5, help="timed runs after the warm-up")
    parser.add_argument("--only", nargs="*", help="shape keys to run, e.g. --only a e")
    parser.add_argument(
        "--plan-cache-mode",
        default="force_custom_plan",
        choices=["auto", "force_custom_plan", "force_generic_plan"],
        help="the session's plan_cache_mode for the timed runs",
    )
    parser.add_argument("--work-mem", help="the session's work_mem (default: the server's)")
    parser.add_argument("--no-generic", action="store_true", help="skip the generic-plan run")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "plans.md")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    try:
        markdown = asyncio.run(run(args))
    except Mismatch as exc:
        print(f"MISMATCH: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
