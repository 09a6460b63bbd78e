"""What a rule would match, before it is saved (docs/preview.md): the exact count and the
first matching contacts if they come within the timeout, else an estimate from a random
sample, never later than the timeout plus GRACE_MS. Only reads (read-only transactions).

The exact count runs alone first. Once half the timeout has passed without it, the estimate
starts beside it on a second connection, so that it has time to draw a useful sample; it
is dropped if the exact count still comes in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from worker.compiler import SegmentQuery, compile_member_ids
from worker.estimate import (
    SAMPLE_LIMIT,
    SAMPLE_SIZE,
    Deadline,
    Interval,
    Progress,
    SampleContact,
    bounded,
    emails,
    estimate,
)

log = structlog.get_logger(__name__)

GRACE_MS = 200  # the most a preview runs past its timeout
TOO_SLOW = (
    "the preview could neither count nor sample the account's contacts within its timeout; "
    "retry, or ask an operator to raise SEGMENTS_PREVIEW_TIMEOUT_MS"
)
# Kept back from the grace for what follows the estimate (shaping and sending the answer).
_ANSWER_MS = 100
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
    grace_ms: int = GRACE_MS,
) -> Preview:
    """`query`'s count and first matches, or past `timeout_ms` (counted from `started`, a
    time.monotonic() value, by default now) an estimate, by `grace_ms` later at the latest.
    `seed` makes the estimate's random draw repeatable."""
    start = time.monotonic() if started is None else started
    exact_deadline = Deadline(start + timeout_ms / 1000)
    final = Deadline(latest_answer(timeout_ms, start, grace_ms))
    progress = Progress()
    exact = estimating = None
    try:
        if exact_deadline.left_ms() >= _MIN_EXACT_MS:
            exact = asyncio.create_task(_exact(pool, query, exact_deadline))
            if done := await _result(exact, start + timeout_ms / 2000):
                return _answer(start, done)
        estimating = asyncio.create_task(_estimate(pool, query, final, progress, seed, sample_size))
        if exact is not None and (done := await _result(exact, exact_deadline.at)):
            return _answer(start, done)
        # The estimate stops itself at `final`; this stops it if the database does not.
        await asyncio.wait([estimating], timeout=max(0.0, final.at - time.monotonic()))
        if exact is not None and (done := await _result(exact, 0)):
            return _answer(start, done)  # late, but exact beats an estimate
    finally:
        _abandon(exact, estimating)
    interval = progress.interval()
    if interval is None:
        raise PreviewTooSlow(TOO_SLOW)
    log.info(
        "preview.estimated",
        account_id=str(query.account_id),
        timeout_ms=timeout_ms,
        population=progress.population,
        tested=progress.tested,
        low=interval.low,
        high=interval.high,
    )
    return Preview(False, None, interval, progress.sample, _ms_since(start))


class PreviewTooSlow(Exception):
    """Neither the count nor the estimate's draw finished in time (the database is slow or
    the account is very large)."""


def _abandon(*tasks: asyncio.Task[None] | asyncio.Task[_Exact | None] | None) -> None:
    """Cancel what still runs, without waiting: asyncpg cancels its statement and the pool
    gets its connection back in the background, after the answer has gone."""
    for task in tasks:
        if task is not None and not task.done():
            task.cancel()
            task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("preview.abandoned_task_failed", error=repr(task.exception()))


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
            sample = await emails(conn, query.account_id, row["first"] or [])
    except (asyncpg.QueryCanceledError, TimeoutError):
        return None
    return _Exact(row["total"], sample)


async def _result(task: asyncio.Task[_Exact | None], at: float) -> _Exact | None:
    """The task's result if it has one by `at` (a time.monotonic() value); else None, and
    the task runs on."""
    await asyncio.wait([task], timeout=max(0.0, at - time.monotonic()))
    return task.result() if task.done() else None


async def _estimate(
    pool: asyncpg.Pool,
    query: SegmentQuery,
    deadline: Deadline,
    progress: Progress,
    seed: int | None,
    size: int,
) -> None:
    with contextlib.suppress(asyncpg.QueryCanceledError, TimeoutError):  # progress says
        async with pool.acquire(timeout=max(0.001, deadline.left_ms() / 1000)) as conn:
            await estimate(conn, query, deadline, progress, seed=seed, sample_size=size)


def latest_answer(timeout_ms: int, started: float, grace_ms: int = GRACE_MS) -> float:
    """When a preview that started at `started` answers at the latest (time.monotonic())."""
    return started + (timeout_ms + grace_ms - _ANSWER_MS) / 1000


def _answer(start: float, done: _Exact) -> Preview:
    return Preview(True, done.count, None, done.sample, _ms_since(start))


def _ms_since(start: float) -> int:
    return round((time.monotonic() - start) * 1000)
