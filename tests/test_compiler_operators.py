"""The compiler against real PostgreSQL: for every operator and null/edge case of docs/rules.md,
exactly which contacts match.

Each test builds a small data set in a fresh account and asks which of its contacts (by label)
match a rule. Every question is answered by all three compiled forms (`member_ids`, `count`,
`matching_among` with all and with some of the contacts as candidates) and they must agree.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from worker.compiler import (
    CompiledQuery,
    SegmentQuery,
    compile_count,
    compile_matching_among,
    compile_member_ids,
)
from worker.rules import FieldRegistry, parse_v2_rules
from worker.rules.fields import BUILTIN_FIELDS, OPERATORS_BY_TYPE, FieldSource, FieldType
from worker.store import load_registry

NOW = datetime(2026, 5, 21, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
ABSENT: Any = object()

Rules = dict[str, Any]


# -- rule builders ----------------------------------------------------------------------------
def field(name: str, operator: str, value: Any = ABSENT) -> dict[str, Any]:
    cond: dict[str, Any] = {"kind": "field", "field": name, "operator": operator}
    if value is not ABSENT:
        cond["value"] = value
    return cond


def activity(metric: str, operator: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    kind = "activity" if metric in ("open", "click") else "deliverability"
    cond: dict[str, Any] = {"kind": kind, "metric": metric, "operator": operator, **extra}
    if value is not None:
        cond["value"] = value
    return cond


def last(days: int) -> dict[str, Any]:
    return {"mode": "last", "days": days}


def more_than(days: int) -> dict[str, Any]:
    return {"mode": "more_than", "days": days}


def all_of(*conditions: dict[str, Any]) -> Rules:
    return {"any": [{"all": list(conditions)}]}


def any_of(*groups: Iterable[dict[str, Any]]) -> Rules:
    return {"any": [{"all": list(group)} for group in groups]}


def iso(moment: datetime) -> str:
    return moment.isoformat()


# -- the data set -----------------------------------------------------------------------------
class Dataset:
    """Contacts (by label), their events and lists in one account, and the rule runner."""

    def __init__(self, conn: asyncpg.Connection, account_id: UUID) -> None:
        self.conn = conn
        self.account_id = account_id
        self.ids: dict[str, UUID] = {}
        self.labels: dict[UUID, str] = {}

    async def contact(self, label: str, **columns: Any) -> UUID:
        columns.setdefault("email", f"{label}@example.com")
        columns.setdefault("status", "subscribed")
        names = list(columns)
        values = ", ".join(f"${i}" for i in range(2, len(names) + 2))
        contact_id: UUID = await self.conn.fetchval(
            f"INSERT INTO contacts (account_id, {', '.join(names)}) VALUES ($1, {values})"
            " RETURNING id",
            self.account_id,
            *columns.values(),
        )
        self.ids[label] = contact_id
        self.labels[contact_id] = label
        return contact_id

    async def contacts(self, *labels: str) -> None:
        for label in labels:
            await self.contact(label)

    async def event(
        self, label: str, type_: str, at: datetime, campaign: UUID | None = None
    ) -> None:
        await self.conn.execute(
            "INSERT INTO events (account_id, contact_id, type, campaign_id, occurred_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            self.account_id,
            self.ids[label],
            type_,
            campaign,
            at,
        )

    async def events(self, label: str, type_: str, count: int, at: datetime = NOW - DAY) -> None:
        for i in range(count):
            await self.event(label, type_, at - i * SECOND)

    async def new_list(self, *labels: str) -> UUID:
        list_id: UUID = await self.conn.fetchval(
            "INSERT INTO contact_lists (account_id, name) VALUES ($1, $2) RETURNING id",
            self.account_id,
            f"list-{uuid.uuid4().hex[:8]}",
        )
        for label in labels:
            await self.add_to_list(list_id, label)
        return list_id

    async def add_to_list(self, list_id: UUID, label: str) -> None:
        await self.conn.execute(
            "INSERT INTO contact_list_members (list_id, contact_id, account_id)"
            " VALUES ($1, $2, $3)",
            list_id,
            self.ids[label],
            self.account_id,
        )

    async def declare(self, key: str, data_type: str) -> None:
        await self.conn.execute(
            "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, $2, $3)",
            self.account_id,
            key,
            data_type,
        )

    async def registry(self) -> FieldRegistry:
        return await load_registry(self.conn, self.account_id)

    async def query(self, rules: Mapping[str, Any], lists: Iterable[UUID] = ()) -> SegmentQuery:
        tree = parse_v2_rules(rules, await self.registry())
        return SegmentQuery(self.account_id, tree, tuple(lists), NOW)

    async def ids_of(self, compiled: CompiledQuery) -> list[UUID]:
        return [row[0] for row in await self.conn.fetch(compiled.sql, *compiled.params)]

    async def match(self, rules: Mapping[str, Any], lists: Iterable[UUID] = ()) -> set[str]:
        """Labels of the contacts matching `rules`; the three compiled forms must agree."""
        query = await self.query(rules, lists)
        members = await self.ids_of(compile_member_ids(query))
        assert len(members) == len(set(members)), "member_ids returned a contact twice"
        compiled_count = compile_count(query)
        count = await self.conn.fetchval(compiled_count.sql, *compiled_count.params)
        assert count == len(members), "compile_count disagrees with compile_member_ids"
        candidates = [*self.ids.values(), uuid.uuid4()]
        among = await self.ids_of(compile_matching_among(query, candidates))
        assert sorted(among) == sorted(members), "matching_among(all) disagrees"
        some = candidates[::2]
        among_some = await self.ids_of(compile_matching_among(query, some))
        assert set(among_some) == set(members) & set(some), "matching_among(some) disagrees"
        return {self.labels.get(i, f"<not in this data set: {i}>") for i in members}

    async def where(self, *conditions: dict[str, Any]) -> set[str]:
        return await self.match(all_of(*conditions))

    def everyone(self) -> set[str]:
        return set(self.ids)


@pytest.fixture
async def data(conn: asyncpg.Connection, account_id: UUID) -> Dataset:
    return Dataset(conn, account_id)


# -- text -------------------------------------------------------------------------------------
async def test_text_comparisons_ignore_case(data: Dataset) -> None:
    await data.contact("upper", company="ACME Inc")
    await data.contact("lower", company="acme inc")
    await data.contact("accented", company="École Acmé")
    await data.contact("other", company="Globex")

    assert await data.where(field("company", "equals", "acme INC")) == {"upper", "lower"}
    assert await data.where(field("company", "not_equals", "Acme Inc")) == {"accented", "other"}
    assert await data.where(field("company", "contains", "ME I")) == {"upper", "lower"}
    assert await data.where(field("company", "not_contains", "ME I")) == {"accented", "other"}
    assert await data.where(field("company", "starts_with", "aCmE")) == {"upper", "lower"}
    assert await data.where(field("company", "in", ["GLOBEX", "acme inc"])) == {
        "upper",
        "lower",
        "other",
    }
    assert await data.where(field("company", "not_in", ["GLOBEX", "ACME inc"])) == {"accented"}


async def test_text_comparisons_ignore_case_beyond_ascii(data: Dataset) -> None:
    await data.contact("accented", company="École Acmé")
    await data.contact("greek", company="ΣΟΦΙΑ")
    await data.contact("other", company="Globex")

    assert await data.where(field("company", "equals", "école acmé")) == {"accented"}
    assert await data.where(field("company", "starts_with", "ÉCOLE")) == {"accented"}
    assert await data.where(field("company", "contains", "σοφ")) == {"greek"}


async def test_equals_never_matches_null_or_empty_text(data: Dataset) -> None:
    await data.contact("set", city="Paris")
    await data.contact("null", city=None)
    await data.contact("empty", city="")
    await data.contact("space", city=" ")

    assert await data.where(field("city", "equals", "paris")) == {"set"}
    assert await data.where(field("city", "equals", " ")) == {"space"}


async def test_not_equals_matches_null_and_empty_text(data: Dataset) -> None:
    await data.contact("paris", city="Paris")
    await data.contact("berlin", city="Berlin")
    await data.contact("null", city=None)
    await data.contact("empty", city="")

    assert await data.where(field("city", "not_equals", "PARIS")) == {"berlin", "null", "empty"}


async def test_contains_and_starts_with_never_match_null_or_empty_text(data: Dataset) -> None:
    await data.contact("set", company="Initech")
    await data.contact("null", company=None)
    await data.contact("empty", company="")

    assert await data.where(field("company", "contains", "i")) == {"set"}
    assert await data.where(field("company", "starts_with", "init")) == {"set"}


async def test_not_contains_matches_null_and_empty_text(data: Dataset) -> None:
    await data.contact("has", company="Umbrella Corp")
    await data.contact("lacks", company="Initech")
    await data.contact("null", company=None)
    await data.contact("empty", company="")

    assert await data.where(field("company", "not_contains", "CORP")) == {
        "lacks",
        "null",
        "empty",
    }


async def test_text_in_matches_any_listed_value(data: Dataset) -> None:
    await data.contact("fr", country="FR")
    await data.contact("de", country="de")
    await data.contact("us", country="US")
    await data.contact("null", country=None)
    await data.contact("empty", country="")

    assert await data.where(field("country", "in", ["fr", "DE"])) == {"fr", "de"}


async def test_text_not_in_matches_null_and_empty_text(data: Dataset) -> None:
    await data.contact("fr", country="FR")
    await data.contact("us", country="US")
    await data.contact("null", country=None)
    await data.contact("empty", country="")

    assert await data.where(field("country", "not_in", ["fr", "DE"])) == {"us", "null", "empty"}


async def test_text_is_null_means_null_or_empty_but_not_whitespace(data: Dataset) -> None:
    await data.contact("set", language="en")
    await data.contact("null", language=None)
    await data.contact("empty", language="")
    await data.contact("space", language=" ")

    assert await data.where(field("language", "is_null")) == {"null", "empty"}
    assert await data.where(field("language", "is_null", None)) == {"null", "empty"}
    assert await data.where(field("language", "is_not_null")) == {"set", "space"}


async def test_text_values_are_literal_not_patterns(data: Dataset) -> None:
    await data.contact("percent", company="50%_off")
    await data.contact("pattern_match", company="50 percent xoff")
    await data.contact("backslash", company="C:\\dir")
    await data.contact("plain", company="Cxdir")

    assert await data.where(field("company", "contains", "%_")) == {"percent"}
    assert await data.where(field("company", "starts_with", "50%")) == {"percent"}
    assert await data.where(field("company", "contains", ":\\d")) == {"backslash"}
    assert await data.where(field("company", "not_contains", "%")) == {
        "pattern_match",
        "backslash",
        "plain",
    }


async def test_email_and_status_columns_are_text(data: Dataset) -> None:
    await data.contact("a", email="Alice@Example.COM", status="subscribed")
    await data.contact("b", email="bob@other.org", status="unsubscribed")

    assert await data.where(field("email", "equals", "alice@example.com")) == {"a"}
    assert await data.where(field("email", "contains", "@EXAMPLE.")) == {"a"}
    assert await data.where(field("status", "in", ["Unsubscribed", "bounced"])) == {"b"}


# -- numbers (custom) -------------------------------------------------------------------------
@pytest.fixture
async def scores(data: Dataset) -> Dataset:
    await data.declare("score", "number")
    await data.contact("one", attributes={"score": 1})
    await data.contact("two_and_half", attributes={"score": 2.5})
    await data.contact("ten", attributes={"score": 10.0})
    await data.contact("negative", attributes={"score": -3})
    await data.contact("missing", attributes={})
    await data.contact("json_null", attributes={"score": None})
    await data.contact("string", attributes={"score": "42"})
    return data


async def test_number_ordered_comparisons(scores: Dataset) -> None:
    assert await scores.where(field("score", "gt", 2.5)) == {"ten"}
    assert await scores.where(field("score", "gte", 2.5)) == {"two_and_half", "ten"}
    assert await scores.where(field("score", "lt", 1)) == {"negative"}
    assert await scores.where(field("score", "lte", 1)) == {"negative", "one"}
    assert await scores.where(field("score", "gt", -100)) == {
        "one",
        "two_and_half",
        "ten",
        "negative",
    }


async def test_number_equals_and_in(scores: Dataset) -> None:
    assert await scores.where(field("score", "equals", 10)) == {"ten"}
    assert await scores.where(field("score", "equals", 2.5)) == {"two_and_half"}
    assert await scores.where(field("score", "in", [1, 10, 7])) == {"one", "ten"}


async def test_number_not_equals_and_not_in_match_null(scores: Dataset) -> None:
    nulls = {"missing", "json_null", "string"}
    assert await scores.where(field("score", "not_equals", 1)) == {
        "two_and_half",
        "ten",
        "negative",
        *nulls,
    }
    assert await scores.where(field("score", "not_in", [1, 10])) == {
        "two_and_half",
        "negative",
        *nulls,
    }


async def test_number_is_null_and_is_not_null(scores: Dataset) -> None:
    assert await scores.where(field("score", "is_null")) == {"missing", "json_null", "string"}
    assert await scores.where(field("score", "is_not_null")) == {
        "one",
        "two_and_half",
        "ten",
        "negative",
    }


async def test_custom_number_field_string_value_is_null(scores: Dataset) -> None:
    assert "string" not in await scores.where(field("score", "equals", 42))
    assert "string" not in await scores.where(field("score", "gt", 0))
    assert "string" in await scores.where(field("score", "is_null"))


async def test_number_decimals_compare_exactly(data: Dataset) -> None:
    await data.declare("price", "number")
    await data.contact("tenth", attributes={"price": 0.1})
    await data.contact("float_sum", attributes={"price": 0.1 + 0.2})  # 0.30000000000000004
    await data.contact("trailing_zero", attributes={"price": 1.10})

    assert await data.where(field("price", "equals", 0.1)) == {"tenth"}
    assert await data.where(field("price", "equals", 0.3)) == set()
    assert await data.where(field("price", "gt", 0.3)) == {"float_sum", "trailing_zero"}
    assert await data.where(field("price", "equals", 1.1)) == {"trailing_zero"}


# -- datetimes --------------------------------------------------------------------------------
async def test_datetime_ordered_comparisons_at_the_boundary(data: Dataset) -> None:
    moment = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    await data.contact("before", created_at=moment - SECOND)
    await data.contact("at", created_at=moment)
    await data.contact("after", created_at=moment + SECOND)
    await data.contact("null", created_at=None)

    value = "2026-03-01T08:30:00Z"
    assert await data.where(field("created_at", "gt", value)) == {"after"}
    assert await data.where(field("created_at", "gte", value)) == {"at", "after"}
    assert await data.where(field("created_at", "lt", value)) == {"before"}
    assert await data.where(field("created_at", "lte", value)) == {"before", "at"}


async def test_datetime_is_null_and_is_not_null(data: Dataset) -> None:
    await data.contact("set", updated_at=NOW)
    await data.contact("null", updated_at=None)

    assert await data.where(field("updated_at", "is_null")) == {"null"}
    assert await data.where(field("updated_at", "is_not_null")) == {"set"}


async def test_datetime_value_without_offset_is_utc_and_bare_date_is_midnight(
    data: Dataset,
) -> None:
    await data.contact("midnight", created_at=datetime(2026, 5, 1, tzinfo=UTC))
    await data.contact("noon", created_at=datetime(2026, 5, 1, 12, tzinfo=UTC))

    assert await data.where(field("created_at", "lte", "2026-05-01")) == {"midnight"}
    assert await data.where(field("created_at", "gte", "2026-05-01T12:00:00")) == {"noon"}
    # 14:00 at +02:00 is 12:00 UTC.
    assert await data.where(field("created_at", "gte", "2026-05-01T14:00:00+02:00")) == {"noon"}
    assert await data.where(field("created_at", "lt", "2026-05-01T07:00:00-05:00")) == {"midnight"}


async def test_within_days_bounds_inclusive(data: Dataset) -> None:
    await data.contact("now", created_at=NOW)
    await data.contact("exactly_7_days", created_at=NOW - 7 * DAY)
    await data.contact("just_older", created_at=NOW - 7 * DAY - timedelta(microseconds=1))
    await data.contact("future", created_at=NOW + SECOND)
    await data.contact("null", created_at=None)

    assert await data.where(field("created_at", "within_days", 7)) == {"now", "exactly_7_days"}


async def test_within_days_extremes(data: Dataset) -> None:
    await data.contact("yesterday", created_at=NOW - DAY + SECOND)
    await data.contact("ancient", created_at=NOW - 36500 * DAY)

    assert await data.where(field("created_at", "within_days", 1)) == {"yesterday"}
    assert await data.where(field("created_at", "within_days", 36500)) == {"yesterday", "ancient"}


@pytest.fixture
async def birthdays(data: Dataset) -> Dataset:
    await data.declare("birthday", "datetime")
    ten = "2026-01-01T10:00:00Z"
    await data.contact("bare_date", attributes={"birthday": "2026-01-01"})
    await data.contact("no_offset", attributes={"birthday": "2026-01-01T10:00:00"})
    await data.contact("with_offset", attributes={"birthday": "2026-01-01T12:00:00+02:00"})
    await data.contact("compact_offset", attributes={"birthday": "2026-01-01T05:00-0500"})
    await data.contact("space_separated", attributes={"birthday": "2026-01-01 10:00:00z"})
    await data.contact("fraction", attributes={"birthday": "2026-01-01T10:00:00.5Z"})
    await data.contact("utc", attributes={"birthday": ten})
    return data


async def test_custom_datetime_stored_formats_are_read_as_utc(birthdays: Dataset) -> None:
    at_ten = {"no_offset", "with_offset", "compact_offset", "space_separated", "utc"}
    ten = "2026-01-01T10:00:00Z"
    assert await birthdays.where(field("birthday", "gte", ten), field("birthday", "lte", ten)) == (
        at_ten
    )
    assert await birthdays.where(field("birthday", "lte", "2026-01-01T00:00:00Z")) == {"bare_date"}
    assert await birthdays.where(field("birthday", "gt", ten)) == {"fraction"}


async def test_custom_datetime_unparseable_is_null(data: Dataset) -> None:
    await data.declare("birthday", "datetime")
    await data.contact("good", attributes={"birthday": "2000-02-29"})
    bad = {
        "words": "yesterday",
        "impossible_date": "2023-02-29",
        "us_format": "01/02/2026",
        "epoch_number": 1700000000,
        "boolean": True,
        "empty": "",
        "year_zero": "0000-01-01",
        "trailing_text": "2026-01-01T10:00:00Z junk",
    }
    for label, stored in bad.items():
        await data.contact(label, attributes={"birthday": stored})
    await data.contact("missing", attributes={})

    assert await data.where(field("birthday", "is_null")) == {*bad, "missing"}
    assert await data.where(field("birthday", "is_not_null")) == {"good"}
    assert await data.where(field("birthday", "lt", "9999-12-31")) == {"good"}
    assert await data.where(field("birthday", "within_days", 36500)) == {"good"}


# -- booleans ---------------------------------------------------------------------------------
async def test_boolean_operators_and_unreadable_values(data: Dataset) -> None:
    await data.declare("vip", "boolean")
    await data.contact("true", attributes={"vip": True})
    await data.contact("false", attributes={"vip": False})
    await data.contact("missing", attributes={})
    await data.contact("string", attributes={"vip": "true"})
    await data.contact("number", attributes={"vip": 1})

    nulls = {"missing", "string", "number"}
    assert await data.where(field("vip", "equals", True)) == {"true"}
    assert await data.where(field("vip", "equals", False)) == {"false"}
    assert await data.where(field("vip", "not_equals", True)) == {"false", *nulls}
    assert await data.where(field("vip", "not_equals", False)) == {"true", *nulls}
    assert await data.where(field("vip", "is_null")) == nulls
    assert await data.where(field("vip", "is_not_null")) == {"true", "false"}


# -- lists ------------------------------------------------------------------------------------
@pytest.fixture
async def tagged(data: Dataset) -> Dataset:
    await data.contact("vip_news", tags=["VIP", "News"])
    await data.contact("vip", tags=["vip"])
    await data.contact("other", tags=["Other"])
    await data.contact("untagged", tags=[])
    return data


async def test_tags_has_any_ignores_case(tagged: Dataset) -> None:
    assert await tagged.where(field("tags", "has_any", ["vip"])) == {"vip_news", "vip"}
    assert await tagged.where(field("tags", "has_any", ["NEWS", "other"])) == {"vip_news", "other"}


async def test_tags_has_all_ignores_case(tagged: Dataset) -> None:
    assert await tagged.where(field("tags", "has_all", ["news", "Vip"])) == {"vip_news"}
    assert await tagged.where(field("tags", "has_all", ["vip"])) == {"vip_news", "vip"}


async def test_tags_has_none_matches_empty_list(tagged: Dataset) -> None:
    assert await tagged.where(field("tags", "has_none", ["VIP"])) == {"other", "untagged"}


async def test_tags_is_null_means_empty_list(tagged: Dataset) -> None:
    assert await tagged.where(field("tags", "is_null")) == {"untagged"}
    assert await tagged.where(field("tags", "is_not_null")) == {"vip_news", "vip", "other"}


async def test_custom_list_ignores_non_string_elements(data: Dataset) -> None:
    await data.declare("hobbies", "list")
    await data.contact("mixed", attributes={"hobbies": ["Golf", 5, None, True, {"a": 1}, ["x"]]})
    await data.contact("only_non_strings", attributes={"hobbies": [5, None, False]})
    await data.contact("not_an_array", attributes={"hobbies": "golf"})
    await data.contact("missing", attributes={})
    await data.contact("chess", attributes={"hobbies": ["chess"]})

    assert await data.where(field("hobbies", "has_any", ["GOLF"])) == {"mixed"}
    assert await data.where(field("hobbies", "has_any", ["5"])) == set()
    assert await data.where(field("hobbies", "has_all", ["golf", "x"])) == set()
    assert await data.where(field("hobbies", "has_none", ["golf"])) == {
        "only_non_strings",
        "not_an_array",
        "missing",
        "chess",
    }
    assert await data.where(field("hobbies", "is_null")) == {
        "only_non_strings",
        "not_an_array",
        "missing",
    }
    assert await data.where(field("hobbies", "is_not_null")) == {"mixed", "chess"}


async def test_custom_text_field(data: Dataset) -> None:
    await data.declare("nickname", "text")
    await data.contact("set", attributes={"nickname": "Bobby"})
    await data.contact("empty", attributes={"nickname": ""})
    await data.contact("number", attributes={"nickname": 42})
    await data.contact("missing", attributes={})

    nulls = {"empty", "number", "missing"}
    assert await data.where(field("nickname", "equals", "BOBBY")) == {"set"}
    assert await data.where(field("nickname", "contains", "obb")) == {"set"}
    assert await data.where(field("nickname", "not_contains", "obb")) == nulls
    assert await data.where(field("nickname", "not_in", ["x"])) == {"set", *nulls}
    assert await data.where(field("nickname", "is_null")) == nulls
    assert await data.where(field("nickname", "is_not_null")) == {"set"}


# -- fields derived from events ---------------------------------------------------------------
@pytest.fixture
async def openers(data: Dataset) -> Dataset:
    await data.contacts("three_opens", "one_open_five_clicks", "no_events")
    await data.events("three_opens", "open", 3)
    await data.events("one_open_five_clicks", "open", 1)
    await data.events("one_open_five_clicks", "click", 5)
    return data


async def test_derived_opens_count(openers: Dataset) -> None:
    where = openers.where
    assert await where(field("opens_count", "equals", 0)) == {"no_events"}
    assert await where(field("opens_count", "equals", 3)) == {"three_opens"}
    assert await where(field("opens_count", "not_equals", 1)) == {"three_opens", "no_events"}
    assert await where(field("opens_count", "gte", 1)) == {"three_opens", "one_open_five_clicks"}
    assert await where(field("opens_count", "gt", 2)) == {"three_opens"}
    assert await where(field("opens_count", "lt", 2)) == {"one_open_five_clicks", "no_events"}
    assert await where(field("opens_count", "lte", 0)) == {"no_events"}
    assert await where(field("opens_count", "in", [0, 3])) == {"three_opens", "no_events"}
    assert await where(field("opens_count", "not_in", [0])) == {
        "three_opens",
        "one_open_five_clicks",
    }
    assert await where(field("opens_count", "gt", -1)) == openers.everyone()
    assert await where(field("opens_count", "lt", 0)) == set()
    assert await where(field("opens_count", "not_equals", 0.5)) == openers.everyone()
    assert await where(field("opens_count", "is_null")) == set()
    assert await where(field("opens_count", "is_not_null")) == openers.everyone()


async def test_derived_clicks_count_counts_only_clicks(openers: Dataset) -> None:
    assert await openers.where(field("clicks_count", "gte", 5)) == {"one_open_five_clicks"}
    assert await openers.where(field("clicks_count", "equals", 0)) == {"three_opens", "no_events"}


async def test_derived_counts_are_all_time(data: Dataset) -> None:
    await data.contacts("old")
    await data.event("old", "open", NOW - 3650 * DAY)
    await data.event("old", "open", NOW + DAY)  # in the future of `now`: still an event

    assert await data.where(field("opens_count", "equals", 2)) == {"old"}


async def test_derived_last_open_at(data: Dataset) -> None:
    await data.contacts("recent", "old", "never_opened", "clicked_only")
    await data.event("recent", "open", NOW - 40 * DAY)
    await data.event("recent", "open", NOW - DAY)
    await data.event("old", "open", NOW - 40 * DAY)
    await data.event("clicked_only", "click", NOW - DAY)
    cutoff = iso(NOW - 30 * DAY)

    assert await data.where(field("last_open_at", "within_days", 30)) == {"recent"}
    assert await data.where(field("last_open_at", "gt", cutoff)) == {"recent"}
    assert await data.where(field("last_open_at", "gte", iso(NOW - DAY))) == {"recent"}
    assert await data.where(field("last_open_at", "lt", cutoff)) == {"old"}
    assert await data.where(field("last_open_at", "lte", iso(NOW - 40 * DAY))) == {"old"}
    assert await data.where(field("last_open_at", "is_null")) == {"never_opened", "clicked_only"}
    assert await data.where(field("last_open_at", "is_not_null")) == {"recent", "old"}
    assert await data.where(field("last_click_at", "within_days", 30)) == {"clicked_only"}
    assert await data.where(field("last_click_at", "is_null")) == {
        "recent",
        "old",
        "never_opened",
    }


# -- activity and deliverability --------------------------------------------------------------
async def test_activity_ever_and_never(openers: Dataset) -> None:
    assert await openers.where(activity("open", "ever")) == {
        "three_opens",
        "one_open_five_clicks",
    }
    assert await openers.where(activity("open", "never")) == {"no_events"}
    assert await openers.where(activity("click", "ever")) == {"one_open_five_clicks"}
    assert await openers.where(activity("click", "never")) == {"three_opens", "no_events"}


async def test_count_gte(openers: Dataset) -> None:
    assert await openers.where(activity("open", "count_gte", 3)) == {"three_opens"}
    assert await openers.where(activity("open", "count_gte", 1)) == {
        "three_opens",
        "one_open_five_clicks",
    }
    assert await openers.where(activity("open", "count_gte", 4)) == set()


async def test_count_gte_zero_matches_everyone(openers: Dataset) -> None:
    assert await openers.where(activity("open", "count_gte", 0)) == openers.everyone()


async def test_count_lte_includes_contacts_without_events(openers: Dataset) -> None:
    assert await openers.where(activity("open", "count_lte", 1)) == {
        "one_open_five_clicks",
        "no_events",
    }
    assert await openers.where(activity("open", "count_lte", 0)) == {"no_events"}
    assert await openers.where(activity("click", "count_lte", 4)) == {"three_opens", "no_events"}


async def test_count_eq_zero_includes_contacts_without_events(openers: Dataset) -> None:
    assert await openers.where(activity("open", "count_eq", 0)) == {"no_events"}
    assert await openers.where(activity("click", "count_eq", 0)) == {"three_opens", "no_events"}


async def test_count_eq(openers: Dataset) -> None:
    assert await openers.where(activity("open", "count_eq", 1)) == {"one_open_five_clicks"}
    assert await openers.where(activity("open", "count_eq", 3)) == {"three_opens"}
    assert await openers.where(activity("click", "count_eq", 5)) == {"one_open_five_clicks"}
    assert await openers.where(activity("open", "count_eq", 2)) == set()


async def test_days_window_last_includes_its_boundary(data: Dataset) -> None:
    await data.contacts("at_boundary", "just_outside", "recent", "none")
    await data.event("at_boundary", "open", NOW - 30 * DAY)
    await data.event("just_outside", "open", NOW - 30 * DAY - SECOND)
    await data.event("recent", "open", NOW - SECOND)

    window = {"days_window": last(30)}
    assert await data.where(activity("open", "ever", **window)) == {"at_boundary", "recent"}
    assert await data.where(activity("open", "never", **window)) == {"just_outside", "none"}
    assert await data.where(activity("open", "count_eq", 0, **window)) == {"just_outside", "none"}


async def test_days_window_more_than(data: Dataset) -> None:
    await data.contacts("at_boundary", "just_older", "old_and_recent", "recent", "none")
    await data.event("at_boundary", "open", NOW - 30 * DAY)
    await data.event("just_older", "open", NOW - 30 * DAY - SECOND)
    await data.event("old_and_recent", "open", NOW - 90 * DAY)
    await data.event("old_and_recent", "open", NOW - DAY)
    await data.event("recent", "open", NOW - DAY)

    window = {"days_window": more_than(30)}
    assert await data.where(activity("open", "ever", **window)) == {"just_older", "old_and_recent"}
    assert await data.where(activity("open", "never", **window)) == {
        "at_boundary",
        "recent",
        "none",
    }


async def test_days_window_counts_only_events_inside(data: Dataset) -> None:
    await data.contacts("two_recent_one_old", "one_recent", "none")
    await data.events("two_recent_one_old", "click", 2, at=NOW - DAY)
    await data.event("two_recent_one_old", "click", NOW - 100 * DAY)
    await data.event("one_recent", "click", NOW - DAY)

    window = {"days_window": last(7)}
    assert await data.where(activity("click", "count_gte", 2, **window)) == {"two_recent_one_old"}
    assert await data.where(activity("click", "count_eq", 1, **window)) == {"one_recent"}
    assert await data.where(activity("click", "count_lte", 1, **window)) == {"one_recent", "none"}
    old = {"days_window": more_than(7)}
    assert await data.where(activity("click", "count_eq", 1, **old)) == {"two_recent_one_old"}


@pytest.fixture
async def campaigns(data: Dataset) -> tuple[Dataset, UUID, UUID]:
    spring, autumn = uuid.uuid4(), uuid.uuid4()
    await data.contacts("spring", "autumn", "no_campaign", "spring_twice", "none")
    await data.event("spring", "open", NOW - DAY, spring)
    await data.event("autumn", "open", NOW - DAY, autumn)
    await data.event("no_campaign", "open", NOW - DAY, None)
    await data.event("spring_twice", "open", NOW - DAY, spring)
    await data.event("spring_twice", "open", NOW - 2 * DAY, spring)
    return data, spring, autumn


async def test_include_campaigns_keeps_only_those_campaigns(
    campaigns: tuple[Dataset, UUID, UUID],
) -> None:
    data, spring, autumn = campaigns
    only_spring = {"include_campaign_ids": [str(spring)]}
    assert await data.where(activity("open", "ever", **only_spring)) == {"spring", "spring_twice"}
    assert await data.where(activity("open", "never", **only_spring)) == {
        "autumn",
        "no_campaign",
        "none",
    }
    assert await data.where(activity("open", "count_gte", 2, **only_spring)) == {"spring_twice"}
    both = {"include_campaign_ids": [str(spring), str(autumn)]}
    assert await data.where(activity("open", "count_eq", 1, **both)) == {"spring", "autumn"}


async def test_exclude_campaigns_keeps_null_campaign_events(
    campaigns: tuple[Dataset, UUID, UUID],
) -> None:
    data, spring, _ = campaigns
    not_spring = {"exclude_campaign_ids": [str(spring)]}
    assert await data.where(activity("open", "ever", **not_spring)) == {"autumn", "no_campaign"}
    assert await data.where(activity("open", "never", **not_spring)) == {
        "spring",
        "spring_twice",
        "none",
    }
    assert await data.where(activity("open", "count_lte", 0, **not_spring)) == {
        "spring",
        "spring_twice",
        "none",
    }


async def test_empty_campaign_filters_mean_no_filter(
    campaigns: tuple[Dataset, UUID, UUID],
) -> None:
    data, _, _ = campaigns
    empty: dict[str, list[str]] = {"include_campaign_ids": [], "exclude_campaign_ids": []}
    assert await data.where(activity("open", "ever", **empty)) == {
        "spring",
        "autumn",
        "no_campaign",
        "spring_twice",
    }


async def test_campaign_filter_with_window_and_count(
    campaigns: tuple[Dataset, UUID, UUID],
) -> None:
    data, spring, _ = campaigns
    rule = activity(
        "open",
        "count_lte",
        1,
        days_window=last(1),
        include_campaign_ids=[str(spring)],
    )
    # spring_twice has one spring open inside the last day and one outside it.
    assert await data.where(rule) == data.everyone()
    rule["value"] = 0
    assert await data.where(rule) == {"autumn", "no_campaign", "none"}


@pytest.mark.parametrize("metric", ["bounce", "complaint", "delivered", "unsubscribe"])
async def test_deliverability_counts_its_metric(data: Dataset, metric: str) -> None:
    await data.contacts("twice", "once_long_ago", "other_metric", "none")
    await data.events("twice", metric, 2)
    await data.event("once_long_ago", metric, NOW - 400 * DAY)
    await data.event("other_metric", "open" if metric != "open" else "click", NOW - DAY)

    assert await data.where(activity(metric, "ever")) == {"twice", "once_long_ago"}
    assert await data.where(activity(metric, "count_gte", 2)) == {"twice"}
    assert await data.where(activity(metric, "count_eq", 0)) == {"other_metric", "none"}
    assert await data.where(activity(metric, "count_lte", 1)) == {
        "once_long_ago",
        "other_metric",
        "none",
    }
    assert await data.where(activity(metric, "ever", days_window=last(90))) == {"twice"}
    assert await data.where(activity(metric, "ever", days_window=more_than(90))) == {
        "once_long_ago"
    }


# -- membership and isp -----------------------------------------------------------------------
async def test_membership_in_means_member_of_at_least_one_list(data: Dataset) -> None:
    await data.contacts("on_a", "on_b", "on_both", "on_c", "on_none")
    a = await data.new_list("on_a", "on_both")
    b = await data.new_list("on_b", "on_both")
    await data.new_list("on_c")

    rule = {"kind": "membership", "operator": "in", "list_ids": [str(a), str(b)]}
    assert await data.where(rule) == {"on_a", "on_b", "on_both"}


async def test_membership_not_in_means_member_of_no_listed_list(data: Dataset) -> None:
    await data.contacts("on_a", "on_b", "on_both", "on_c", "on_none")
    a = await data.new_list("on_a", "on_both")
    b = await data.new_list("on_b", "on_both")
    await data.new_list("on_c")

    rule = {"kind": "membership", "operator": "not_in", "list_ids": [str(a), str(b)]}
    assert await data.where(rule) == {"on_c", "on_none"}


async def test_isp_in(data: Dataset) -> None:
    await data.contact("gmail", isp_id=1)
    await data.contact("outlook", isp_id=2)
    await data.contact("yahoo", isp_id=3)
    await data.contact("unknown", isp_id=None)

    assert await data.where({"kind": "isp", "operator": "in", "values": [1, 3]}) == {
        "gmail",
        "yahoo",
    }


async def test_isp_not_in_matches_null(data: Dataset) -> None:
    await data.contact("gmail", isp_id=1)
    await data.contact("outlook", isp_id=2)
    await data.contact("unknown", isp_id=None)

    assert await data.where({"kind": "isp", "operator": "not_in", "values": [1]}) == {
        "outlook",
        "unknown",
    }


# -- the universe and the shape of the tree ---------------------------------------------------
async def test_universe_is_union_of_contact_lists(data: Dataset) -> None:
    await data.contacts("on_a", "on_b", "on_both", "on_c", "on_none")
    a = await data.new_list("on_a", "on_both")
    b = await data.new_list("on_b", "on_both")
    await data.new_list("on_c")

    everyone = all_of(field("status", "equals", "subscribed"))
    assert await data.match(everyone, lists=[a, b]) == {"on_a", "on_b", "on_both"}
    assert await data.match(everyone, lists=[a]) == {"on_a", "on_both"}


async def test_no_list_ids_means_every_contact_of_the_account(data: Dataset) -> None:
    await data.contacts("on_a", "on_none")
    await data.new_list("on_a")

    assert await data.match(all_of(field("status", "equals", "subscribed"))) == {
        "on_a",
        "on_none",
    }


async def test_universe_applies_to_every_group(data: Dataset) -> None:
    await data.contacts("inside_opener", "inside_vip", "outside_opener", "outside_vip")
    await data.events("inside_opener", "open", 1)
    await data.events("outside_opener", "open", 1)
    await data.conn.execute(
        "UPDATE contacts SET tags = '{vip}' WHERE id = ANY($1::uuid[])",
        [data.ids["inside_vip"], data.ids["outside_vip"]],
    )
    universe = await data.new_list("inside_opener", "inside_vip")

    rules = any_of([activity("open", "ever")], [field("tags", "has_any", ["vip"])])
    assert await data.match(rules, lists=[universe]) == {"inside_opener", "inside_vip"}
    assert await data.match(rules) == data.everyone()


async def test_groups_are_ored_and_conditions_anded(data: Dataset) -> None:
    await data.contact("fr_sub", country="FR", status="subscribed")
    await data.contact("fr_unsub", country="FR", status="unsubscribed")
    await data.contact("de_sub", country="DE", status="subscribed")
    await data.contact("us_pending", country="US", status="pending")

    rules = any_of(
        [field("country", "equals", "fr"), field("status", "equals", "subscribed")],
        [field("status", "equals", "pending")],
    )
    assert await data.match(rules) == {"fr_sub", "us_pending"}


async def test_contact_matching_several_groups_is_counted_once(data: Dataset) -> None:
    await data.contact("both", country="FR", tags=["vip"])
    await data.contact("fr_only", country="FR")
    await data.events("both", "open", 2)
    await data.events("fr_only", "open", 1)
    lists = [await data.new_list("both", "fr_only"), await data.new_list("both")]

    rules = any_of(
        [field("country", "equals", "FR")],
        [field("tags", "has_any", ["VIP"])],
        [activity("open", "ever")],
        [activity("open", "count_gte", 2), field("country", "equals", "fr")],
    )
    assert await data.match(rules, lists=lists) == {"both", "fr_only"}


async def test_row_and_event_conditions_in_one_group(data: Dataset) -> None:
    await data.contact("sub_opener", status="subscribed")
    await data.contact("sub_silent", status="subscribed")
    await data.contact("unsub_opener", status="unsubscribed")
    await data.events("sub_opener", "open", 1)
    await data.events("unsub_opener", "open", 1)
    blocklist = await data.new_list("sub_silent")

    rules = all_of(
        field("status", "equals", "subscribed"),
        activity("open", "never"),
        {"kind": "membership", "operator": "not_in", "list_ids": [str(blocklist)]},
    )
    assert await data.match(rules) == set()
    rules = all_of(field("status", "equals", "subscribed"), activity("open", "ever"))
    assert await data.match(rules) == {"sub_opener"}


async def test_product_brief_example_segment(data: Dataset) -> None:
    await data.contacts("active", "stale", "unsubscribed_active", "outside")
    await data.conn.execute(
        "UPDATE contacts SET status = 'unsubscribed' WHERE id = $1",
        data.ids["unsubscribed_active"],
    )
    await data.event("active", "open", NOW - 29 * DAY)
    await data.event("stale", "open", NOW - 31 * DAY)
    await data.event("unsubscribed_active", "open", NOW - DAY)
    await data.event("outside", "open", NOW - DAY)
    universe = await data.new_list("active", "stale", "unsubscribed_active")

    rules = all_of(
        field("status", "equals", "subscribed"),
        activity("open", "count_gte", 1, days_window=last(30)),
    )
    assert await data.match(rules, lists=[universe]) == {"active"}


# -- the candidate form -----------------------------------------------------------------------
async def test_matching_among_returns_only_matching_candidates(
    data: Dataset, conn: asyncpg.Connection
) -> None:
    await data.contact("fr_a", country="FR")
    await data.contact("fr_b", country="FR")
    await data.contact("de", country="DE")
    other = await conn.fetchval("INSERT INTO accounts (name) VALUES ('other') RETURNING id")
    foreign = await conn.fetchval(
        "INSERT INTO contacts (account_id, email, status, country)"
        " VALUES ($1, 'x@example.com', 'subscribed', 'FR') RETURNING id",
        other,
    )
    query = await data.query(all_of(field("country", "equals", "fr")))

    candidates = [data.ids["fr_a"], data.ids["de"], foreign, uuid.uuid4()]
    assert await data.ids_of(compile_matching_among(query, candidates)) == [data.ids["fr_a"]]
    assert await data.ids_of(compile_matching_among(query, [])) == []


async def test_matching_among_narrows_event_and_list_subqueries(data: Dataset) -> None:
    await data.contacts("opener", "silent", "listed")
    await data.events("opener", "open", 2)
    listed = await data.new_list("listed", "opener")
    rules = any_of(
        [activity("open", "count_gte", 2)],
        [
            activity("open", "never"),
            {"kind": "membership", "operator": "in", "list_ids": [str(listed)]},
        ],
    )
    query = await data.query(rules, lists=[listed])

    for label in ("opener", "silent", "listed"):
        among = await data.ids_of(compile_matching_among(query, [data.ids[label]]))
        expected = [] if label == "silent" else [data.ids[label]]
        assert among == expected, label


async def test_deleted_contact_is_in_no_segment(data: Dataset) -> None:
    await data.contacts("kept", "deleted")
    await data.events("deleted", "open", 2)  # events outlive the contact (no foreign key)
    listed = await data.new_list("kept", "deleted")
    await data.conn.execute("DELETE FROM contacts WHERE id = $1", data.ids["deleted"])

    assert await data.where(activity("open", "ever")) == set()
    assert await data.where(activity("open", "never")) == {"kept"}
    assert await data.match(all_of(field("opens_count", "lte", 5)), lists=[listed]) == {"kept"}
    query = await data.query(all_of(activity("open", "count_gte", 2)))
    assert await data.ids_of(compile_matching_among(query, [data.ids["deleted"]])) == []


# -- isolation between accounts ---------------------------------------------------------------
async def _populate(data: Dataset, campaign: UUID) -> UUID:
    """One shape of data, inserted identically into any account; returns its list."""
    await data.contact("alice", country="FR", tags=["vip"], isp_id=1, attributes={"score": 5})
    await data.contact("bob", country="DE", isp_id=None, attributes={"score": "x"})
    await data.contact("carol", country="", tags=["news"], isp_id=2, attributes={})
    await data.events("alice", "open", 3)
    await data.event("bob", "click", NOW - 2 * DAY, campaign)
    await data.event("carol", "bounce", NOW - 200 * DAY)
    return await data.new_list("alice", "bob")


async def test_another_accounts_data_never_matches(data: Dataset, conn: asyncpg.Connection) -> None:
    campaign = uuid.uuid4()
    await data.declare("score", "number")
    own_list = await _populate(data, campaign)
    other_account = await conn.fetchval("INSERT INTO accounts (name) VALUES ('b') RETURNING id")
    other = Dataset(conn, other_account)

    def membership(op: str) -> dict[str, Any]:
        return {"kind": "membership", "operator": op, "list_ids": [str(own_list)]}

    cases: list[tuple[Rules, tuple[UUID, ...]]] = [
        (all_of(field("country", "not_equals", "fr")), ()),
        (all_of(field("tags", "has_none", ["vip"])), ()),
        (all_of(field("score", "is_null")), ()),
        (all_of(field("opens_count", "lte", 1)), ()),
        (all_of(field("last_open_at", "is_null")), ()),
        (all_of(activity("open", "never")), ()),
        (all_of(activity("open", "count_gte", 3)), ()),
        (all_of(activity("click", "ever", include_campaign_ids=[str(campaign)])), ()),
        (all_of(activity("bounce", "count_lte", 0)), ()),
        (all_of(membership("in")), ()),
        (all_of(membership("not_in")), ()),
        (all_of({"kind": "isp", "operator": "not_in", "values": [1]}), ()),
        (any_of([field("status", "equals", "subscribed")], [activity("open", "ever")]), ()),
        (all_of(field("status", "equals", "subscribed")), (own_list,)),
    ]
    before = [await data.match(rules, lists) for rules, lists in cases]

    # The same data in the other account, plus rows of the other account that point at this
    # account's contacts and list (bad data a buggy writer could produce).
    await other.declare("score", "number")
    other_list = await _populate(other, campaign)
    for label in ("alice", "bob", "carol"):
        await conn.execute(
            "INSERT INTO events (account_id, contact_id, type, campaign_id, occurred_at)"
            " VALUES ($1, $2, 'open', $3, $4)",
            other_account,
            data.ids[label],
            campaign,
            NOW - DAY,
        )
    await conn.execute(
        "INSERT INTO contact_list_members (list_id, contact_id, account_id) VALUES ($1, $2, $3)",
        own_list,
        other.ids["carol"],
        other_account,
    )

    after = [await data.match(rules, lists) for rules, lists in cases]
    assert after == before
    everyone = all_of(field("status", "equals", "subscribed"))
    assert await data.match(everyone, lists=[other_list]) == set()


# -- every operator and kind runs (tests/test_compiler_handlers.py: every one has a handler) --
SAMPLE_VALUES: dict[tuple[FieldType, str], Any] = {
    **{(FieldType.TEXT, op): "x" for op in OPERATORS_BY_TYPE[FieldType.TEXT]},
    **{(FieldType.NUMBER, op): 1 for op in OPERATORS_BY_TYPE[FieldType.NUMBER]},
    **{(FieldType.DATETIME, op): "2026-01-01" for op in OPERATORS_BY_TYPE[FieldType.DATETIME]},
    **{(FieldType.BOOLEAN, op): True for op in OPERATORS_BY_TYPE[FieldType.BOOLEAN]},
    **{(FieldType.LIST, op): ["x"] for op in OPERATORS_BY_TYPE[FieldType.LIST]},
    (FieldType.TEXT, "in"): ["x", "y"],
    (FieldType.TEXT, "not_in"): ["x", "y"],
    (FieldType.NUMBER, "in"): [1, 2.5],
    (FieldType.NUMBER, "not_in"): [1, 2.5],
    (FieldType.DATETIME, "within_days"): 30,
    (FieldType.DATETIME, "in_calendar"): {"unit": "week", "offset": -1},
    (FieldType.DATETIME, "anniversary_within_days"): 7,
}
CUSTOM_FIELDS = {f"custom_{t.value}": t for t in FieldType}


def _every_field_condition() -> list[dict[str, Any]]:
    specs = {name: spec.type for name, spec in BUILTIN_FIELDS.items()} | CUSTOM_FIELDS
    conditions = []
    for name, field_type in sorted(specs.items()):
        for op in sorted(OPERATORS_BY_TYPE[field_type]):
            if op == "anniversary_within_days" and name in ("last_open_at", "last_click_at"):
                continue  # refused: the anniversary of a latest event means nothing
            if op in ("is_null", "is_not_null"):
                conditions.append(field(name, op))
            else:
                conditions.append(field(name, op, SAMPLE_VALUES[(field_type, op)]))
    return conditions


def _every_other_condition(list_id: UUID) -> list[dict[str, Any]]:
    campaign = str(uuid.uuid4())
    out: list[dict[str, Any]] = []
    for metric in ("open", "click", "bounce", "complaint", "delivered", "unsubscribe"):
        operators = ["ever", "count_gte", "count_lte", "count_eq"]
        if metric in ("open", "click"):
            operators.append("never")
        for op in operators:
            for value in [None] if op in ("ever", "never") else [0, 1, 2]:
                out.append(activity(metric, op, value))
                out.append(activity(metric, op, value, days_window=last(30)))
                out.append(activity(metric, op, value, days_window=more_than(30)))
                if metric in ("open", "click"):
                    out.append(activity(metric, op, value, include_campaign_ids=[campaign]))
                    out.append(activity(metric, op, value, exclude_campaign_ids=[campaign]))
    for op in ("in", "not_in"):
        out.append({"kind": "membership", "operator": op, "list_ids": [str(list_id)]})
        out.append({"kind": "isp", "operator": op, "values": [1, 2]})
    return out


def test_every_field_operator_compiles_for_every_field_source() -> None:
    registry = FieldRegistry({name: t for name, t in CUSTOM_FIELDS.items()})
    sources = set()
    for condition in _every_field_condition():
        tree = parse_v2_rules(all_of(condition), registry)
        sources.add(tree.flat_groups()[0][0].field.source)  # type: ignore[union-attr]
        compiled = compile_member_ids(SegmentQuery(uuid.uuid4(), tree, (), NOW))
        assert compiled.sql.startswith("SELECT"), condition
    assert sources == set(FieldSource)


async def test_every_field_operator_runs_on_postgres(data: Dataset) -> None:
    for name, field_type in CUSTOM_FIELDS.items():
        await data.declare(name, field_type.value)
    await data.contacts("someone")
    list_id = await data.new_list("someone")
    failures = []
    for condition in _every_field_condition():
        for lists in ((), (list_id,)):
            try:
                await data.match(all_of(condition), lists)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                failures.append(f"{condition} lists={bool(lists)}: {exc!r}")
    assert failures == []


async def test_every_condition_kind_compiles_and_runs(data: Dataset) -> None:
    await data.contacts("someone")
    list_id = await data.new_list("someone")
    failures = []
    for condition in _every_other_condition(list_id):
        try:
            await data.match(all_of(condition))
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            failures.append(f"{condition}: {exc!r}")
    assert failures == []


async def test_compiled_query_binds_only_the_parameters_it_uses(data: Dataset) -> None:
    """PostgreSQL cannot type a placeholder the SQL never mentions, so every bound value must
    be used (`now` only by within_days, the universe only when there are list ids)."""
    await data.contact("paris", city="Paris")
    list_id = await data.new_list("paris")
    for lists in ((), (list_id,)):
        query = await data.query(all_of(field("city", "equals", "paris")), lists)
        for compiled in (
            compile_member_ids(query),
            compile_count(query),
            compile_matching_among(query, [data.ids["paris"]]),
        ):
            used = {int(n) for n in re.findall(r"\$(\d+)", compiled.sql)}
            assert used == set(range(1, len(compiled.params) + 1)), compiled.sql


async def test_count_gte_zero_with_window_or_campaigns_matches_everyone(data: Dataset) -> None:
    """count_gte 0 is TRUE; the window and campaign values it no longer needs must not stay
    bound (asyncpg refuses extra arguments, PostgreSQL cannot type unused ones)."""
    await data.contacts("opener", "silent")
    await data.events("opener", "open", 1, at=NOW - 100 * DAY)
    campaign = str(uuid.uuid4())

    for extra in (
        {"days_window": last(30)},
        {"days_window": more_than(30)},
        {"include_campaign_ids": [campaign]},
        {"exclude_campaign_ids": [campaign]},
    ):
        assert await data.where(activity("open", "count_gte", 0, **extra)) == data.everyone()
    assert await data.where(activity("bounce", "count_gte", 0, days_window=last(1))) == (
        data.everyone()
    )


# -- suspected product bugs (see the report) --------------------------------------------------
async def test_in_values_are_lowered_once_per_query_not_once_per_row(data: Dataset) -> None:
    """asyncpg prepares every statement and PostgreSQL switches a prepared statement to a
    generic plan after five runs. There `segments_lower_array($n)` is no longer folded into a
    constant and runs again for every contact row, many times slower for long value lists
    (docs/benchmarks.md, "Why the compiler writes SQL this way")."""
    for i in range(50):
        await data.contact(f"c{i}", country="FR")
    compiled = compile_count(await data.query(all_of(field("country", "in", ["fr", "de"]))))
    async with data.conn.transaction():
        try:
            await data.conn.execute("SET LOCAL track_functions = 'all'")
        except asyncpg.InsufficientPrivilegeError:
            pytest.skip("needs a superuser to count function calls")
        # The service's connections never use generic plans (worker.db), so the call is
        # folded to a constant at every execution, past the fifth one too.
        assert await data.conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
        for _ in range(7):
            assert await data.conn.fetchval(compiled.sql, *compiled.params) == 50
        calls = await data.conn.fetchval(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions"
            " WHERE funcname = 'segments_lower_array'"
        )
    assert calls <= 7
