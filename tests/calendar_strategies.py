"""Hypothesis strategies for time in a segment's timezone (docs/rules.md, timezones): a timezone, a
`now` near the instants where calendars are hard (DST changes, local midnights at period
ends, year ends, 29 February), and data and rules around that now.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from tests.reference import Contact, Data, Event
from tests.strategies import ACCOUNT, CUSTOM_FIELDS, OTHER_ACCOUNT

TIMEZONES = [
    "Europe/Amsterdam",
    "America/New_York",
    "Australia/Lord_Howe",  # DST moves the clock by 30 minutes
    "Asia/Kathmandu",  # +05:45
    "Pacific/Apia",  # skipped 30 December 2011; +13/+14
    "Australia/Sydney",
    "UTC",
]
YEARS = (2024, 2025, 2026, 2027, 2028)


def dst_changes(zone: str) -> list[datetime]:
    """The instants the zone's UTC offset changes in YEARS (found hour by hour, then to the
    minute)."""
    tz = ZoneInfo(zone)
    out = []
    at = datetime(YEARS[0], 1, 1, tzinfo=UTC)
    end = datetime(YEARS[-1] + 1, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    while at < end:
        if at.astimezone(tz).utcoffset() != (at + step).astimezone(tz).utcoffset():
            minute = at
            while minute.astimezone(tz).utcoffset() == at.astimezone(tz).utcoffset():
                minute += timedelta(minutes=15)
            out.append(minute)
        at += step
    return out


def _local_midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def hard_instants(zone: str) -> list[datetime]:
    """DST changes, and local midnights that end a week, a month or a year, and those around
    29 February."""
    days = [date(y, m, 1) for y in YEARS for m in (1, 3, 4, 7, 10, 11, 12)]
    days += [date(2028, 2, 29), date(2028, 3, 1), date(2027, 2, 28), date(2027, 3, 1)]
    days += [date(2026, 12, 28), date(2027, 1, 4)]  # Mondays: week ends at year ends
    days += [date(2026, 3, 9), date(2026, 10, 26), date(2026, 4, 6)]  # Mondays near DST
    return [*dst_changes(zone), *(_local_midnight(d, zone) for d in days)]


@st.composite
def zones_and_nows(draw: st.DrawFn) -> tuple[str, datetime]:
    zone = draw(st.sampled_from(TIMEZONES))
    anchor = draw(st.sampled_from(hard_instants(zone)))
    # Within a day of the hard instant, often within seconds of it.
    shift = draw(
        st.one_of(
            st.integers(-120, 120),
            st.integers(-26 * 3600, 26 * 3600),
        )
    )
    return zone, anchor + timedelta(seconds=shift)


def _moments(now: datetime) -> st.SearchStrategy[datetime]:
    """Instants near now (seconds, hours, days) and up to a few years back: periods from a
    day to a year, and anniversaries."""
    return st.one_of(
        st.integers(-3 * 86400, 3 * 86400).map(lambda s: now + timedelta(seconds=s)),
        st.integers(-800, 30).map(lambda d: now + timedelta(days=d)),
        st.tuples(st.integers(-12, 0), st.integers(-2, 2)).map(
            lambda yd: now + timedelta(days=365 * yd[0] + yd[1], hours=-12)
        ),
    )


def _stored(moment: datetime, style: int, zone: str) -> str:
    """A stored custom datetime: a bare date (a calendar date), or an instant written in UTC
    or with the local offset."""
    local = moment.astimezone(ZoneInfo(zone))
    if style == 0:
        return local.date().isoformat()
    if style == 1:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return local.isoformat(timespec="seconds")


LEAP_DAYS = st.sampled_from(
    ["2000-02-29", "1996-02-29", "2024-02-29T12:00:00Z", "1990-02-28", "1990-03-01", "2028-02-29"]
)


@st.composite
def calendar_data(draw: st.DrawFn, zone: str, now: datetime) -> Data:
    contacts = []
    events = []
    for index in range(draw(st.integers(1, 8))):
        account = ACCOUNT if index < 6 else OTHER_ACCOUNT
        attributes: dict[str, Any] = {}
        if draw(st.booleans()):
            stored = st.builds(lambda m, s: _stored(m, s, zone), _moments(now), st.integers(0, 2))
            attributes["c_date"] = draw(st.one_of(stored, LEAP_DAYS, st.just("2026-02-30")))
        moment = st.one_of(st.none(), _moments(now))
        contact = Contact(
            id=draw(st.uuids(version=4)),
            account_id=account,
            email=f"c{index}@example.com",
            status="subscribed",
            attributes=attributes,
            created_at=draw(moment),
            updated_at=draw(moment),
        )
        contacts.append(contact)
        for _ in range(draw(st.integers(0, 4))):
            events.append(
                Event(
                    account_id=account,
                    contact_id=contact.id,
                    type=draw(st.sampled_from(["open", "click", "bounce"])),
                    campaign_id=None,
                    occurred_at=draw(_moments(now)),
                )
            )
    return Data(contacts, events, [], CUSTOM_FIELDS)


periods = st.builds(
    lambda unit, offset: {"unit": unit, "offset": offset},
    st.sampled_from(["day", "week", "month", "year"]),
    st.one_of(st.integers(-2, 0), st.integers(-1, 0), st.just(-3650), st.integers(-13, -3)),
)


@st.composite
def calendar_conditions(draw: st.DrawFn) -> dict[str, Any]:
    which = draw(st.integers(0, 3))
    if which == 0:
        return {
            "kind": "field",
            "field": draw(st.sampled_from(["created_at", "updated_at", "c_date", "last_open_at"])),
            "operator": "in_calendar",
            "value": draw(periods),
        }
    if which == 1:
        return {
            "kind": "field",
            "field": draw(st.sampled_from(["created_at", "c_date"])),
            "operator": "anniversary_within_days",
            "value": draw(st.one_of(st.sampled_from([0, 1, 6, 30, 365, 366]), st.integers(0, 366))),
        }
    if which == 2:
        operator = draw(st.sampled_from(["ever", "never", "count_gte", "count_lte"]))
        condition: dict[str, Any] = {
            "kind": "activity",
            "metric": draw(st.sampled_from(["open", "click"])),
            "operator": operator,
            "days_window": {"mode": "calendar", **draw(periods)},
        }
        if operator.startswith("count_"):
            condition["value"] = draw(st.integers(0, 2))
        return condition
    # Rolling windows keep their meaning whatever the timezone.
    return {
        "kind": "field",
        "field": draw(st.sampled_from(["created_at", "c_date", "last_click_at"])),
        "operator": "within_days",
        "value": draw(st.integers(1, 40)),
    }


def calendar_rules() -> st.SearchStrategy[dict[str, Any]]:
    groups = st.lists(calendar_conditions(), min_size=1, max_size=2).map(lambda cs: {"all": cs})
    return st.lists(groups, min_size=1, max_size=2).map(lambda gs: {"any": gs})
