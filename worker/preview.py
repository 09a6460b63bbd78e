"""What a rule would match, before it is saved (docs/preview.md): the exact count and the
first matching contacts if they come within the timeout, else an estimate from a random
sample, never later than the timeout plus GRACE_MS. Only reads (read-only transactions).

The exact count runs alone first. Once half the timeout has passed without it, the estimate
starts beside it on a second connection, so that it has time to draw a useful sample; it
is dropped if the exact count still comes in time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg
import structlog

from worker.compiler import SegmentQuery, compile_member_ids
from worker.estimate import (
    SAMPLE_LIMIT,
    SAMPLE_SIZE,
    Deadline,
    Interval,
    SampleContact,
    bounded,
    emails,
    estimate,
)

log = structlog.get_logger(__name__)

GRACE_MS = 200  # the most a preview runs past its timeout
# Kept back from the grace for what follows the estimate (shaping and sending the answer).
_ANSWER_MS = 40
# The exact count always has this long, even when the timeout is shorter.
_MIN_EXACT_MS = 1

# The count and the first matching ids in one pass over the matches: a second query for the
# first ones (ORDER BY id LIMIT) was measured to take as long again as the count.
_COUNT_AND_FIRST = """SELECT count(*) AS total, (array_agg(m.id ORDER BY m.id))[1:{limit}] AS first
FROM (
{members}
) m"""


@dataclass(frozen=True)
class Preview:
    exact: bool
    total_count: int | None  # set when exact
    estimate: Interval | None  # set when not exact
    sample: list[SampleContact]
    took_ms: int


async def preview(
    pool: asyncpg.Pool,
    query: SegmentQuery,
    *,
    timeout_ms: int,
    started: float | None = None,
    seed: int | None = None,
    sample_size: int = SAMPLE_SIZE,
) -> Preview:
    """`query`'s count and first matches, or past `timeout_ms` (counted from `started`, a
    time.monotonic() value, by default now) an estimate. `seed` makes the estimate's random
    draw repeatable."""
    start = time.monotonic() if started is None else started
    exact_deadline = Deadline(start + timeout_ms / 1000)
    exact = None
    if exact_deadline.left_ms() >= _MIN_EXACT_MS:
        exact = asyncio.create_task(_exact(pool, query, exact_deadline))
        head_start = start + timeout_ms / 2000
        done = await _settled(exact, head_start)
        if done is not None:
            return _answer(start, done)
    final = Deadline(start + (timeout_ms + GRACE_MS - _ANSWER_MS) / 1000)
    estimating = asyncio.create_task(_estimate(pool, query, final, seed, sample_size))
    try:
        if exact is not None:
            done = await _settled(exact, exact_deadline.at + _ANSWER_MS / 1000)
            if done is not None:
                return _answer(start, done)
        interval, sample = await estimating
    finally:
        await _stop(estimating, exact)
    log.info(
        "preview.estimated",
        account_id=str(query.account_id),
        timeout_ms=timeout_ms,
        low=interval.low,
        high=interval.high,
    )
    return Preview(False, None, interval, sample, _ms_since(start))


async def _stop(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel what still runs (its statement is cancelled, its connection returned)."""
    running = [t for t in tasks if t is not None and not t.done()]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


@dataclass(frozen=True)
class _Exact:
    count: int
    sample: list[SampleContact]


async def _exact(pool: asyncpg.Pool, query: SegmentQuery, deadline: Deadline) -> _Exact | None:
    """The count and first matches, or None if they did not come by `deadline`."""
    members = compile_member_ids(query)
    sql = _COUNT_AND_FIRST.format(members=members.sql, limit=SAMPLE_LIMIT)
    try:
        # One snapshot: the sample is of the contacts counted.
        async with (
            pool.acquire(timeout=deadline.left_ms() / 1000) as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            await bounded(conn, deadline)
            # fetch(), not fetchrow(): a row limit would keep PostgreSQL from parallel workers.
            row = (await conn.fetch(sql, *members.params))[0]
            sample = await emails(conn, query.account_id, row["first"] or [], deadline)
    except (asyncpg.QueryCanceledError, TimeoutError):
        return None
    return _Exact(row["total"], sample)


async def _settled(task: asyncio.Task[_Exact | None], at: float) -> _Exact | None:
    """The task's result if it has one by `at` (a time.monotonic() value); else None, and
    the task is left running (or, past the exact count's deadline, stopped)."""
    try:
        return await asyncio.wait_for(asyncio.shield(task), max(0.0, at - time.monotonic()))
    except TimeoutError:
        return None


async def _estimate(
    pool: asyncpg.Pool, query: SegmentQuery, deadline: Deadline, seed: int | None, size: int
) -> tuple[Interval, list[SampleContact]]:
    try:
        async with pool.acquire(timeout=max(0.001, deadline.left_ms() / 1000)) as conn:
            found = await estimate(conn, query, deadline, seed=seed, sample_size=size)
    except (asyncpg.QueryCanceledError, TimeoutError) as exc:
        raise PreviewTooSlow(
            "the preview could neither count nor sample the account's contacts within its "
            "timeout; retry, or ask an operator to raise SEGMENTS_PREVIEW_TIMEOUT_MS"
        ) from exc
    return found.interval, found.sample


class PreviewTooSlow(Exception):
    """Neither the count nor the estimate's draw finished in time (the database is slow or
    the account is very large)."""


def _answer(start: float, done: _Exact) -> Preview:
    return Preview(True, done.count, None, done.sample, _ms_since(start))


def _ms_since(start: float) -> int:
    return round((time.monotonic() - start) * 1000)
