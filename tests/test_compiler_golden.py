"""Golden tests of the generated SQL: rule JSON in, the exact SQL text and parameters out.

They pin the shape of the queries for review (a change here is a change in what PostgreSQL
runs: read the diff). Their meaning is tested against real data in test_compiler_operators.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from textwrap import dedent
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

ACCOUNT = UUID("00000000-0000-4000-8000-00000000000a")
LIST = UUID("00000000-0000-4000-8000-0000000000b1")
CAMPAIGN = UUID("00000000-0000-4000-8000-0000000000c1")
CONTACT = UUID("00000000-0000-4000-8000-0000000000d1")
NOW = datetime(2026, 5, 21, 12, 0, tzinfo=UTC)


def sql(text: str) -> str:
    return dedent(text).strip()


def query(rules: dict[str, Any], lists: tuple[UUID, ...] = ()) -> SegmentQuery:
    return SegmentQuery(ACCOUNT, parse_v2_rules(rules, FieldRegistry({})), lists, NOW)


@dataclass(frozen=True)
class Golden:
    rules: dict[str, Any]
    lists: tuple[UUID, ...]
    form: str  # "member_ids", "count" or "matching_among" (candidates: [CONTACT])
    sql: str
    params: tuple[Any, ...]

    def compile(self) -> CompiledQuery:
        q = query(self.rules, self.lists)
        if self.form == "member_ids":
            return compile_member_ids(q)
        if self.form == "count":
            return compile_count(q)
        return compile_matching_among(q, [CONTACT])


GOLDENS = {
    # One group of row predicates: a single scan of the account's contacts.
    "single-group-field-rule": Golden(
        rules={
            "any": [
                {
                    "all": [
                        {
                            "kind": "field",
                            "field": "status",
                            "operator": "equals",
                            "value": "subscribed",
                        },
                        {"kind": "field", "field": "tags", "operator": "has_any", "value": ["VIP"]},
                    ]
                }
            ]
        },
        lists=(),
        form="member_ids",
        sql=sql(
            """
            SELECT c.id
            FROM contacts c
            WHERE c.account_id = $1::uuid
              AND lower(c.status) = lower($2::text)
              AND segments_lower_array(c.tags) && segments_lower_array($3::text[])
            """
        ),
        params=(ACCOUNT, "subscribed", ["VIP"]),
    ),
    # count_gte 3 in the last 30 days, only campaign C1, drawn from one list: a semi-join on
    # the grouped events; the window is a precomputed cutoff (now - 30 days).
    "activity-count-gte-window-include-campaigns": Golden(
        rules={
            "any": [
                {
                    "all": [
                        {
                            "kind": "activity",
                            "metric": "open",
                            "operator": "count_gte",
                            "value": 3,
                            "days_window": {"mode": "last", "days": 30},
                            "include_campaign_ids": [str(CAMPAIGN)],
                        }
                    ]
                }
            ]
        },
        lists=(LIST,),
        form="count",
        sql=sql(
            """
            SELECT count(*)
            FROM contacts c
            WHERE c.account_id = $1::uuid
              AND c.id IN (SELECT m.contact_id FROM contact_list_members m
                WHERE m.account_id = $1::uuid AND m.list_id = $2::uuid)
              AND c.id IN (SELECT e.contact_id FROM events e
                WHERE e.account_id = $1::uuid AND e.type = $6::text AND e.occurred_at >= $3::timestamptz AND e.campaign_id = ANY($4::uuid[])
                GROUP BY e.contact_id HAVING count(*) >= $5::bigint)
            """  # noqa: E501
        ),
        params=(
            ACCOUNT,
            LIST,
            datetime(2026, 4, 21, 12, 0, tzinfo=UTC),
            [CAMPAIGN],
            3,
            "open",
        ),
    ),
    # never: an anti-join, so contacts without any events match.
    "never-anti-join": Golden(
        rules={"any": [{"all": [{"kind": "activity", "metric": "click", "operator": "never"}]}]},
        lists=(),
        form="member_ids",
        sql=sql(
            """
            SELECT c.id
            FROM contacts c
            WHERE c.account_id = $1::uuid
              AND NOT EXISTS (SELECT 1 FROM (SELECT e.contact_id FROM events e
                WHERE e.account_id = $1::uuid AND e.type = $2::text) x WHERE x.contact_id = c.id)
            """
        ),
        params=(ACCOUNT, "click"),
    ),
    # Two groups OR-ed, one with an event condition: a UNION of branches, counted once.
    "two-group-or-with-activity-group": Golden(
        rules={
            "any": [
                {
                    "all": [
                        {
                            "kind": "field",
                            "field": "country",
                            "operator": "in",
                            "value": ["FR", "DE"],
                        }
                    ]
                },
                {
                    "all": [
                        {
                            "kind": "activity",
                            "metric": "open",
                            "operator": "ever",
                            "days_window": {"mode": "last", "days": 7},
                        }
                    ]
                },
            ]
        },
        lists=(),
        form="count",
        sql=sql(
            """
            SELECT count(*) FROM (
            SELECT c.id
            FROM contacts c
            WHERE c.account_id = $1::uuid
              AND lower(c.country) = ANY(segments_lower_array($2::text[]))
            UNION
            SELECT c.id
            FROM contacts c
            WHERE c.account_id = $1::uuid
              AND c.id IN (SELECT e.contact_id FROM events e
                WHERE e.account_id = $1::uuid AND e.type = $4::text AND e.occurred_at >= $3::timestamptz)
            ) matched
            """  # noqa: E501
        ),
        params=(ACCOUNT, ["FR", "DE"], datetime(2026, 5, 14, 12, 0, tzinfo=UTC), "open"),
    ),
    # The incremental form: the candidates ($2) read once, with their list ids, into a CTE
    # that every branch reads; event subqueries are narrowed to them.
    "matching-among": Golden(
        rules={
            "any": [
                {
                    "all": [
                        {"kind": "field", "field": "country", "operator": "equals", "value": "FR"}
                    ]
                },
                {
                    "all": [
                        {"kind": "activity", "metric": "open", "operator": "count_lte", "value": 2}
                    ]
                },
            ]
        },
        lists=(LIST,),
        form="matching_among",
        sql=sql(
            """
            WITH changed_contacts AS MATERIALIZED (
                SELECT c.*, ARRAY(SELECT m.list_id FROM contact_list_members m
                                  WHERE m.contact_id = c.id AND m.account_id = $1::uuid) AS list_ids
                FROM contacts c WHERE c.account_id = $1::uuid AND c.id = ANY($2::uuid[]))
            SELECT c.id
            FROM changed_contacts c
            WHERE c.account_id = $1::uuid
              AND c.list_ids && $3::uuid[]
              AND lower(c.country) = lower($4::text)
            UNION
            SELECT c.id
            FROM changed_contacts c
            WHERE c.account_id = $1::uuid
              AND c.list_ids && $3::uuid[]
              AND NOT EXISTS (SELECT 1 FROM (SELECT e.contact_id FROM events e
                WHERE e.account_id = $1::uuid AND e.type = $6::text AND e.contact_id = ANY($2::uuid[])
                GROUP BY e.contact_id HAVING NOT (count(*) <= $5::bigint)) x WHERE x.contact_id = c.id)
            """  # noqa: E501
        ),
        params=(ACCOUNT, [CONTACT], [LIST], "FR", 2, "open"),
    ),
}


@pytest.mark.parametrize("name", list(GOLDENS))
def test_golden_sql(name: str) -> None:
    golden = GOLDENS[name]
    compiled = golden.compile()
    assert compiled.sql == golden.sql
    assert compiled.params == golden.params


@pytest.mark.parametrize("name", list(GOLDENS))
async def test_golden_sql_is_valid_postgresql(name: str, conn: asyncpg.Connection) -> None:
    compiled = GOLDENS[name].compile()
    plan = await conn.fetch(f"EXPLAIN {compiled.sql}", *compiled.params)
    assert plan


def test_several_lists_are_compared_as_an_array_one_list_as_its_id() -> None:
    other = UUID("00000000-0000-4000-8000-0000000000b2")
    rules = {
        "any": [{"all": [{"kind": "membership", "operator": "not_in", "list_ids": [str(other)]}]}]
    }
    several = compile_member_ids(query(rules, lists=(LIST, other)))
    assert "m.list_id = ANY($2::uuid[]))" in several.sql
    assert "m.list_id = $3::uuid)" in several.sql
    assert several.params[1:3] == ([LIST, other], other)


def test_member_ids_and_count_share_the_single_branch() -> None:
    golden = GOLDENS["single-group-field-rule"]
    q = query(golden.rules)
    count = compile_count(q)
    assert count.sql == golden.sql.replace("SELECT c.id", "SELECT count(*)", 1)
    assert count.params == golden.params


def test_row_only_groups_share_one_branch() -> None:
    def cond(value: str) -> dict[str, Any]:
        return {"kind": "field", "field": "city", "operator": "equals", "value": value}

    compiled = compile_member_ids(
        query({"any": [{"all": [cond("Paris")]}, {"all": [cond("Rome"), cond("Roma")]}]})
    )
    assert compiled.sql == sql(
        """
        SELECT c.id
        FROM contacts c
        WHERE c.account_id = $1::uuid
          AND ((lower(c.city) = lower($2::text)) OR (lower(c.city) = lower($3::text) AND lower(c.city) = lower($4::text)))
        """  # noqa: E501
    )
    assert compiled.params == (ACCOUNT, "Paris", "Rome", "Roma")
