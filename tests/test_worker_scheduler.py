"""The scheduler: refreshes of clock-dependent segments, one leader, stuck builds requeued;
and the worker's /metrics."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import worker_support
from tests.test_worker_builds import SUBSCRIBED_IN_DE, _people
from tests.waiting import wait_for
from tests.worker_support import (
    publish_segment,
    running_worker,
    save_segment,
    segment_row,
    wait_status,
    worker_settings,
)
from worker.scheduler import Scheduler

OPENED_LAST_30_DAYS = {
    "any": [
        {
            "all": [
                {
                    "kind": "activity",
                    "metric": "open",
                    "operator": "ever",
                    "days_window": {"mode": "last", "days": 30},
                }
            ]
        }
    ]
}


async def test_clock_dependent_segments_are_refreshed_on_schedule(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, database_url: str, amqp_url: str
) -> None:
    contact = (await _people(conn, account_id))[0]
    await conn.execute(
        "INSERT INTO events (account_id, contact_id, type, occurred_at)"
        " VALUES ($1, $2, 'open', now() - interval '29 days 23 hours 59 minutes 58 seconds')",
        account_id,
        contact,
    )
    segment = await save_segment(conn, account_id, OPENED_LAST_30_DAYS, time_relative=True)
    settings = worker_settings(database_url, amqp_url, refresh_interval_s=1)
    async with running_worker(settings):
        await publish_segment(exchange, "segment.created", segment)
        row = await wait_status(conn, segment["id"], "DONE")
        assert row["total_count"] == 1
        # Two seconds later the open is older than 30 days: only a refresh can notice.

        async def drifted_out() -> bool:
            return (await segment_row(conn, segment["id"]))["total_count"] == 0

        await wait_for(drifted_out, timeout=30)
    assert (await segment_row(conn, segment["id"]))["status"] == "DONE"


async def test_exactly_one_scheduler_leads(
    pool: asyncpg.Pool, database_url: str, amqp_url: str
) -> None:
    settings = worker_settings(database_url, amqp_url)
    first, second = Scheduler(settings, pool), Scheduler(settings, pool)
    try:
        assert await first._lead() is True
        assert await second._lead() is False
        await first._resign()  # the leader dies: its session lock goes with it
        assert await second._lead() is True
    finally:
        await first._resign()
        await second._resign()


@pytest.fixture
async def private_database(database_url: str) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    """A database of this test alone. The stuck sweep requeues every account's long-PENDING
    segments, and other tests leave some (API tests run no worker): in the shared database it
    would fill the shared queue with their rebuilds, and later tests' builds would wait
    behind them."""
    async with worker_support.private_database(database_url, "segments_stuck") as private:
        yield private


async def test_a_segment_stuck_with_no_build_is_requeued_and_finishes(
    private_database: tuple[asyncpg.Connection, str], amqp_url: str
) -> None:
    conn, dsn = private_database
    account_id = await conn.fetchval("INSERT INTO accounts (name) VALUES ('stuck') RETURNING id")
    await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    # RUNNING long ago, its message gone (say, purged by an operator): nobody will build it.
    await conn.execute(
        "UPDATE segments SET status = 'RUNNING', build_started_at = now() - interval '1 hour'"
        " WHERE id = $1",
        segment["id"],
    )
    settings = worker_settings(dsn, amqp_url, stuck_after_s=1)
    async with running_worker(settings):
        row = await wait_status(conn, segment["id"], "DONE", timeout=60)
    assert row["total_count"] == 2


async def test_metrics_endpoint_exposes_the_documented_metrics(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, database_url: str, amqp_url: str
) -> None:
    await _people(conn, account_id)
    segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE)
    settings = worker_settings(database_url, amqp_url, worker_metrics_port=_free_port())
    async with running_worker(settings, metrics=True):
        await publish_segment(exchange, "segment.created", segment)
        await wait_status(conn, segment["id"], "DONE")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{settings.worker_metrics_port}/metrics")
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.text)}
    for expected in (
        "segments_build_duration_seconds",
        "segments_build_step_duration_seconds",
        "segments_build_start_delay_seconds",
        "segments_rebuild_checks",
        "segments_builds_in_progress",
        "segments_segments",
        "segments_incremental_batch_contacts",
        "segments_incremental_duration_seconds",
        "segments_change_lag_seconds",
        "segments_incremental_deferred_segments",
        "segments_member_statistics_analyses",
        "segments_pending_changes_oldest_age_seconds",
        "segments_messages",
    ):
        assert expected in names
    assert (
        'segments_build_duration_seconds_bucket{le="600.0",outcome="done",trigger="created"}'
        in response.text
    )
    # The finished build's two database steps were observed.
    steps = {
        sample.labels["step"]: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "segments_build_step_duration_seconds_count"
    }
    assert steps.get("query", 0) >= 1 and steps.get("write", 0) >= 1
    _promtool_check(response.text)


def _promtool_check(scrape: str) -> None:
    """`promtool check metrics` on a real scrape (required in CI, where promtool is installed)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("SEGMENTS_REQUIRE_PROMTOOL"):
            raise AssertionError("promtool is required (SEGMENTS_REQUIRE_PROMTOOL) but missing")
        pytest.skip("promtool not installed (CI installs it: apt-get install prometheus)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=scrape, text=True, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_calendar_segments_are_refreshed_after_each_local_midnight(
    pool: asyncpg.Pool, conn: asyncpg.Connection, account_id: uuid.UUID, database_url: str,
    amqp_url: str,
) -> None:  # fmt: skip
    """With an injected clock: a segment with calendar rules in Sydney is asked for a
    refresh once just after each Sydney midnight, not before it and not twice; one in UTC
    only after UTC midnight; a segment without calendar rules never by this path."""
    sydney_evening = datetime(2026, 6, 7, 23, 50, tzinfo=ZoneInfo("Australia/Sydney"))

    async def calendar_segment(zone: str, local_calendar: bool = True) -> uuid.UUID:
        segment = await save_segment(conn, account_id, SUBSCRIBED_IN_DE, time_relative=True)
        await conn.execute(
            """UPDATE segments SET status = 'DONE', timezone = $2, local_calendar = $3,
                   created_at = $4, build_started_at = $4, last_built_at = $4
               WHERE id = $1""",
            segment["id"], zone, local_calendar, sydney_evening,
        )  # fmt: skip
        return uuid.UUID(str(segment["id"]))

    sydney = await calendar_segment("Australia/Sydney")
    utc = await calendar_segment("UTC")
    rolling = await calendar_segment("Australia/Sydney", local_calendar=False)
    clock = [sydney_evening]
    scheduler = Scheduler(worker_settings(database_url, amqp_url), pool, clock=lambda: clock[0])

    async def refreshes_at(local: datetime) -> set[uuid.UUID]:
        clock[0] = local
        await scheduler.refresh_after_local_midnight()
        rows = await conn.fetch(
            """SELECT (body->>'segment_id')::uuid FROM outbox
               WHERE routing_key = 'segment.refresh' AND (body->>'segment_id')::uuid = ANY($1)""",
            [sydney, utc, rolling],
        )
        await conn.execute(
            "DELETE FROM outbox WHERE (body->>'segment_id')::uuid = ANY($1)", [sydney, utc, rolling]
        )
        return {r[0] for r in rows}

    syd = ZoneInfo("Australia/Sydney")
    assert await refreshes_at(datetime(2026, 6, 7, 23, 59, 59, tzinfo=syd)) == set()
    assert await refreshes_at(datetime(2026, 6, 8, 0, 0, 30, tzinfo=syd)) == {sydney}
    assert await refreshes_at(datetime(2026, 6, 8, 0, 0, 50, tzinfo=syd)) == set()
    # UTC midnight is 10:00 in Sydney.
    assert await refreshes_at(datetime(2026, 6, 8, 9, 59, tzinfo=syd)) == set()
    assert await refreshes_at(datetime(2026, 6, 8, 10, 0, 20, tzinfo=syd)) == {utc}
    assert await refreshes_at(datetime(2026, 6, 9, 0, 0, 10, tzinfo=syd)) == {sydney}
    # A build that started after midnight already saw the new day: no refresh is asked.
    await conn.execute(
        "UPDATE segments SET build_started_at = $2 WHERE id = $1",
        sydney,
        datetime(2026, 6, 10, 0, 0, 5, tzinfo=syd),
    )
    assert await refreshes_at(datetime(2026, 6, 10, 0, 0, 40, tzinfo=syd)) == {utc}
