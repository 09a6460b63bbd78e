"""The worked examples of docs/rules.md, timezones, run on PostgreSQL
through the three compiled forms."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from tests.test_compiler_operators import Dataset, field
from worker.compiler import SegmentQuery
from worker.rules import parse_v2_rules


class LocalDataset(Dataset):
    """A Dataset whose queries run at `now` in `timezone`."""

    def __init__(self, conn: asyncpg.Connection, account_id: UUID) -> None:
        super().__init__(conn, account_id)
        self.now = datetime(2026, 6, 7, 11, 0, tzinfo=UTC)
        self.timezone = "UTC"

    async def query(self, rules: Mapping[str, Any], lists: Iterable[UUID] = ()) -> SegmentQuery:
        tree = parse_v2_rules(rules, await self.registry())
        return SegmentQuery(self.account_id, tree, tuple(lists), self.now, self.timezone)

    async def at(self, now: str, timezone: str) -> None:
        self.now = datetime.fromisoformat(now)
        self.timezone = timezone


@pytest.fixture
async def data(conn: asyncpg.Connection, account_id: UUID) -> LocalDataset:
    return LocalDataset(conn, account_id)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_this_week_on_a_sunday_evening_in_sydney(data: LocalDataset) -> None:
    await data.contact("monday_morning_sydney", created_at=at("2026-05-31T20:00:00Z"))
    await data.contact("sunday_before", created_at=at("2026-05-31T13:59:59Z"))
    await data.contact("sunday_late_sydney", created_at=at("2026-06-07T13:59:59Z"))
    await data.contact("next_monday_sydney", created_at=at("2026-06-07T14:00:00Z"))
    await data.contact("monday_utc", created_at=at("2026-06-01T00:00:00Z"))
    this_week = field("created_at", "in_calendar", {"unit": "week", "offset": 0})
    last_week = field("created_at", "in_calendar", {"unit": "week", "offset": -1})
    # Sunday 7 June 2026, 21:00 in Sydney = 11:00 UTC.
    await data.at("2026-06-07T11:00:00+00:00", "Australia/Sydney")
    assert await data.where(this_week) == {
        "monday_morning_sydney",
        "sunday_late_sydney",  # later today: offset 0 is the whole week
        "monday_utc",
    }
    assert await data.where(last_week) == {"sunday_before"}
    await data.at("2026-06-07T11:00:00+00:00", "UTC")
    assert await data.where(this_week) == {
        "sunday_late_sydney",
        "next_monday_sydney",
        "monday_utc",
    }
    assert await data.where(last_week) == {"monday_morning_sydney", "sunday_before"}


async def test_a_23_hour_day_in_amsterdam(data: LocalDataset) -> None:
    await data.contact("first_instant", created_at=at("2026-03-28T23:00:00Z"))
    await data.contact("before", created_at=at("2026-03-28T22:59:59Z"))
    await data.contact("last_instant", created_at=at("2026-03-29T21:59:59Z"))
    await data.contact("next_day", created_at=at("2026-03-29T22:00:00Z"))
    await data.at("2026-03-29T12:00:00+00:00", "Europe/Amsterdam")
    today = field("created_at", "in_calendar", {"unit": "day", "offset": 0})
    assert await data.where(today) == {"first_instant", "last_instant"}


async def test_birthdays_in_new_york(data: LocalDataset) -> None:
    await data.declare("birthday", "datetime")
    for label, stored in (
        ("march_first", "1990-03-01"),
        ("leap_day", "2000-02-29"),
        ("march_second", "1990-03-02"),
        ("instant_read_in_new_york", "1990-03-01T02:00:00Z"),  # 28 February, 21:00 there
        ("instant_on_march_second", "1990-03-02T12:00:00Z"),
        ("not_a_date", "2023-02-29"),
        ("new_years_eve", "1990-12-31"),
        ("new_year_instant", "1991-01-01T05:00:00Z"),  # 31 December 1990, 21:00 in LA
        ("new_year_bare", "1991-01-01"),
    ):
        await data.contact(label, attributes={"birthday": stored})
    await data.contact("no_birthday")
    # Sunday 28 February 2027, 09:00 in New York.
    await data.at("2027-02-28T14:00:00+00:00", "America/New_York")
    soon = field("birthday", "anniversary_within_days", 1)
    assert await data.where(soon) == {"march_first", "leap_day", "instant_read_in_new_york"}
    today = field("birthday", "anniversary_within_days", 0)
    assert await data.where(today) == {"leap_day", "instant_read_in_new_york"}
    # A bare date is that day whatever the timezone: in Kathmandu too, where it is already
    # 1 March; the instant is 1 March 07:45 there.
    await data.at("2027-02-28T20:00:00+00:00", "Asia/Kathmandu")
    assert await data.where(today) == {"march_first", "instant_read_in_new_york"}
    # The period of a bare date is its own day too; instants are read in the timezone.
    await data.at("2027-03-01T03:00:00+00:00", "America/Los_Angeles")  # 28 Feb there
    year_1990 = field("birthday", "in_calendar", {"unit": "year", "offset": -37})
    assert await data.where(year_1990) == {
        "march_first",
        "march_second",
        "instant_read_in_new_york",
        "instant_on_march_second",
        "new_years_eve",
        "new_year_instant",
    }


async def test_opened_this_week_counts_local_calendar_events(data: LocalDataset) -> None:
    await data.contacts("this_week", "last_sunday_night", "none")
    await data.event("this_week", "open", at("2026-06-01T08:00:00+10:00"))
    await data.event("last_sunday_night", "open", at("2026-05-31T23:30:00+10:00"))
    await data.at("2026-06-07T11:00:00+00:00", "Australia/Sydney")
    window = {"mode": "calendar", "unit": "week", "offset": 0}
    opened = {"kind": "activity", "metric": "open", "operator": "ever", "days_window": window}
    assert await data.where(opened) == {"this_week"}
    never = {**opened, "operator": "never"}
    assert await data.where(never) == {"last_sunday_night", "none"}
    last_open = field("last_open_at", "in_calendar", {"unit": "week", "offset": -1})
    assert await data.where(last_open) == {"last_sunday_night"}
