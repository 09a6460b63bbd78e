"""How many contacts a rule would match, estimated from a random sample of the account's
contacts, with a 95% interval, within a deadline (docs/preview.md).

The sample is a simple random sample of the account's contacts (not of the universe: the
compiled which-of-these-ids query applies the universe, so a contact outside it simply does
not match). Its matches are found in chunks while the next chunk is likely to finish in
time; whoever waits for the estimate may also stop it at any moment. Either way the chunks
done are themselves a simple random sample (the drawn ids are shuffled first), so the
interval stays honest, only wider.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from worker.compiler import SegmentQuery, compile_matching_among
from worker.db import Conn

CONFIDENCE = 0.95
_Z = 1.959964  # the standard normal quantile of 0.975: a two-sided 95% interval
SAMPLE_SIZE = 5000  # contacts drawn; the interval's width shrinks as 1/sqrt of it
# The first chunk is small, so that even a slow rule yields some matches before the deadline.
CHUNK_SIZES = (250, 1000)
MIN_STATEMENT_MS = 5  # below this, a statement cannot finish: stop instead of starting it
SAMPLE_LIMIT = 10  # matching contacts shown
_EMAILS_MS = 15  # kept back from the deadline to read the matching sampled contacts' emails


@dataclass(frozen=True)
class Interval:
    """An estimate of a count and its interval (bounds included). `value` is None when not
    one sampled contact could be tested in time: then the interval is all that is known."""

    value: int | None
    low: int
    high: int
    confidence: float = CONFIDENCE


@dataclass(frozen=True)
class SampleContact:
    id: UUID
    email: str


@dataclass
class Progress:
    """What an estimate has found so far: enough for an interval at any moment, so that
    whoever waits for it can stop it at a deadline and still answer."""

    population: int | None = None  # the account's contacts, once the draw is done
    tested: int = 0  # sampled contacts whose match is decided
    matched: list[UUID] = field(default_factory=list)
    sample: list[SampleContact] = field(default_factory=list)  # read last

    def interval(self) -> Interval | None:
        """None before the draw is done."""
        if self.population is None:
            return None
        return wilson_interval(len(self.matched), self.tested, self.population)


def wilson_interval(matched: int, tested: int, population: int, z: float = _Z) -> Interval:
    """The count of matching contacts among `population`, from `matched` of `tested` drawn
    without replacement: Wilson's score interval for the proportion, with the finite
    population correction (a larger share sampled narrows it; all sampled, it is exact),
    scaled to the population and clamped to what the sample proves (at least `matched` match,
    at least `tested - matched` do not)."""
    if not 0 <= matched <= tested <= population:
        raise ValueError(f"need 0 <= matched <= tested <= population, got {matched, tested}")
    if tested == 0:
        return Interval(None, 0, population)
    if tested == population:
        return Interval(matched, matched, matched)
    share = matched / tested
    # The effective sample size of sampling without replacement: tested * (N-1) / (N-n).
    n = tested * (population - 1) / (population - tested)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    floor_, ceiling = matched, population - (tested - matched)
    low = max(floor_, math.floor(population * (centre - half)))
    high = min(ceiling, math.ceil(population * (centre + half)))
    value = min(high, max(low, round(population * share)))
    return Interval(value, low, high)


# One scan of the account's contacts: how many there are, and a Bernoulli sample of them.
_DRAW = """SELECT count(*) AS population,
       coalesce(array_agg(id) FILTER (WHERE random() < $2::float8), '{}') AS drawn
FROM contacts WHERE account_id = $1"""
# The planner's guess of the account's size (from statistics, no scan): sets the draw's rate.
_GUESS = "EXPLAIN (FORMAT JSON) SELECT 1 FROM contacts WHERE account_id = $1"
_EMAILS = """SELECT id, email FROM contacts WHERE account_id = $1 AND id = ANY($2::uuid[])
ORDER BY id LIMIT $3"""


class Deadline:
    """What is left of a time budget, as statement timeouts."""

    def __init__(self, at: float) -> None:
        self.at = at  # time.monotonic() value

    def left_ms(self) -> int:
        return math.floor((self.at - time.monotonic()) * 1000)

    def passed(self) -> bool:
        return self.left_ms() < MIN_STATEMENT_MS


async def bounded(conn: Conn, deadline: Deadline, also: str = "") -> None:
    """In a transaction: its statements stop (QueryCanceledError) at the deadline, and run
    without JIT, which compiles for 50-300 ms per statement here (docs/benchmarks.md): a
    large part of the budget. `also`: SQL of constants to run in the same round trip."""
    settings = f"SET LOCAL statement_timeout = {max(1, deadline.left_ms())}; SET LOCAL jit = off"
    await conn.execute(f"{settings}; {also}" if also else settings)


async def estimate(
    conn: Conn,
    query: SegmentQuery,
    deadline: Deadline,
    progress: Progress,
    *,
    seed: int | None = None,
    sample_size: int = SAMPLE_SIZE,
) -> None:
    """Estimate `query`'s count into `progress` by `deadline` (QueryCanceledError if not even
    the sample could be drawn by then). One read-only transaction, few round trips: on a
    loaded machine each costs milliseconds of a budget of a few hundred. `seed` makes the
    draw repeatable."""
    rng = random.Random(seed)
    async with conn.transaction(readonly=True):
        await bounded(conn, deadline, f"SELECT setseed({rng.uniform(-1, 1)!r})")
        population, drawn = await _draw(conn, query.account_id, rng, sample_size)
        progress.population = population
        await _test_chunks(conn, query, drawn, Deadline(deadline.at - _EMAILS_MS / 1000), progress)
        first = sorted(progress.matched)[:SAMPLE_LIMIT]
        if first and not deadline.passed():
            progress.sample = await emails(conn, query.account_id, first)


async def _draw(
    conn: Conn, account_id: UUID, rng: random.Random, size: int
) -> tuple[int, list[UUID]]:
    """The account's size and a random sample of about `size` of its contacts' ids, in
    random order."""
    plan = await conn.fetchval(_GUESS, account_id)
    guess = max(1.0, float(plan[0]["Plan"]["Plan Rows"]))
    # A guess too low draws too many; a rate a little above the target absorbs a guess
    # somewhat too high. Either way the surplus is dropped below, at random.
    row = (await conn.fetch(_DRAW, account_id, min(1.0, 1.5 * size / guess)))[0]
    drawn: list[UUID] = list(row["drawn"])
    rng.shuffle(drawn)  # the scan's order follows the table's: chunks must not
    return int(row["population"]), drawn[:size]


async def _test_chunks(
    conn: Conn,
    query: SegmentQuery,
    drawn: Sequence[UUID],
    deadline: Deadline,
    progress: Progress,
) -> None:
    """Which of the drawn contacts match, a chunk at a time, while the next chunk is likely
    to finish before the deadline (judged by the last one's pace)."""
    ms_per_contact = 0.0
    for chunk in _chunks(drawn):
        if deadline.left_ms() < max(MIN_STATEMENT_MS, ms_per_contact * len(chunk)):
            return
        began = time.monotonic()
        compiled = compile_matching_among(query, chunk)
        rows = await conn.fetch(compiled.sql, *compiled.params)
        progress.matched += [r[0] for r in rows]
        progress.tested += len(chunk)
        ms_per_contact = (time.monotonic() - began) * 1000 / len(chunk)


def _chunks(ids: Sequence[UUID]) -> list[Sequence[UUID]]:
    first, rest = CHUNK_SIZES
    out = [ids[:first]]
    out += [ids[i : i + rest] for i in range(first, len(ids), rest)]
    return [chunk for chunk in out if chunk]


async def emails(conn: Conn, account_id: UUID, ids: Sequence[UUID]) -> list[SampleContact]:
    """The contacts of these ids with their emails, by id."""
    if not ids:
        return []
    rows = await conn.fetch(_EMAILS, account_id, list(ids), SAMPLE_LIMIT)
    return [SampleContact(r["id"], r["email"]) for r in rows]
