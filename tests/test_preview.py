"""Preview (worker.preview, worker.estimate) on generated data: the exact answer, the
estimate's interval over seeded trials, the time bound, and that nothing is written."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest

from tests.preview_data import (
    RULES,
    Generated,
    generate_account,
    query_of,
    table_fingerprints,
)
from worker.compiler import SegmentQuery, compile_matching_among, compile_member_ids
from worker.db import Conn
from worker.estimate import Interval, wilson_interval
from worker.preview import GRACE_MS, preview

# The issue asks for nine in ten of at least 50 trials. A 95% interval misses in about 1 trial
# of 20, so 50 trials fall below 45 held about 4% of the time by chance alone (three rules:
# about 1 CI run in 9). 400 trials keep the same bar with chance out of it: below 360 held
# needs coverage near 93% or worse (binomial tail 2e-6 at the nominal 95%).
TRIALS = 400
SAMPLE = 400  # of 4,000 contacts: a tenth, so that the interval is not trivially exact
_LONG_MS = 60_000  # a timeout that no count here reaches
# Time enough for the whole estimate, however loaded the machine (the deadline's own tests
# keep the default grace).
SLOW = {"grace_ms": _LONG_MS}


@pytest.fixture(scope="module")
async def data(pool: asyncpg.Pool) -> AsyncIterator[Generated]:
    yield await generate_account(pool, contacts=4_000, events=30_000)


def test_wilson_interval_is_exact_when_all_are_tested() -> None:
    assert wilson_interval(7, 100, 100) == Interval(7, 7, 7)


def test_wilson_interval_without_a_test_is_the_whole_population() -> None:
    assert wilson_interval(0, 0, 500) == Interval(None, 0, 500)


def test_wilson_interval_never_contradicts_the_sample() -> None:
    # 3 of 10 tested match: at least 3 match and at least 7 do not, whatever the interval says.
    for population in (10, 11, 20, 1_000_000):
        got = wilson_interval(3, 10, population)
        assert got.low >= 3 and got.high <= population - 7
        assert got.value is not None and got.low <= got.value <= got.high


def test_wilson_interval_holds_nothing_when_none_matched() -> None:
    got = wilson_interval(0, 1000, 1_000_000)
    assert got.low == 0 and got.value == 0 and 0 < got.high < 10_000


def test_wilson_interval_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson_interval(5, 4, 10)


@pytest.mark.parametrize("matching", [20, 400, 2_680, 3_900])
def test_wilson_interval_holds_the_truth_95_times_in_100(matching: int) -> None:
    """The interval's calibration, without a database: 2,000 seeded draws of 400 of 4,000
    without replacement, as the estimate draws. Nominal coverage is 95%; Wilson's interval
    with the finite population correction gives 94-97% here. Below 92% would be a miscounted
    interval, not chance (more than four standard deviations)."""
    rng = random.Random(matching)
    population, tested, trials = 4_000, 400, 2_000
    held = 0
    for _ in range(trials):
        matched = sum(1 for i in rng.sample(range(population), tested) if i < matching)
        interval = wilson_interval(matched, tested, population)
        held += interval.low <= matching <= interval.high
    assert 0.92 <= held / trials <= 0.99, f"{held} of {trials}"


@pytest.mark.parametrize("rule", sorted(RULES))
async def test_exact_preview_counts_and_shows_the_first_matches(
    pool: asyncpg.Pool, data: Generated, rule: str
) -> None:
    universe = (data.lists["all"], data.lists["newsletter"])
    query = await query_of(pool, data.account_id, RULES[rule], universe)
    got = await preview(pool, query, timeout_ms=_LONG_MS)
    async with pool.acquire() as conn:
        members = await _members(conn, query)
    assert got.exact and got.estimate is None
    assert got.total_count == len(members)
    assert [c.id for c in got.sample] == sorted(members)[:10]


@pytest.mark.parametrize("rule", sorted(RULES))
async def test_estimate_holds_the_true_count_in_nine_of_ten_trials(
    pool: asyncpg.Pool, data: Generated, rule: str
) -> None:
    """Timeout 0: the estimate path runs every time, each trial with its own seed (and all
    the time it needs: the interval is under test here, not the deadline)."""
    universe = (data.lists["all"],)
    query = await query_of(pool, data.account_id, RULES[rule], universe)
    truth = (await preview(pool, query, timeout_ms=_LONG_MS)).total_count
    assert truth is not None
    held, widths = 0, []
    for seed in range(TRIALS):
        got = await preview(pool, query, timeout_ms=0, seed=seed, sample_size=SAMPLE, **SLOW)
        assert not got.exact and got.total_count is None and got.estimate is not None
        interval = got.estimate
        assert interval.value is not None and interval.low <= interval.value <= interval.high
        held += interval.low <= truth <= interval.high
        widths.append(interval.high - interval.low)
        matching = await _matching(pool, query, [c.id for c in got.sample])
        assert len(matching) == len(got.sample)  # the sample only shows matching contacts
    assert held >= 0.9 * TRIALS, f"{held} of {TRIALS} intervals held {truth}"
    # And the interval says something: narrower than the account on average.
    assert sum(widths) / TRIALS < data.contacts / 2


async def test_a_preview_writes_nothing(
    pool: asyncpg.Pool, conn: asyncpg.Connection, data: Generated
) -> None:
    before = await table_fingerprints(conn)
    for rule in RULES.values():
        query = await query_of(pool, data.account_id, rule, (data.lists["all"],))
        assert (await preview(pool, query, timeout_ms=_LONG_MS)).exact
        assert not (await preview(pool, query, timeout_ms=0, seed=1, **SLOW)).exact
    assert await table_fingerprints(conn) == before


@pytest.mark.parametrize("timeout_ms", [0, 1, 5, 30, 100])
async def test_a_preview_never_runs_past_its_timeout_and_grace(
    pool: asyncpg.Pool, data: Generated, timeout_ms: int
) -> None:
    """The full sample (5,000 of the account's contacts) takes longer than the grace here, so
    the estimate's own deadline is what stops it."""
    query = await query_of(pool, data.account_id, RULES["rare"], (data.lists["all"],))
    for seed in range(3):
        started = time.monotonic()
        got = await preview(pool, query, timeout_ms=timeout_ms, seed=seed)
        elapsed_ms = (time.monotonic() - started) * 1000
        assert elapsed_ms <= timeout_ms + GRACE_MS, got
        assert got.took_ms <= timeout_ms + GRACE_MS


async def _members(conn: Conn, query: SegmentQuery) -> list[UUID]:
    compiled = compile_member_ids(query)
    return [r[0] for r in await conn.fetch(compiled.sql, *compiled.params)]


async def _matching(pool: asyncpg.Pool, query: SegmentQuery, ids: list[UUID]) -> list[UUID]:
    if not ids:
        return []
    compiled = compile_matching_among(query, ids)
    async with pool.acquire() as conn:
        return [r[0] for r in await conn.fetch(compiled.sql, *compiled.params)]
