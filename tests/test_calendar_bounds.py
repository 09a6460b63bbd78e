"""The bounds of local calendar periods and the anniversary days (worker.compiler.calendar),
worked by hand for the cases docs/rules.md, timezones names."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from worker.compiler.calendar import anniversary_days, period_bounds
from worker.compiler.query import SegmentQuery
from worker.rules.tree import CalendarPeriod, RuleTree


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


def test_this_week_on_a_sunday_evening_in_sydney() -> None:
    # Sunday 7 June 2026, 21:00 in Sydney (AEST, +10) is Sunday 11:00 UTC. "This week" is
    # Monday 1 June 00:00 .. Monday 8 June 00:00 Sydney time, not the UTC week.
    now = local("Australia/Sydney", 2026, 6, 7, 21, 0).astimezone(UTC)
    bounds = period_bounds(CalendarPeriod("week", 0), now.astimezone(ZoneInfo("Australia/Sydney")))
    assert (bounds.first_day, bounds.end_day) == (date(2026, 6, 1), date(2026, 6, 8))
    assert bounds.start == datetime(2026, 5, 31, 14, 0, tzinfo=UTC)
    assert bounds.end == datetime(2026, 6, 7, 14, 0, tzinfo=UTC)
    # In UTC the same instant is still Sunday: its week is 1 .. 8 June UTC.
    utc = period_bounds(CalendarPeriod("week", 0), now)
    assert utc.start == datetime(2026, 6, 1, tzinfo=UTC)


def test_a_23_hour_day_in_amsterdam() -> None:
    # Clocks go forward on Sunday 29 March 2026 at 02:00 (CET +1 -> CEST +2).
    now = local("Europe/Amsterdam", 2026, 3, 29, 12, 0)
    bounds = period_bounds(CalendarPeriod("day", 0), now)
    assert bounds.start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert bounds.end == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    assert bounds.end - bounds.start == (datetime(1, 1, 1, 23) - datetime(1, 1, 1))


def test_a_25_hour_day_in_new_york() -> None:
    # Clocks go back on Sunday 1 November 2026 at 02:00 (EDT -4 -> EST -5).
    now = local("America/New_York", 2026, 11, 1, 8, 0)
    bounds = period_bounds(CalendarPeriod("day", 0), now)
    assert bounds.start == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
    assert bounds.end == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


def test_previous_month_and_year_across_a_year_end() -> None:
    now = local("Asia/Kathmandu", 2027, 1, 1, 0, 10)  # ten minutes into 2027, +05:45
    month = period_bounds(CalendarPeriod("month", -1), now)
    assert (month.first_day, month.end_day) == (date(2026, 12, 1), date(2027, 1, 1))
    assert month.end == datetime(2026, 12, 31, 18, 15, tzinfo=UTC)
    year = period_bounds(CalendarPeriod("year", -1), now)
    assert (year.first_day, year.end_day) == (date(2026, 1, 1), date(2027, 1, 1))
    ten_years_of_months = period_bounds(CalendarPeriod("month", -120), now)
    assert ten_years_of_months.first_day == date(2017, 1, 1)


def test_a_day_apia_skipped_has_no_instants() -> None:
    # Samoa skipped Friday 30 December 2011: Thursday 29th ended at the start of Saturday 31st.
    now = local("Pacific/Apia", 2011, 12, 31, 9, 0)
    yesterday = period_bounds(CalendarPeriod("day", -1), now)
    assert yesterday.first_day == date(2011, 12, 30)
    assert yesterday.start == yesterday.end


def test_periods_before_year_one_are_empty() -> None:
    bounds = period_bounds(CalendarPeriod("year", -3650), local("UTC", 2026, 5, 1))
    assert bounds.start == bounds.end


def test_anniversary_days_count_29_february_as_28th_in_other_years() -> None:
    now = local("UTC", 2027, 2, 27, 10, 0)
    assert anniversary_days(now, 0) == ["02-27"]
    assert anniversary_days(now, 2) == ["02-27", "02-28", "02-29", "03-01"]
    leap = local("UTC", 2028, 2, 27, 10, 0)
    assert anniversary_days(leap, 1) == ["02-27", "02-28"]
    assert len(anniversary_days(leap, 366)) == 366  # every day of the year, 29 Feb once


def test_anniversary_days_are_local() -> None:
    # 23:30 UTC on 9 May is already 10 May in Kathmandu.
    now = datetime(2026, 5, 9, 23, 30, tzinfo=UTC)
    assert anniversary_days(now.astimezone(ZoneInfo("Asia/Kathmandu")), 0) == ["05-10"]
    assert anniversary_days(now, 0) == ["05-09"]


def test_the_query_reads_local_dates_in_the_segments_timezone() -> None:
    now = datetime(2026, 6, 7, 11, 0, tzinfo=UTC)
    query = SegmentQuery(ACCOUNT, RuleTree(()), (), now, "Australia/Sydney")
    assert query.local_now.date() == date(2026, 6, 7)
    assert query.local_now == now


ACCOUNT = __import__("uuid").UUID("00000000-0000-4000-8000-00000000000a")


def test_periods_compile_to_bound_instants_without_per_row_timezone_arithmetic() -> None:
    from worker.compiler import compile_member_ids
    from worker.rules import FieldRegistry, parse_v2_rules

    registry = FieldRegistry.from_declarations({"birthday": "datetime"})

    def sql(condition: dict[str, object]) -> tuple[str, tuple[object, ...]]:
        tree = parse_v2_rules({"any": [{"all": [condition]}]}, registry)
        now = datetime(2026, 6, 7, 11, 0, tzinfo=UTC)
        compiled = compile_member_ids(SegmentQuery(ACCOUNT, tree, (), now, "Australia/Sydney"))
        return compiled.sql, compiled.params

    week = {"unit": "week", "offset": 0}
    text, params = sql(
        {"kind": "field", "field": "created_at", "operator": "in_calendar", "value": week}
    )
    assert "c.created_at >= $2::timestamptz AND c.created_at < $3::timestamptz" in text
    assert "AT TIME ZONE" not in text
    assert params[1:] == (
        datetime(2026, 5, 31, 14, 0, tzinfo=UTC),
        datetime(2026, 6, 7, 14, 0, tzinfo=UTC),
    )
    window = {"mode": "calendar", **week}
    text, _ = sql({"kind": "activity", "metric": "open", "operator": "ever", "days_window": window})
    assert "e.occurred_at >= $2::timestamptz AND e.occurred_at < $3::timestamptz" in text
    text, params = sql(
        {"kind": "field", "field": "birthday", "operator": "anniversary_within_days", "value": 1}
    )
    assert ["06-07", "06-08"] in params  # the local days, computed in Python
    assert "Australia/Sydney" in params
