"""Local calendar periods and anniversaries (docs/rules.md, timezones), computed in Python for the
query's `now` and timezone, so the SQL compares with bound values and does no timezone
arithmetic per row where bounds suffice.

A local period is a run of whole local days: from the first instant of its first local day
up to (not including) the first instant of the next period's. Days are 23 or 25 hours long
across DST changes because they are local midnights, not 24-hour steps.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from worker.rules.tree import CalendarPeriod


@dataclass(frozen=True)
class PeriodBounds:
    """One local period: `first_day` .. `end_day` (exclusive) as local dates, and the same as
    instants (`start` .. `end`, exclusive)."""

    first_day: date
    end_day: date
    start: datetime
    end: datetime


# Every function takes `local_now`: the query's now in the segment's timezone
# (SegmentQuery.local_now), whose tzinfo is that timezone.


def day_start(day: date, tz: tzinfo | None) -> datetime:
    """The first instant of a local day, in UTC (so that differences of bounds are real
    durations: Python subtracts datetimes of one tzinfo by their wall clocks). Where midnight
    is skipped by a DST change, the first instant is the change itself: zoneinfo reads the
    skipped 00:00 with the offset in force before it, which is that instant."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def period_bounds(period: CalendarPeriod, local_now: datetime) -> PeriodBounds:
    first, end = period_days(period, local_now.date())
    tz = local_now.tzinfo
    return PeriodBounds(first, end, day_start(first, tz), day_start(end, tz))


def period_days(period: CalendarPeriod, today: date) -> tuple[date, date]:
    """The local dates [first, end) of the period `period.offset` periods from today's."""
    n = period.offset
    if period.unit == "day":
        first = today + timedelta(days=n)
        return first, first + timedelta(days=1)
    if period.unit == "week":  # weeks start on Monday
        first = today - timedelta(days=today.weekday()) + timedelta(weeks=n)
        return first, first + timedelta(weeks=1)
    if period.unit == "month":
        months = today.year * 12 + today.month - 1 + n
        first = date(months // 12, months % 12 + 1, 1)
        return first, _next_month(first)
    if today.year + n < 1:  # before year 1, where no stored value can be: an empty period
        return _NO_DAY, _NO_DAY
    first = date(today.year + n, 1, 1)
    return first, date(first.year + 1, 1, 1)


# The empty period's bounds: a day whose first instant is representable in every timezone.
_NO_DAY = date(1, 1, 2)


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def anniversary_days(local_now: datetime, days: int) -> list[str]:
    """The 'MM-DD' of the local days today .. today + days, and '02-29' where 28 February of
    a year without a 29th is among them (a 29 February counts as the 28th then)."""
    today = local_now.date()
    out: dict[str, None] = {}
    for k in range(days + 1):
        day = today + timedelta(days=k)
        out[day.strftime("%m-%d")] = None
        if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
            out["02-29"] = None
    return list(out)
