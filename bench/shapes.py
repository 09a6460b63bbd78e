"""The benchmarked segment shapes: v2 rules_json and hand-written SQL of the same meaning.

Every hand-written query is a SELECT of contact ids (its count form wraps it in count(*)),
honours docs/rules.md exactly (case-insensitive text, '' and empty lists as null, universe =
members of the segment's lists) and is scoped to the account on every table, as the compiler's
SQL is. Variants marked `exact=False` rely on an extra invariant of the data; they are shown
for information and never used as the reference of a ratio.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from bench.common import ACCOUNT_BIG, CAMPAIGNS, LISTS, campaign_id, list_id, stable_uuid


@dataclass(frozen=True)
class Context:
    account_id: UUID
    now: datetime
    lists: dict[str, UUID] = field(default_factory=dict)
    # The segments that segment conditions reference (REFERENCED: their rules).
    segments: dict[str, UUID] = field(default_factory=dict)

    @property
    def universe(self) -> UUID:
        return self.lists["all"]

    def days_ago(self, days: int) -> datetime:
        return self.now - timedelta(days=days)


def bench_context(now: datetime) -> Context:
    return Context(
        ACCOUNT_BIG,
        now,
        {spec.key: list_id(ACCOUNT_BIG, spec.key) for spec in LISTS},
        {key: stable_uuid(ACCOUNT_BIG, "segment", key) for key in REFERENCED},
    )


@dataclass(frozen=True)
class HandQuery:
    label: str
    ids_sql: str  # $1 is always the account, $2 the universe list (of one-list universes)
    params: tuple[Any, ...]
    exact: bool = True
    note: str = ""

    @property
    def count_sql(self) -> str:
        return f"SELECT count(*) FROM (\n{self.ids_sql}\n) s"


@dataclass(frozen=True)
class Shape:
    key: str
    title: str
    rules: dict[str, Any]
    hand: tuple[HandQuery, ...]
    timezone: str = "UTC"  # the segment's, for calendar periods and anniversaries
    lists: tuple[str, ...] = ("all",)  # the segment's lists (Context.lists keys): its universe

    def list_ids(self, ctx: Context) -> tuple[UUID, ...]:
        return tuple(ctx.lists[key] for key in self.lists)


# The universe: the contact is on the segment's (big) list.
UNIVERSE = (
    "EXISTS (SELECT 1 FROM contact_list_members u\n"
    "               WHERE u.account_id = $1 AND u.list_id = $2 AND u.contact_id = c.id)"
)
# The same universe as the driving table: (list_id, contact_id) is the primary key, so a plain
# join yields each contact once.
UNIVERSE_JOIN = (
    "FROM contact_list_members u\n"
    "JOIN contacts c ON c.id = u.contact_id AND c.account_id = $1\n"
    "WHERE u.account_id = $1 AND u.list_id = $2"
)


def _field(name: str, operator: str, value: Any = None) -> dict[str, Any]:
    condition = {"kind": "field", "field": name, "operator": operator}
    return condition if value is None else {**condition, "value": value}


def _window(days: int) -> dict[str, Any]:
    return {"mode": "last", "days": days}


def _one_group(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"any": [{"all": list(conditions)}]}


def status_country(ctx: Context) -> Shape:
    params = (ctx.account_id, ctx.universe, "subscribed", "us")
    predicate = "lower(c.status) = $3 AND lower(c.country) = $4"
    return Shape(
        "a",
        "status = subscribed AND country = us",
        _one_group(_field("status", "equals", "subscribed"), _field("country", "equals", "us")),
        _on_the_row(predicate, params),
    )


def opened_recently(ctx: Context) -> Shape:
    params = (ctx.account_id, ctx.universe, "open", ctx.days_ago(30))
    return Shape(
        "b",
        "opened in the last 30 days",
        _one_group(
            {"kind": "activity", "metric": "open", "operator": "ever", "days_window": _window(30)}
        ),
        (
            HandQuery(
                "exists",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                "  AND EXISTS (SELECT 1 FROM events e WHERE e.account_id = $1\n"
                "              AND e.contact_id = c.id AND e.type = $3 AND e.occurred_at >= $4)",
                params,
            ),
            HandQuery(
                "events-first",
                "SELECT c.id\nFROM (SELECT DISTINCT e.contact_id FROM events e\n"
                "      WHERE e.account_id = $1 AND e.type = $3 AND e.occurred_at >= $4) o\n"
                "JOIN contacts c ON c.id = o.contact_id\n"
                f"WHERE c.account_id = $1 AND {UNIVERSE}",
                params,
            ),
        ),
    )


def clicked_campaigns(ctx: Context) -> Shape:
    campaigns = [campaign_id(ctx.account_id, n) for n in range(1, 7)]
    params = (ctx.account_id, ctx.universe, "click", ctx.days_ago(90), campaigns, 3)
    clickers = (
        "SELECT e.contact_id FROM events e\n"
        "      WHERE e.account_id = $1 AND e.type = $3 AND e.occurred_at >= $4\n"
        "        AND e.campaign_id = ANY($5)\n"
        "      GROUP BY e.contact_id HAVING count(*) >= $6"
    )
    return Shape(
        "c",
        "clicked >= 3 times in 90 days, 6 chosen campaigns",
        _one_group(
            {
                "kind": "activity",
                "metric": "click",
                "operator": "count_gte",
                "value": 3,
                "days_window": _window(90),
                "include_campaign_ids": [str(c) for c in campaigns],
            }
        ),
        (
            HandQuery(
                "in-grouped",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                f"  AND c.id IN ({clickers})",
                params,
            ),
            HandQuery(
                "join-grouped",
                f"SELECT c.id\nFROM ({clickers}) x\nJOIN contacts c ON c.id = x.contact_id\n"
                f"WHERE c.account_id = $1 AND {UNIVERSE}",
                params,
            ),
        ),
    )


def never_opened(ctx: Context) -> Shape:
    params = (ctx.account_id, ctx.universe, "open")
    return Shape(
        "d",
        "never opened",
        _one_group({"kind": "activity", "metric": "open", "operator": "never"}),
        (
            HandQuery(
                "not-exists",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                "  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.account_id = $1\n"
                "                  AND e.contact_id = c.id AND e.type = $3)",
                params,
            ),
            HandQuery(
                "except",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                "EXCEPT\n"
                "SELECT e.contact_id FROM events e WHERE e.account_id = $1 AND e.type = $3",
                params,
            ),
        ),
    )


def bounced_or_complained(ctx: Context) -> Shape:
    params = (ctx.account_id, ctx.universe, ["bounce", "complaint"])
    return Shape(
        "e",
        "bounced OR complained (two groups)",
        {
            "any": [
                {"all": [{"kind": "deliverability", "metric": metric, "operator": "ever"}]}
                for metric in ("bounce", "complaint")
            ]
        },
        (
            HandQuery(
                "exists-any-type",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                "  AND EXISTS (SELECT 1 FROM events e WHERE e.account_id = $1\n"
                "              AND e.contact_id = c.id AND e.type = ANY($3))",
                params,
            ),
            HandQuery(
                "events-first",
                "SELECT c.id\nFROM (SELECT DISTINCT e.contact_id FROM events e\n"
                "      WHERE e.account_id = $1 AND e.type = ANY($3)) o\n"
                "JOIN contacts c ON c.id = o.contact_id\n"
                f"WHERE c.account_id = $1 AND {UNIVERSE}",
                params,
            ),
        ),
    )


def in_list_not_in_list(ctx: Context) -> Shape:
    params = (ctx.account_id, ctx.universe, ctx.lists["newsletter"], ctx.lists["blocklist"])
    member = (
        "EXISTS (SELECT 1 FROM contact_list_members m\n"
        "               WHERE m.account_id = $1 AND m.list_id = $3 AND m.contact_id = c.id)"
    )
    blocked = (
        "NOT EXISTS (SELECT 1 FROM contact_list_members b\n"
        "                   WHERE b.account_id = $1 AND b.list_id = $4 AND b.contact_id = {id})"
    )
    return Shape(
        "f",
        "in list Newsletter AND not in list Blocklist",
        _one_group(
            {"kind": "membership", "operator": "in", "list_ids": [str(params[2])]},
            {"kind": "membership", "operator": "not_in", "list_ids": [str(params[3])]},
        ),
        (
            HandQuery(
                "exists",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                f"  AND {member}\n  AND {blocked.format(id='c.id')}",
                params,
            ),
            HandQuery(
                "members-only",
                "SELECT u.contact_id FROM contact_list_members u\n"
                "JOIN contact_list_members m ON m.contact_id = u.contact_id\n"
                "    AND m.account_id = $1 AND m.list_id = $3\n"
                f"WHERE u.account_id = $1 AND u.list_id = $2\n"
                f"  AND {blocked.format(id='u.contact_id')}",
                params,
                exact=False,
                note="skips contacts: relies on members.account_id being the contact's account",
            ),
        ),
    )


def tags_any(ctx: Context) -> Shape:
    params = (ctx.account_id, ctx.universe, ["vip", "churn-risk"])
    predicate = "segments_lower_array(c.tags) && $3::text[]"
    return Shape(
        "g",
        "tags has_any [vip, churn-risk]",
        _one_group(_field("tags", "has_any", ["vip", "churn-risk"])),
        _on_the_row(predicate, params),
    )


def or_of_groups(ctx: Context) -> Shape:
    params = (
        ctx.account_id,
        ctx.universe,
        ["de", "at", "ch"],
        ctx.days_ago(30),
        ["vip"],
        ctx.days_ago(90),
        "enterprise",
        90,
    )
    groups = {
        "row": "lower(segments_jsonb_text(c.attributes -> 'plan')) = $7\n"
        "       AND segments_jsonb_number(c.attributes -> 'score') >= $8",
        "open": "lower(c.country) = ANY($3)\n"
        "       AND EXISTS (SELECT 1 FROM events e WHERE e.account_id = $1\n"
        "                   AND e.contact_id = c.id AND e.type = 'open' AND e.occurred_at >= $4)",
        "click": "segments_lower_array(c.tags) && $5::text[]\n"
        "       AND (SELECT count(*) FROM events e WHERE e.account_id = $1\n"
        "            AND e.contact_id = c.id AND e.type = 'click' AND e.occurred_at >= $6) >= 2",
    }
    head = f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
    return Shape(
        "h",
        "(country in [de,at,ch] AND opened 30d) OR (tags has_any [vip] AND clicked >= 2 in 90d)"
        " OR (plan = enterprise AND score >= 90)",
        {
            "any": [
                {
                    "all": [
                        _field("country", "in", ["de", "at", "ch"]),
                        {
                            "kind": "activity",
                            "metric": "open",
                            "operator": "ever",
                            "days_window": _window(30),
                        },
                    ]
                },
                {
                    "all": [
                        _field("tags", "has_any", ["vip"]),
                        {
                            "kind": "activity",
                            "metric": "click",
                            "operator": "count_gte",
                            "value": 2,
                            "days_window": _window(90),
                        },
                    ]
                },
                {"all": [_field("plan", "equals", "enterprise"), _field("score", "gte", 90)]},
            ]
        },
        (
            HandQuery(
                "or-correlated",
                head + "  AND ((" + ")\n    OR (".join(groups.values()) + "))",
                params,
                note="one pass; the cheap row-only group first, events probed per contact",
            ),
            HandQuery(
                "union",
                "\nUNION\n".join(f"{head}  AND {g}" for g in groups.values()),
                params,
            ),
        ),
    )


def custom_fields_isp(ctx: Context) -> Shape:
    params = (ctx.account_id, ctx.universe, [1, 2, 3], ["pro", "enterprise"], 50)
    predicate = (
        "c.isp_id = ANY($3)\n"
        "  AND lower(segments_jsonb_text(c.attributes -> 'plan')) = ANY($4)\n"
        "  AND segments_jsonb_number(c.attributes -> 'score') >= $5"
    )
    return Shape(
        "i",
        "isp in [1,2,3] AND plan in [pro, enterprise] AND score >= 50 (custom fields)",
        _one_group(
            {"kind": "isp", "operator": "in", "values": [1, 2, 3]},
            _field("plan", "in", ["pro", "enterprise"]),
            _field("score", "gte", 50),
        ),
        _on_the_row(predicate, params),
    )


def last_open_within(ctx: Context) -> Shape:
    params = (ctx.account_id, ctx.universe, "open", ctx.days_ago(30), ctx.now)
    # max(occurred_at) in [since, now]  <=>  an open in [since, now] and none after now.
    return Shape(
        "j",
        "last_open_at within_days 30 (derived field)",
        _one_group(_field("last_open_at", "within_days", 30)),
        (
            HandQuery(
                "window-exists",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                "  AND EXISTS (SELECT 1 FROM events e WHERE e.account_id = $1\n"
                "              AND e.contact_id = c.id AND e.type = $3\n"
                "              AND e.occurred_at BETWEEN $4 AND $5)\n"
                "  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.account_id = $1\n"
                "                  AND e.contact_id = c.id AND e.type = $3"
                " AND e.occurred_at > $5)",
                params,
                note="max(t) in [a, b] rewritten as: some t in [a, b] and no t > b",
            ),
            HandQuery(
                "correlated-max",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                "  AND (SELECT max(e.occurred_at) FROM events e WHERE e.account_id = $1\n"
                "       AND e.contact_id = c.id AND e.type = $3) BETWEEN $4 AND $5",
                params,
            ),
        ),
    )


def _local_midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone))


def _on_the_row(predicate: str, params: tuple[Any, ...]) -> tuple[HandQuery, ...]:
    """The two hand-written forms of a predicate on the contact row."""
    return (
        HandQuery(
            "exists",
            f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {predicate}\n"
            f"  AND {UNIVERSE}",
            params,
        ),
        HandQuery("join", f"SELECT c.id {UNIVERSE_JOIN}\n  AND {predicate}", params),
    )


def created_last_month(ctx: Context) -> Shape:
    zone = "Europe/Amsterdam"
    today = ctx.now.astimezone(ZoneInfo(zone)).date()
    this_month = today.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    params = (
        ctx.account_id,
        ctx.universe,
        _local_midnight(last_month, zone),
        _local_midnight(this_month, zone),
    )
    predicate = "c.created_at >= $3 AND c.created_at < $4"
    return Shape(
        "k",
        "created_at in_calendar last month (Europe/Amsterdam)",
        _one_group(_field("created_at", "in_calendar", {"unit": "month", "offset": -1})),
        _on_the_row(predicate, params),
        timezone=zone,
    )


def opened_this_week(ctx: Context) -> Shape:
    zone = "Australia/Sydney"
    today = ctx.now.astimezone(ZoneInfo(zone)).date()
    monday = today - timedelta(days=today.weekday())
    start, end = _local_midnight(monday, zone), _local_midnight(monday + timedelta(7), zone)
    params = (ctx.account_id, ctx.universe, "open", start, end)
    window = {"mode": "calendar", "unit": "week", "offset": 0}
    return Shape(
        "l",
        "opened this week (calendar days_window, Australia/Sydney)",
        _one_group(
            {"kind": "activity", "metric": "open", "operator": "ever", "days_window": window}
        ),
        (
            HandQuery(
                "exists",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                "  AND EXISTS (SELECT 1 FROM events e WHERE e.account_id = $1\n"
                "              AND e.contact_id = c.id AND e.type = $3\n"
                "              AND e.occurred_at >= $4 AND e.occurred_at < $5)",
                params,
            ),
            HandQuery(
                "events-first",
                "SELECT c.id\nFROM (SELECT DISTINCT e.contact_id FROM events e\n"
                "      WHERE e.account_id = $1 AND e.type = $3\n"
                "        AND e.occurred_at >= $4 AND e.occurred_at < $5) o\n"
                "JOIN contacts c ON c.id = o.contact_id\n"
                f"WHERE c.account_id = $1 AND {UNIVERSE}",
                params,
            ),
        ),
        timezone=zone,
    )


def signup_anniversary(ctx: Context) -> Shape:
    zone = "America/New_York"
    today = ctx.now.astimezone(ZoneInfo(zone)).date()
    days = sorted({(today + timedelta(days=k)).strftime("%m-%d") for k in range(8)})
    if "02-28" in days and not calendar.isleap(today.year):
        days.append("02-29")
    params = (ctx.account_id, ctx.universe, zone, days)
    predicate = "to_char(c.created_at AT TIME ZONE $3, 'MM-DD') = ANY($4)"
    return Shape(
        "m",
        "created_at anniversary_within_days 7 (America/New_York)",
        _one_group(_field("created_at", "anniversary_within_days", 7)),
        _on_the_row(predicate, params),
        timezone=zone,
    )


# Segments of the big account that segment-of-segment shapes reference, over all its contacts:
# bench.plans materialises their members (as a build would) before it measures.
REFERENCED: dict[str, dict[str, Any]] = {
    "engaged": _one_group(
        {"kind": "activity", "metric": "open", "operator": "ever", "days_window": _window(30)}
    ),
    "bounced": _one_group({"kind": "deliverability", "metric": "bounce", "operator": "ever"}),
}


def in_segment_not_in_segment(ctx: Context) -> Shape:
    params = (ctx.account_id, ctx.universe, ctx.segments["engaged"], ctx.segments["bounced"])
    bounced = (
        "NOT EXISTS (SELECT 1 FROM segment_members b\n"
        "                   WHERE b.account_id = $1 AND b.segment_id = $4 AND b.contact_id = {id})"
    )
    return Shape(
        "n",
        "in segment Engaged AND not in segment Bounced (segments of segments)",
        _one_group(
            {"kind": "segment", "operator": "in", "segment_ids": [str(params[2])]},
            {"kind": "segment", "operator": "not_in", "segment_ids": [str(params[3])]},
        ),
        (
            HandQuery(
                "exists",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                "  AND EXISTS (SELECT 1 FROM segment_members s\n"
                "              WHERE s.account_id = $1 AND s.segment_id = $3"
                " AND s.contact_id = c.id)\n"
                f"  AND {bounced.format(id='c.id')}",
                params,
            ),
            HandQuery(
                "members-first",
                "SELECT c.id FROM segment_members s\n"
                "JOIN contacts c ON c.id = s.contact_id AND c.account_id = $1\n"
                f"WHERE s.account_id = $1 AND s.segment_id = $3 AND {UNIVERSE}\n"
                f"  AND {bounced.format(id='c.id')}",
                params,
            ),
        ),
    )


def engaged_not_churning(ctx: Context) -> Shape:
    """A nested tree (docs/rules.md, "Nesting and not"): (opened in 30 days OR clicked in
    90) AND NOT tagged churn-risk."""
    params = (ctx.account_id, ctx.universe, ctx.days_ago(30), ctx.days_ago(90), ["churn-risk"])
    engaged = (
        "SELECT e.contact_id FROM events e WHERE e.account_id = $1\n"
        "        AND ((e.type = 'open' AND e.occurred_at >= $3)"
        " OR (e.type = 'click' AND e.occurred_at >= $4))"
    )
    not_churning = "NOT (segments_lower_array(c.tags) && $5::text[])"
    return Shape(
        "o",
        "(opened 30d OR clicked 90d) AND NOT tags has_any [churn-risk]",
        {
            "all": [
                {
                    "any": [
                        {
                            "kind": "activity",
                            "metric": "open",
                            "operator": "ever",
                            "days_window": _window(30),
                        },
                        {
                            "kind": "activity",
                            "metric": "click",
                            "operator": "ever",
                            "days_window": _window(90),
                        },
                    ]
                },
                {"not": _field("tags", "has_any", ["churn-risk"])},
            ]
        },
        (
            HandQuery(
                "semi-join",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                f"  AND {not_churning}\n  AND c.id IN ({engaged})",
                params,
            ),
            HandQuery(
                "exists-or",
                f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
                f"  AND {not_churning}\n"
                "  AND (EXISTS (SELECT 1 FROM events e WHERE e.account_id = $1"
                " AND e.contact_id = c.id AND e.type = 'open' AND e.occurred_at >= $3)\n"
                "       OR EXISTS (SELECT 1 FROM events e WHERE e.account_id = $1"
                " AND e.contact_id = c.id AND e.type = 'click' AND e.occurred_at >= $4))",
                params,
            ),
        ),
    )


def _activity(
    metric: str, operator: str = "ever", days: int | None = None, value: int | None = None
) -> dict[str, Any]:
    condition: dict[str, Any] = {"kind": "activity", "metric": metric, "operator": operator}
    if days is not None:
        condition["days_window"] = _window(days)
    return condition if value is None else {**condition, "value": value}


def subscribed_not_opened_locals(ctx: Context) -> Shape:
    """A nested tree: NOT of an AND group mixing a field and an event test."""
    params = (ctx.account_id, ctx.universe, "subscribed", ["us", "gb"], "open", ctx.days_ago(30))
    head = (
        f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
        "  AND lower(c.status) = $3\n"
    )
    opened = (
        "SELECT e.contact_id FROM events e WHERE e.account_id = $1\n"
        "        AND e.type = $5 AND e.occurred_at >= $6"
    )
    local = "lower(c.country) = ANY($4)"
    return Shape(
        "p",
        "status = subscribed AND NOT (country in [us, gb] AND opened 30d)",
        {
            "all": [
                _field("status", "equals", "subscribed"),
                {
                    "not": {
                        "all": [_field("country", "in", ["us", "gb"]), _activity("open", days=30)]
                    }
                },
            ]
        },
        (
            HandQuery(
                "except",
                f"{head}EXCEPT\n{head}  AND {local}\n  AND c.id IN ({opened})",
                params,
                note="all subscribed, less those local and opened (a hashed semi-join)",
            ),
            HandQuery(
                "or-not-exists",
                f"{head}  AND (lower(coalesce(c.country, '')) <> ALL($4)\n"
                f"       OR NOT EXISTS (SELECT 1 FROM ({opened}) o WHERE o.contact_id = c.id))",
                params,
            ),
            HandQuery(
                "left-join",
                "SELECT c.id FROM contacts c\n"
                f"LEFT JOIN (SELECT DISTINCT e.contact_id FROM events e WHERE e.account_id = $1\n"
                "           AND e.type = $5 AND e.occurred_at >= $6) o ON o.contact_id = c.id\n"
                f"WHERE c.account_id = $1 AND {UNIVERSE}\n  AND lower(c.status) = $3\n"
                f"  AND NOT (coalesce({local}, false) AND o.contact_id IS NOT NULL)",
                params,
            ),
        ),
    )


def vip_clickers_or_paying_outsiders(ctx: Context) -> Shape:
    """A nested tree: an `any` of `all`s two deep, one with a not-in-list, AND NOT bounced."""
    params = (
        ctx.account_id,
        ctx.universe,
        ["vip"],
        ctx.days_ago(90),
        ["pro", "enterprise"],
        ctx.lists["newsletter"],
        "bounce",
    )
    head = f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
    not_bounced = (
        "NOT EXISTS (SELECT 1 FROM events b WHERE b.account_id = $1 AND b.type = $7\n"
        "                  AND b.contact_id = c.id)"
    )
    vip = (
        "segments_lower_array(c.tags) && $3::text[]\n"
        "  AND c.id IN (SELECT e.contact_id FROM events e WHERE e.account_id = $1\n"
        "               AND e.type = 'click' AND e.occurred_at >= $4)"
    )
    outsider = (
        "lower(segments_jsonb_text(c.attributes -> 'plan')) = ANY($5)\n"
        "  AND NOT EXISTS (SELECT 1 FROM contact_list_members n WHERE n.account_id = $1\n"
        "                  AND n.list_id = $6 AND n.contact_id = c.id)"
    )
    return Shape(
        "q",
        "((tags has_any [vip] AND clicked 90d) OR (plan in [pro, enterprise] AND NOT in list"
        " Newsletter)) AND NOT bounced",
        {
            "all": [
                {
                    "any": [
                        {"all": [_field("tags", "has_any", ["vip"]), _activity("click", days=90)]},
                        {
                            "all": [
                                _field("plan", "in", ["pro", "enterprise"]),
                                {
                                    "not": {
                                        "kind": "membership",
                                        "operator": "in",
                                        "list_ids": [str(params[5])],
                                    }
                                },
                            ]
                        },
                    ]
                },
                {"not": {"kind": "deliverability", "metric": "bounce", "operator": "ever"}},
            ]
        },
        (
            HandQuery(
                "union",
                f"{head}  AND {vip}\n  AND {not_bounced}\nUNION\n"
                f"{head}  AND {outsider}\n  AND {not_bounced}",
                params,
            ),
            HandQuery(
                "union-then-anti-join",
                f"SELECT u.id FROM (\n{head}  AND {vip}\nUNION\n{head}  AND {outsider}\n) u\n"
                "WHERE NOT EXISTS (SELECT 1 FROM events b WHERE b.account_id = $1"
                " AND b.type = $7 AND b.contact_id = u.id)",
                params,
            ),
        ),
    )


def in_list_not_in_other(ctx: Context) -> Shape:
    """A segment on two lists whose rule picks the members of one that are not on the other
    (the rule's own list condition implies the universe)."""
    params = (ctx.account_id, ctx.lists["newsletter"], ctx.lists["customers"])
    not_b = (
        "NOT EXISTS (SELECT 1 FROM contact_list_members b\n"
        "                   WHERE b.account_id = $1 AND b.list_id = $3 AND b.contact_id = {id})"
    )
    return Shape(
        "r",
        "lists Newsletter + Customers: in list Newsletter AND not in list Customers",
        _one_group(
            {"kind": "membership", "operator": "in", "list_ids": [str(params[1])]},
            {"kind": "membership", "operator": "not_in", "list_ids": [str(params[2])]},
        ),
        (
            HandQuery(
                "members-first",
                "SELECT c.id FROM contact_list_members a\n"
                "JOIN contacts c ON c.id = a.contact_id AND c.account_id = $1\n"
                "WHERE a.account_id = $1 AND a.list_id = $2\n"
                f"  AND {not_b.format(id='a.contact_id')}",
                params,
            ),
            HandQuery(
                "exists",
                "SELECT c.id FROM contacts c WHERE c.account_id = $1\n"
                "  AND EXISTS (SELECT 1 FROM contact_list_members a\n"
                "              WHERE a.account_id = $1 AND a.list_id = $2\n"
                "                AND a.contact_id = c.id)\n"
                f"  AND {not_b.format(id='c.id')}",
                params,
            ),
        ),
        lists=("newsletter", "customers"),
    )


def status_in_countries(ctx: Context) -> Shape:
    params = (ctx.account_id, ctx.universe, "subscribed", ["de", "at", "ch"])
    predicate = "lower(c.status) = $3 AND lower(c.country) = ANY($4)"
    return Shape(
        "s",
        "status = subscribed AND country in [de, at, ch]",
        _one_group(
            _field("status", "equals", "subscribed"), _field("country", "in", ["de", "at", "ch"])
        ),
        (
            *_on_the_row(predicate, params),
            HandQuery(
                "raw-columns",
                f"SELECT c.id {UNIVERSE_JOIN}\n  AND c.status = $3 AND c.country = ANY($4)",
                (*params[:3], ["DE", "AT", "CH", "de", "at", "ch"]),
                exact=False,
                note="compares the stored values as they are (the upper- and lower-case spellings"
                " of this data set), no lower() per row",
            ),
        ),
    )


def mixed_or_of_groups(ctx: Context) -> Shape:
    """An OR of AND groups mixing fields, tags, opens and clicks, two of them counts."""
    params = (
        ctx.account_id,
        ctx.universe,
        ["us", "gb", "fr"],
        ["vip"],
        ctx.days_ago(30),
        3,
        "subscribed",
        ["newsletter", "lead"],
        ctx.days_ago(90),
        2,
        ["de", "fr"],
        ctx.days_ago(7),
    )
    row = {
        "vip": "lower(c.country) = ANY($3) AND segments_lower_array(c.tags) && $4::text[]",
        "news": "lower(c.status) = $7 AND segments_lower_array(c.tags) && $8::text[]",
        "local": "lower(c.language) = ANY($11)",
    }
    grouped = {
        "vip": "SELECT e.contact_id FROM events e WHERE e.account_id = $1 AND e.type = 'open'\n"
        "        AND e.occurred_at >= $5 GROUP BY e.contact_id HAVING count(*) >= $6",
        "news": "SELECT e.contact_id FROM events e WHERE e.account_id = $1 AND e.type = 'click'\n"
        "        AND e.occurred_at >= $9 GROUP BY e.contact_id HAVING count(*) >= $10",
        "local": "SELECT e.contact_id FROM events e WHERE e.account_id = $1 AND e.type = 'open'\n"
        "        AND e.occurred_at >= $12",
    }
    head = f"SELECT c.id FROM contacts c\nWHERE c.account_id = $1 AND {UNIVERSE}\n"
    counts = (
        "SELECT e.contact_id,\n"
        "         count(*) FILTER (WHERE e.type = 'open' AND e.occurred_at >= $5) AS opens30,\n"
        "         count(*) FILTER (WHERE e.type = 'click') AS clicks90,\n"
        "         count(*) FILTER (WHERE e.type = 'open' AND e.occurred_at >= $12) AS opens7\n"
        "  FROM events e WHERE e.account_id = $1\n"
        "    AND ((e.type = 'open' AND e.occurred_at >= $5)\n"
        "      OR (e.type = 'click' AND e.occurred_at >= $9))\n"
        "  GROUP BY e.contact_id"
    )
    return Shape(
        "t",
        "(country in [us, gb, fr] AND tags has_any [vip] AND opened >= 3 in 30d) OR (status ="
        " subscribed AND tags has_any [newsletter, lead] AND clicked >= 2 in 90d) OR (language in"
        " [de, fr] AND opened 7d)",
        {
            "any": [
                {
                    "all": [
                        _field("country", "in", ["us", "gb", "fr"]),
                        _field("tags", "has_any", ["vip"]),
                        _activity("open", "count_gte", 30, 3),
                    ]
                },
                {
                    "all": [
                        _field("status", "equals", "subscribed"),
                        _field("tags", "has_any", ["newsletter", "lead"]),
                        _activity("click", "count_gte", 90, 2),
                    ]
                },
                {"all": [_field("language", "in", ["de", "fr"]), _activity("open", days=7)]},
            ]
        },
        (
            HandQuery(
                "union",
                "\nUNION\n".join(
                    f"{head}  AND {row[k]}\n  AND c.id IN ({grouped[k]})" for k in row
                ),
                params,
            ),
            HandQuery(
                "one-aggregate",
                f"SELECT c.id FROM ({counts}) x\n"
                "JOIN contacts c ON c.id = x.contact_id\n"
                f"WHERE c.account_id = $1 AND {UNIVERSE}\n"
                f"  AND (({row['vip']} AND x.opens30 >= $6)\n"
                f"    OR ({row['news']} AND x.clicks90 >= $10)\n"
                f"    OR ({row['local']} AND x.opens7 > 0))",
                params,
                note="the events read once, every count in one GROUP BY",
            ),
        ),
    )


SHAPES: tuple[Callable[[Context], Shape], ...] = (
    status_country,
    opened_recently,
    clicked_campaigns,
    never_opened,
    bounced_or_complained,
    in_list_not_in_list,
    tags_any,
    or_of_groups,
    custom_fields_isp,
    last_open_within,
    created_last_month,
    opened_this_week,
    signup_anniversary,
    in_segment_not_in_segment,
    engaged_not_churning,
    subscribed_not_opened_locals,
    vip_clickers_or_paying_outsiders,
    in_list_not_in_other,
    status_in_countries,
    mixed_or_of_groups,
)
assert CAMPAIGNS >= 6  # clicked_campaigns picks the six most recent
