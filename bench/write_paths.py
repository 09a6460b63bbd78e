"""Where a first build's time goes beyond its query: ways of writing a large segment's members,
side by side on the benchmark data (`python -m bench.gen_data` first). Everything is rolled
back; nothing is kept.

    .venv/bin/python -m bench.write_paths [--runs 3]

Segment "subscribed AND opened in the last 90 days" over the 1M-contact account's big list
(about 335,000 members), the build's `work_mem`. Each round runs every way once, in turn:
- `bare SQL`: `SELECT count(*)` over the member-ids query (parallel plan);
- `build statements`: what worker/builds.py runs for a first build (`write_difference`);
- `insert, both indexes` / `primary key only` / `heap only`: the query into a temporary
  table, then `INSERT ... SELECT ... ORDER BY id` into an empty copy of `segment_members`
  (made in the transaction, a logged table like the real one) with its two indexes, with
  the primary key only, with none;
- `COPY streamed`: the sorted query streamed by a second connection (`COPY (...) TO STDOUT`)
  into `COPY ... FROM STDIN` on the first (into the copy with both indexes), through a
  bounded queue. COPY takes no bind parameters, so asyncpg inlines them as quoted literals:
  measured here, not used.
The build statements write into the real `segment_members`, which on the benchmark data holds
few other rows.
Prints a Markdown table of medians (total, and the part after the query where there is one).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from bench.common import ACCOUNT_BIG, DEFAULT_DSN, list_id
from bench.worker_bench import SUBSCRIBED_OPENERS
from worker.builds import BUILD_WORK_MEM, write_difference
from worker.compiler import CompiledQuery, compile_member_ids
from worker.db import connect
from worker.store import load_registry, load_segment_rules

# The ways that change indexes write into a copy of segment_members made in the transaction,
# so the real table is never locked (DDL on it would block every reader of memberships).
SCRATCH = "bench_members"
MAKE_SCRATCH = f"CREATE TABLE {SCRATCH} (LIKE segment_members INCLUDING DEFAULTS)"
PRIMARY_KEY = f"ALTER TABLE {SCRATCH} ADD PRIMARY KEY (segment_id, contact_id)"
CONTACT_INDEX = f"CREATE INDEX ON {SCRATCH} (contact_id, segment_id)"
INSERT = f"""INSERT INTO {SCRATCH} (segment_id, contact_id, account_id)
SELECT $1, id, $2 FROM bench_matched ORDER BY id"""

# (total seconds, seconds after the query or None)
Timing = tuple[float, float | None]
Conn = asyncpg.Connection
Way = Callable[[Conn, Conn, CompiledQuery, uuid.UUID], Awaitable[Timing]]


async def bare_sql(a: Conn, _: Conn, q: CompiledQuery, __: uuid.UUID) -> Timing:
    started = time.perf_counter()
    await a.execute(f"SELECT count(*) FROM ({q.sql}) m", *q.params)
    return time.perf_counter() - started, None


async def build_statements(a: Conn, _: Conn, q: CompiledQuery, segment: uuid.UUID) -> Timing:
    result = await write_difference(a, q, segment, ACCOUNT_BIG)
    return result.query_s + result.write_s, result.write_s


def insert_after(*ddl: str) -> Way:
    async def way(
        a: asyncpg.Connection, _: asyncpg.Connection, q: CompiledQuery, segment: uuid.UUID
    ) -> Timing:
        for statement in (MAKE_SCRATCH, *ddl):
            await a.execute(statement)
        started = time.perf_counter()
        await a.execute(f"CREATE TEMP TABLE bench_matched ON COMMIT DROP AS {q.sql}", *q.params)
        queried = time.perf_counter()
        await a.execute(INSERT, segment, ACCOUNT_BIG)
        return time.perf_counter() - started, time.perf_counter() - queried

    return way


async def copy_streamed(
    a: asyncpg.Connection, b: asyncpg.Connection, q: CompiledQuery, segment: uuid.UUID
) -> Timing:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)

    async def produce() -> None:
        try:
            await b.copy_from_query(
                f"SELECT '{segment}'::uuid, id, '{ACCOUNT_BIG}'::uuid FROM ({q.sql}) m ORDER BY id",
                *q.params,
                output=queue.put,
                format="binary",
            )
        finally:
            await queue.put(None)

    async def chunks() -> AsyncIterator[bytes]:
        while (chunk := await queue.get()) is not None:
            yield chunk

    for statement in (MAKE_SCRATCH, PRIMARY_KEY, CONTACT_INDEX):
        await a.execute(statement)
    started = time.perf_counter()
    await asyncio.gather(
        produce(),
        a.copy_to_table(
            SCRATCH,
            source=chunks(),
            columns=["segment_id", "contact_id", "account_id"],
            format="binary",
        ),
    )
    return time.perf_counter() - started, None


WAYS: dict[str, Way] = {
    "bare SQL": bare_sql,
    "build statements (first build)": build_statements,
    "query, then INSERT: both indexes": insert_after(PRIMARY_KEY, CONTACT_INDEX),
    "query, then INSERT: primary key only": insert_after(PRIMARY_KEY),
    "query, then INSERT: heap only": insert_after(),
    "COPY streamed from a second connection": copy_streamed,
}


async def main(args: argparse.Namespace) -> None:
    a = await connect(args.dsn)
    b = await connect(args.dsn)
    await b.execute(f"SET work_mem = '{BUILD_WORK_MEM}'")
    segment = await a.fetchval(
        """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids)
           VALUES ($1, 'bench write paths', 'v2', $2, $3) RETURNING id""",
        ACCOUNT_BIG,
        SUBSCRIBED_OPENERS,
        [list_id(ACCOUNT_BIG, "all")],
    )
    try:
        rules = await load_segment_rules(a, segment)
        assert rules is not None
        query = rules.query(await load_registry(a, ACCOUNT_BIG), datetime.now(UTC))
        compiled = compile_member_ids(query)
        timings: dict[str, list[Timing]] = {name: [] for name in WAYS}
        for _ in range(args.runs):
            for name, way in WAYS.items():
                transaction = a.transaction()
                await transaction.start()
                try:
                    await a.execute(f"SET LOCAL work_mem = '{BUILD_WORK_MEM}'")
                    timings[name].append(await way(a, b, compiled, segment))
                finally:
                    await transaction.rollback()
                await a.execute("VACUUM segment_members")  # the rolled-back rows
        members = await b.fetchval(f"SELECT count(*) FROM ({compiled.sql}) m", *compiled.params)
    finally:
        await a.execute("DELETE FROM segments WHERE id = $1", segment)
        await a.close()
        await b.close()
    bare = statistics.median(total for total, _ in timings["bare SQL"])
    print(f"{members:,} members; medians of {args.runs} rounds\n")
    print("| way | total s | after the query s | ratio to bare SQL |")
    print("|---|---:|---:|---:|")
    for name, runs in timings.items():
        total = statistics.median(t for t, _ in runs)
        after = [w for _, w in runs if w is not None]
        written = f"{statistics.median(after):.2f}" if after else "-"
        print(f"| {name} | {total:.2f} | {written} | {total / bare:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
