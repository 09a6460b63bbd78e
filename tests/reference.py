"""A plain-Python evaluator of segment rules, written from the rule reference (docs/rules.md)
alone: the three dialects, the canonical tree with nested `any`/`all`/`not`, and conditions on
other segments' membership.

It reads the rules as raw JSON in any of the three dialects (not the product's parsed tree),
and the data as plain rows, and answers which contacts match. The property tests hold the SQL
compiler to it. It shares one helper with the product on purpose, parse_iso_datetime: the
ISO 8601 dialect is defined once and sql/002 mirrors it, which these tests also check.
Deliberately simple and slow: clarity over speed.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from worker.rules.values import parse_iso_datetime

TEXT_COLUMNS = (
    "email",
    "name",
    "first_name",
    "last_name",
    "company",
    "status",
    "country",
    "city",
    "language",
)
DATETIME_COLUMNS = ("created_at", "updated_at")
DERIVED_COUNTS = {"opens_count": "open", "clicks_count": "click"}
DERIVED_LATEST = {"last_open_at": "open", "last_click_at": "click"}


@dataclass
class Contact:
    id: UUID
    account_id: UUID
    email: str
    status: str
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    country: str | None = None
    city: str | None = None
    language: str | None = None
    tags: list[str | None] = field(default_factory=list)
    isp_id: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class Event:
    account_id: UUID
    contact_id: UUID
    type: str
    campaign_id: UUID | None
    occurred_at: datetime


@dataclass
class Member:
    list_id: UUID
    contact_id: UUID
    account_id: UUID


@dataclass
class Data:
    contacts: list[Contact]
    events: list[Event]
    members: list[Member]
    custom_fields: dict[str, str]  # key -> declared data_type, for the account evaluated


# -- reading a contact's values (null is None) ------------------------------------------------
def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    return Decimal(str(value))


def _boolean(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _datetime(value: Any) -> datetime | None:
    return parse_iso_datetime(value) if isinstance(value, str) else None


def _list(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    items = [e.lower() for e in value if isinstance(e, str)]
    return items or None


CUSTOM_READERS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "number": _number,
    "boolean": _boolean,
    "datetime": _datetime,
    "list": _list,
}


class Evaluator:
    def __init__(
        self,
        data: Data,
        account_id: UUID,
        now: datetime,
        segment_members: dict[UUID, set[UUID]] | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.data = data
        self.account_id = account_id
        self.now = now
        # Calendar periods and anniversaries are local to the segment's timezone.
        self.zone = ZoneInfo(timezone)
        self.today = now.astimezone(self.zone).date()
        # The membership of the segments that `segment` conditions name, evaluated before
        # (referenced segments first).
        self.segment_members = segment_members or {}

    # -- the segment --------------------------------------------------------------------------
    def members(self, dialect: str, rules: Any, list_ids: Iterable[UUID]) -> set[UUID]:
        tree = to_canonical_tree(dialect, rules)
        universe = set(list_ids)
        out = set()
        for contact in self.data.contacts:
            if contact.account_id != self.account_id:
                continue
            if universe and not (self.lists_of(contact) & universe):
                continue
            if self.node(tree, contact):
                out.add(contact.id)
        return out

    def node(self, n: dict[str, Any], contact: Contact) -> bool:
        """A node of the tree: `any` (at least one child), `all` (every child), `not` (the
        child does not match), or a condition."""
        if "any" in n:
            return any(self.node(child, contact) for child in n["any"])
        if "all" in n:
            return all(self.node(child, contact) for child in n["all"])
        if "not" in n:
            return not self.node(n["not"], contact)
        return self.condition(n, contact)

    def lists_of(self, contact: Contact) -> set[UUID]:
        return {
            m.list_id
            for m in self.data.members
            if m.contact_id == contact.id and m.account_id == self.account_id
        }

    def events_of(self, contact: Contact, event_type: str) -> list[Event]:
        return [
            e
            for e in self.data.events
            if e.contact_id == contact.id
            and e.account_id == self.account_id
            and e.type == event_type
        ]

    def condition(self, c: dict[str, Any], contact: Contact) -> bool:
        kind = c["kind"]
        if kind == "field":
            return self.field_condition(c, contact)
        if kind in ("activity", "deliverability"):
            return self.activity(c, contact)
        if kind == "membership":
            listed = bool(self.lists_of(contact) & {UUID(x) for x in c["list_ids"]})
            return listed if c["operator"] == "in" else not listed
        if kind == "isp":
            inside = contact.isp_id is not None and contact.isp_id in c["values"]
            return inside if c["operator"] == "in" else not inside
        if kind == "segment":
            named = [self.segment_members[UUID(str(x))] for x in c["segment_ids"]]
            inside = any(contact.id in members for members in named)
            return inside if c["operator"] == "in" else not inside
        raise AssertionError(kind)

    # -- events -------------------------------------------------------------------------------
    def activity(self, c: dict[str, Any], contact: Contact) -> bool:
        n, value = self.activity_count(c, contact), c.get("value")
        return {
            "ever": lambda: n >= 1,
            "never": lambda: n == 0,
            "count_gte": lambda: n >= value,
            "count_lte": lambda: n <= value,
            "count_eq": lambda: n == value,
        }[c["operator"]]()

    def activity_count(self, c: dict[str, Any], contact: Contact) -> int:
        """The contact's events an activity or deliverability condition counts."""
        events = self.events_of(contact, c["metric"])
        window = c.get("days_window")
        if window and window["mode"] == "calendar":
            events = [e for e in events if self.in_period(self.local_date(e.occurred_at), window)]
        elif window:
            cutoff = self.now - timedelta(days=window["days"])
            if window["mode"] == "last":
                events = [e for e in events if e.occurred_at >= cutoff]
            else:
                events = [e for e in events if e.occurred_at < cutoff]
        include = {UUID(x) for x in c.get("include_campaign_ids") or ()}
        exclude = {UUID(x) for x in c.get("exclude_campaign_ids") or ()}
        if include:
            events = [e for e in events if e.campaign_id in include]
        if exclude:
            events = [e for e in events if e.campaign_id is None or e.campaign_id not in exclude]
        return len(events)

    # -- fields -------------------------------------------------------------------------------
    def field_type_and_value(self, name: str, contact: Contact) -> tuple[str, Any]:
        if name in TEXT_COLUMNS:
            return "text", _text(getattr(contact, name))
        if name == "tags":
            items = [t.lower() for t in contact.tags if t is not None]
            return "list", items or None
        if name in DATETIME_COLUMNS:
            return "datetime", getattr(contact, name)
        if name in DERIVED_COUNTS:
            return "number", Decimal(len(self.events_of(contact, DERIVED_COUNTS[name])))
        if name in DERIVED_LATEST:
            times = [e.occurred_at for e in self.events_of(contact, DERIVED_LATEST[name])]
            return "datetime", max(times) if times else None
        data_type = self.data.custom_fields[name]
        return data_type, CUSTOM_READERS[data_type](contact.attributes.get(name))

    def field_condition(self, c: dict[str, Any], contact: Contact) -> bool:
        data_type, x = self.field_type_and_value(c["field"], contact)
        op, v = c["operator"], c.get("value")
        if op in ("in_calendar", "anniversary_within_days"):
            day = self.calendar_date(c["field"], x, contact)
            if day is None:
                return False
            if op == "in_calendar":
                return self.in_period(day, v)
            return self.anniversary_within(day, v)
        if op == "is_null":
            return x is None
        if op == "is_not_null":
            return x is not None
        if data_type == "text":
            return _text_op(op, x, v)
        if data_type == "list":
            return _list_op(op, x, v)
        if data_type == "number":
            return _number_op(op, x, v)
        if data_type == "boolean":
            return x is not None and x == v if op == "equals" else x is None or x != v
        return self.datetime_op(op, x, v)

    def datetime_op(self, op: str, x: datetime | None, v: Any) -> bool:
        if x is None:
            return False
        if op == "within_days":
            return self.now - timedelta(days=v) <= x <= self.now
        bound = parse_iso_datetime(v)
        assert bound is not None
        return _ordered(op, x, bound)

    # -- the local calendar (docs/rules.md, timezones) ------------------------------------------
    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def calendar_date(self, name: str, x: datetime | None, contact: Contact) -> date | None:
        """The local day a datetime value is on: a custom value stored as a bare date is
        that day whatever the timezone; an instant is read in the timezone."""
        if x is None:
            return None
        raw = contact.attributes.get(name) if name in self.data.custom_fields else None
        if name not in DATETIME_COLUMNS and isinstance(raw, str) and _BARE_DATE.fullmatch(raw):
            return date.fromisoformat(raw)
        return self.local_date(x)

    def in_period(self, day: date, period: dict[str, Any]) -> bool:
        """`day` is in the period `offset` periods from today's, counted in whole periods."""
        unit, offset, today = period["unit"], period["offset"], self.today
        if unit == "day":
            return (day - today).days == offset
        if unit == "week":
            monday = day - timedelta(days=day.weekday())
            this_monday = today - timedelta(days=today.weekday())
            return (monday - this_monday).days == 7 * offset
        if unit == "month":
            return (day.year * 12 + day.month) - (today.year * 12 + today.month) == offset
        return day.year - today.year == offset

    def anniversary_within(self, day: date, n: int) -> bool:
        for k in range(n + 1):
            d = self.today + timedelta(days=k)
            if (day.month, day.day) == (d.month, d.day):
                return True
            leap_day = (day.month, day.day) == (2, 29)
            if leap_day and (d.month, d.day) == (2, 28) and not calendar.isleap(d.year):
                return True
        return False


_BARE_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _ordered(op: str, x: Any, v: Any) -> bool:
    return {"gt": x > v, "gte": x >= v, "lt": x < v, "lte": x <= v}[op]


def _text_op(op: str, x: str | None, v: Any) -> bool:
    lx = x.lower() if x is not None else None
    if op == "in":
        return lx is not None and lx in {s.lower() for s in v}
    if op == "not_in":
        return lx is None or lx not in {s.lower() for s in v}
    lv = v.lower()
    positive = {
        "equals": lambda: lx == lv,
        "contains": lambda: lv in lx,
        "starts_with": lambda: lx.startswith(lv),
    }
    negative = {"not_equals": lambda: lx != lv, "not_contains": lambda: lv not in lx}
    if op in positive:
        return lx is not None and positive[op]()
    return lx is None or negative[op]()


def _list_op(op: str, x: list[str] | None, v: list[str]) -> bool:
    wanted = {s.lower() for s in v}
    have = set(x or ())
    if op == "has_any":
        return bool(have & wanted)
    if op == "has_all":
        return x is not None and wanted <= have
    return not have & wanted  # has_none


def _number_op(op: str, x: Decimal | None, v: Any) -> bool:
    if op == "in":
        return x is not None and x in {Decimal(str(n)) for n in v}
    if op == "not_in":
        return x is None or x not in {Decimal(str(n)) for n in v}
    if op == "not_equals":
        return x is None or x != Decimal(str(v))
    if x is None:
        return False
    if op == "equals":
        return x == Decimal(str(v))
    return _ordered(op, x, Decimal(str(v)))


# -- the dialects (docs/rules.md, The three dialects) -----------------------------------------
_V1 = {
    "eq": "equals",
    "neq": "not_equals",
    "gt": "gt",
    "gte": "gte",
    "lt": "lt",
    "lte": "lte",
    "contains": "contains",
    "within_days": "within_days",
    "exists": "is_not_null",
    "not_exists": "is_null",
}
_SIMPLE = {
    "equals": "equals",
    "not_equals": "not_equals",
    "contains": "contains",
    "not_contains": "not_contains",
    "starts_with": "starts_with",
    "before": "lt",
    "after": "gt",
}


def to_canonical_tree(dialect: str, rules: Any) -> dict[str, Any]:
    """The rules as one tree node: v2 rules are one already; v1 `all` is an `all` of its
    filters and `any` an `any`; simple rules are an `all`."""
    if dialect == "v2":
        return dict(rules)
    if dialect == "v1":
        conditions = [
            {
                "kind": "field",
                "field": f["field"],
                "operator": _V1[f["operator"]],
                "value": f.get("value"),
            }
            for f in rules["filters"]
        ]
        return {rules["matchType"]: conditions}
    return {
        "all": [
            {
                "kind": "field",
                "field": r["field"],
                "operator": _SIMPLE[r["operator"]],
                "value": r.get("value"),
            }
            for r in rules
        ]
    }
