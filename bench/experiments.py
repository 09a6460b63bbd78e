"""Measured proposals: the compiled SQL against one change to it, or to the schema.

    .venv/bin/python -m bench.experiments --out bench/out/experiments.md [--only stats ...]

Each experiment takes the compiled SQL of some shapes of bench.shapes and times it against a
variant: the same SQL rewritten in one way (what the compiler would emit if changed), and/or
run after extra statistics or indexes are created (dropped again afterwards, so the database
stays as the migrations made it). Both must return the same result. Nothing in worker/ or sql/
is changed: the rewrites below are string edits of the compiler's output.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from bench.common import DEFAULT_DSN, OUT_DIR
from bench.plans import (
    Side,
    dataset,
    explain,
    pick_candidates,
    segment_query,
    session_setting,
)
from bench.report import access_paths
from bench.shapes import SHAPES, Context, Shape, bench_context
from worker.compiler import CompiledQuery, compile_count, compile_matching_among
from worker.db import connect
from worker.store import load_registry

Rewrite = Callable[[str], str]


def unchanged(sql: str) -> str:
    return sql


@dataclass(frozen=True)
class Experiment:
    key: str
    title: str
    shapes: tuple[str, ...]
    rewrite: Rewrite = unchanged
    # Session settings for the variant's runs: set and reset around each run, so that the
    # variant and the baseline still alternate run by run.
    settings: tuple[tuple[str, str], ...] = ()
    # Schema changes (DDL) cannot alternate: the baseline runs first, then setup, the variant's
    # runs, and teardown.
    setup: tuple[str, ...] = ()
    teardown: tuple[str, ...] = ()
    among: int | None = None  # time matching_among with this many candidates, not the count
    plan_cache_mode: str = "force_custom_plan"
    # Set once the compiler emits the variant's form: the rewrite no longer applies, and the
    # experiment is skipped (its recorded table in docs/benchmarks.md is what remains).
    adopted: str = ""


# -- rewrites of the compiler's output ----------------------------------------------------
_UNIVERSE_IN = (
    "c.id IN (SELECT m.contact_id FROM contact_list_members m\n"
    "    WHERE m.account_id = $1::uuid AND m.list_id = {lists})"
)
_UNIVERSE_EXISTS = (
    "EXISTS (SELECT 1 FROM contact_list_members m\n"
    "    WHERE m.account_id = $1::uuid AND m.list_id = {lists} AND m.contact_id = c.id)"
)


def universe_as_exists(sql: str) -> str:
    """`c.id IN (SELECT m.contact_id ...)` -> correlated `EXISTS (... m.contact_id = c.id)`."""
    lists = "$2::uuid"  # the universe parameter of the count form (one list, as in the shapes)
    return sql.replace(_UNIVERSE_IN.format(lists=lists), _UNIVERSE_EXISTS.format(lists=lists))


def universe_one_list_as_array(sql: str) -> str:
    """The former form of a universe of one list: `= ANY(array)`, not `=`. With `=` and
    list_id fixed, the primary key (list_id, contact_id) proves each contact appears once,
    so the planner may join the members directly instead of de-duplicating them first (the
    compiler's form since session 3)."""
    return sql.replace("m.list_id = $2::uuid)", "m.list_id = ANY(ARRAY[$2::uuid]))")


def lower_array_inline(sql: str) -> str:
    """`(SELECT segments_lower_array($n))::text[]` -> `segments_lower_array($n)`: in a custom
    plan the call on a known value is folded to a constant the planner can estimate with; the
    sub-SELECT hides the value behind an InitPlan (estimated as unknown)."""
    return re.sub(
        r"\(SELECT segments_lower_array\((\$\d+::text\[\])\)\)::text\[\]",
        r"segments_lower_array(\1)",
        sql,
    )


def among_without_candidate_probe(sql: str) -> str:
    """matching_among: drop `AND m.contact_id = ANY($candidates)` from membership subqueries
    (c.id is already restricted to the candidates; the extra filter tempts a generic plan into
    rescanning every candidate's memberships for each contact)."""
    return sql.replace(" AND m.contact_id = ANY($2::uuid[])", "")


def or_groups_in_one_scan(sql: str) -> str:
    """A UNION of branches that share the account and universe predicates becomes one scan of
    contacts with those predicates once and the branches' own predicates OR-ed inside an
    `IN (... UNION ALL ...)` of event subqueries. Only for branches whose own predicate is a
    single `c.id IN (events subquery)` (shape e)."""
    head, _, rest = sql.partition("\nUNION\n")
    branches = [head.split("SELECT count(*) FROM (\n", 1)[1], *rest.split("\nUNION\n")]
    branches[-1] = branches[-1].rsplit("\n) matched", 1)[0]
    common, _, _ = branches[0].rpartition("\n  AND c.id IN (SELECT e.contact_id")
    events = [b.rpartition("\n  AND c.id IN (")[2][:-1] for b in branches]
    shared = common.replace("SELECT c.id\n", "SELECT count(*)\n", 1)
    return f"{shared}\n  AND c.id IN (" + "\n    UNION ALL\n    ".join(events) + ")"


# -- schema additions -------------------------------------------------------------------
_LOWER_STATS = ("status", "country", "city", "language")
EXPRESSION_STATS = (
    *(f"CREATE STATISTICS bench_lower_{c} ON (lower({c})) FROM contacts" for c in _LOWER_STATS),
    "ANALYZE contacts",
)
DROP_EXPRESSION_STATS = (
    *(f"DROP STATISTICS IF EXISTS bench_lower_{c}" for c in _LOWER_STATS),
    "ANALYZE contacts",
)
MEMBERS_LIST_INDEX = (
    "CREATE INDEX bench_members_account_list_idx"
    " ON contact_list_members (account_id, list_id, contact_id)",
    "VACUUM ANALYZE contact_list_members",
)
DROP_MEMBERS_LIST_INDEX = ("DROP INDEX IF EXISTS bench_members_account_list_idx",)

EXPERIMENTS = (
    Experiment(
        "stats",
        "statistics on lower(text column) (CREATE STATISTICS ... ON (lower(col)))",
        ("a",),
        setup=EXPRESSION_STATS,
        teardown=DROP_EXPRESSION_STATS,
    ),
    Experiment(
        "work-mem",
        "work_mem = 64MB for the build's session (default 4MB)",
        ("a", "b", "d", "e", "j"),
        settings=(("work_mem", "64MB"),),
    ),
    Experiment(
        "jit-off",
        "jit = off for the build's session (default on; compiles 50-300 ms per query here)",
        ("a", "e", "i"),
        settings=(("jit", "off"),),
    ),
    Experiment(
        "members-index",
        "index contact_list_members (account_id, list_id, contact_id)",
        ("a", "c", "f", "g", "i"),
        setup=MEMBERS_LIST_INDEX,
        teardown=DROP_MEMBERS_LIST_INDEX,
    ),
    Experiment(
        "universe-exists",
        "universe as correlated EXISTS",
        ("c", "g", "i"),
        rewrite=universe_as_exists,
    ),
    Experiment(
        "universe-one-list-array",
        "universe of one list as `m.list_id = ANY(ARRAY[$n])` (before session 3) instead of `= $n`",
        ("a", "b", "c", "g", "i"),
        rewrite=universe_one_list_as_array,
    ),
    Experiment(
        "lower-inline",
        "array values lowered by a plain call (folded in custom plans), not a sub-SELECT",
        ("g", "h", "i"),
        rewrite=lower_array_inline,
        adopted="the compiler lowers array values with a plain call",
    ),
    Experiment(
        "or-one-scan",
        "OR of event-only groups in one scan",
        ("e",),
        rewrite=or_groups_in_one_scan,
        adopted="OR-ed groups of one event test read the events once, with type = ANY",
    ),
    Experiment(
        "among-generic",
        "matching_among (1000) under a generic plan, without the candidate filter in "
        "membership subqueries",
        ("a", "f", "g", "i"),
        rewrite=among_without_candidate_probe,
        among=1000,
        plan_cache_mode="force_generic_plan",
        adopted="matching_among reads the candidates once into a CTE, lists as array tests",
    ),
    Experiment(
        "among-custom",
        "the same rewrite of matching_among (1000) under custom plans (the default here)",
        ("a", "f", "g", "i"),
        rewrite=among_without_candidate_probe,
        among=1000,
        adopted="matching_among reads the candidates once into a CTE, lists as array tests",
    ),
)


# -- measuring --------------------------------------------------------------------------
@dataclass
class Outcome:
    shape: str
    baseline: list[float]
    variant: list[float]
    result: int
    plan: str

    @property
    def speedup(self) -> float:
        return statistics.median(self.baseline) / statistics.median(self.variant)


async def run_once(conn: asyncpg.Connection, sql: str, params: Sequence[Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    rows = await conn.fetch(sql, *params)
    elapsed = (time.perf_counter() - start) * 1000
    value = rows[0][0] if len(rows) == 1 and sql.startswith("SELECT count(*)") else None
    return elapsed, value if value is not None else sorted(r[0] for r in rows)


async def timed_runs(
    conn: asyncpg.Connection, sql: str, params: Sequence[Any], runs: int
) -> tuple[list[float], Any]:
    _, result = await run_once(conn, sql, params)  # warm-up
    samples = [(await run_once(conn, sql, params))[0] for _ in range(runs)]
    return samples, result


async def execute_all(conn: asyncpg.Connection, statements: Sequence[str]) -> None:
    for statement in statements:
        await conn.execute(statement)


def compiled_for(
    experiment: Experiment, ctx: Context, shape: Shape, registry: Any, cands: list[UUID]
) -> CompiledQuery:
    query = segment_query(ctx, shape, registry)
    if experiment.among is None:
        return compile_count(query)
    return compile_matching_among(query, cands)


@asynccontextmanager
async def variant_settings(conn: asyncpg.Connection, experiment: Experiment) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for name, value in experiment.settings:
            await stack.enter_async_context(session_setting(conn, name, value))
        yield


async def variant_run(
    conn: asyncpg.Connection, experiment: Experiment, sql: str, params: Sequence[Any]
) -> tuple[float, Any]:
    async with variant_settings(conn, experiment):
        return await run_once(conn, sql, params)


async def alternating(
    conn: asyncpg.Connection, experiment: Experiment, q: CompiledQuery, runs: int
) -> tuple[list[float], list[float], Any]:
    """Warm-up both (and compare results), then rounds of baseline and variant, the order
    reversed every other round, so that load from elsewhere hits both alike."""
    sql = experiment.rewrite(q.sql)
    if experiment.rewrite is not unchanged and sql == q.sql:
        raise SystemExit(f"{experiment.key}: the rewrite no longer applies to the compiled SQL")
    _, expected = await run_once(conn, q.sql, q.params)
    _, got = await variant_run(conn, experiment, sql, q.params)
    if got != expected:
        raise SystemExit(f"{experiment.key}: the variant's result differs")
    baseline: list[float] = []
    variant: list[float] = []
    for round_ in range(runs):
        order = (False, True) if round_ % 2 == 0 else (True, False)
        for is_variant in order:
            if is_variant:
                variant.append((await variant_run(conn, experiment, sql, q.params))[0])
            else:
                baseline.append((await run_once(conn, q.sql, q.params))[0])
    return baseline, variant, expected


async def measure_alternating(
    conn: asyncpg.Connection, experiment: Experiment, queries: dict[str, CompiledQuery], runs: int
) -> list[Outcome]:
    outcomes = []
    for key, q in queries.items():
        baseline, variant, result = await alternating(conn, experiment, q, runs)
        sql = experiment.rewrite(q.sql)
        async with variant_settings(conn, experiment):
            plan = await explain(conn, Side("variant", sql, q.params))
        count = result if isinstance(result, int) else len(result)
        outcomes.append(Outcome(key, baseline, variant, count, plan))
    return outcomes


async def measure_with_ddl(
    conn: asyncpg.Connection, experiment: Experiment, queries: dict[str, CompiledQuery], runs: int
) -> list[Outcome]:
    baseline = {key: await timed_runs(conn, q.sql, q.params, runs) for key, q in queries.items()}
    await execute_all(conn, experiment.setup)
    try:
        outcomes = []
        for key, q in queries.items():
            sql = experiment.rewrite(q.sql)
            samples, result = await timed_runs(conn, sql, q.params, runs)
            if result != baseline[key][1]:
                raise SystemExit(f"{experiment.key} ({key}): the variant's result differs")
            plan = await explain(conn, Side("variant", sql, q.params))
            count = result if isinstance(result, int) else len(result)
            outcomes.append(Outcome(key, baseline[key][0], samples, count, plan))
        return outcomes
    finally:
        await execute_all(conn, experiment.teardown)


async def measure(
    conn: asyncpg.Connection, experiment: Experiment, queries: dict[str, CompiledQuery], runs: int
) -> list[Outcome]:
    if experiment.setup:
        return await measure_with_ddl(conn, experiment, queries, runs)
    return await measure_alternating(conn, experiment, queries, runs)


def table(experiment: Experiment, outcomes: list[Outcome]) -> str:
    lines = [
        f"#### {experiment.key}: {experiment.title}",
        "",
        "| shape | rows | compiled ms | variant ms | speedup | variant plan: indexes used |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        indexes, seq = access_paths(o.plan)
        paths = ", ".join(f"`{i}`" for i in indexes) + (
            f"; seq scan: {', '.join(seq)}" if seq else ""
        )
        lines.append(
            f"| ({o.shape}) | {o.result:,} | {statistics.median(o.baseline):,.1f} "
            f"| {statistics.median(o.variant):,.1f} | {o.speedup:.2f}x | {paths} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> str:
    conn = await connect(args.dsn)
    try:
        _, now = await dataset(conn)
        ctx = bench_context(now)
        registry = await load_registry(conn, ctx.account_id)
        candidates = await pick_candidates(conn, ctx.account_id)
        shapes = {s.key: s for s in (make(ctx) for make in SHAPES)}
        sections = []
        for experiment in EXPERIMENTS:
            if args.only and experiment.key not in args.only:
                continue
            if experiment.adopted:
                print(f"{experiment.key}: adopted ({experiment.adopted}); skipped", file=sys.stderr)
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {experiment.key}", file=sys.stderr, flush=True)
            cands = candidates[experiment.among or 1000]
            queries = {
                key: compiled_for(experiment, ctx, shapes[key], registry, cands)
                for key in experiment.shapes
            }
            async with session_setting(conn, "plan_cache_mode", experiment.plan_cache_mode):
                outcomes = await measure(conn, experiment, queries, args.runs)
            sections.append(table(experiment, outcomes))
            print(sections[-1], file=sys.stderr, flush=True)
        return "\n\n".join(sections) + "\n"
    finally:
        await conn.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="experiment keys to run")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "experiments.md")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    markdown = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown)


if __name__ == "__main__":
    main()
