"""The Citus routing check (tests/routing.py) catches what it must, and every form the compiler
emits passes it. The suite-wide capture (tests/statement_capture.py) applies the same check to
every statement the service sends during the test run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.routing import unroutable
from tests.statement_capture import distribution
from tests.strategies import CUSTOM_FIELDS, nested_v2_rules
from worker.builds import _DIFF, _UNCHANGED, on_members
from worker.compiler import (
    SegmentQuery,
    compile_count,
    compile_explain,
    compile_matching_among,
    compile_member_ids,
)
from worker.rules import ActivityCondition, FieldRegistry, parse_rules

TABLES = distribution(Path(__file__).resolve().parent.parent / "sql")
REGISTRY = FieldRegistry.from_declarations(CUSTOM_FIELDS)  # what the rules draw from
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_distribution_is_read_from_the_migrations() -> None:
    assert TABLES["contacts"] == "account_id"
    assert TABLES["events"] == "account_id"
    assert TABLES["segment_members"] == "account_id"
    assert TABLES["accounts"] == "id"
    # Reference or local tables: no account to route by.
    assert "isp_aliases" not in TABLES
    assert "api_keys" not in TABLES
    assert "outbox" not in TABLES


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM contacts WHERE account_id = $1 AND status = 'subscribed'",
        "SELECT name FROM accounts WHERE id = $1",
        # pinned through a chain of equalities and a join
        """SELECT c.id FROM contacts c JOIN events e
               ON e.contact_id = c.id AND e.account_id = c.account_id
           WHERE c.account_id = $1::uuid""",
        # a correlated subquery pinned by its enclosing level
        """SELECT c.id FROM contacts c WHERE c.account_id = $1 AND NOT EXISTS (
               SELECT 1 FROM contact_list_members m
               WHERE m.contact_id = c.id AND m.account_id = c.account_id)""",
        # a CTE whose rows are one account's pins what joins it on account_id
        """WITH cand AS (SELECT id, account_id FROM contacts WHERE account_id = $1)
           SELECT e.contact_id FROM cand JOIN events e
               ON e.contact_id = cand.id AND e.account_id = cand.account_id""",
        "UPDATE segments SET status = 'DONE' WHERE id = $2 AND account_id = $1",
        "DELETE FROM segment_members WHERE account_id = $1 AND contact_id = ANY($2::uuid[])",
        "INSERT INTO segment_references (account_id, segment_id, referenced_segment_id) "
        "SELECT $1, $2, r FROM unnest($3::uuid[]) r",
        "SELECT id FROM isp_aliases",  # a reference table needs no account
        "CREATE INDEX ON events (account_id, type)",  # DDL is not routed
    ],
)
def test_statements_pinned_to_one_account_are_routable(sql: str) -> None:
    assert unroutable(sql, TABLES) == []


@pytest.mark.parametrize(
    ("sql", "culprit"),
    [
        ("SELECT count(*) FROM segment_members WHERE segment_id = $1", "segment_members"),
        ("SELECT count(*) FROM contacts WHERE account_id = ANY($1)", "contacts"),
        ("SELECT count(*) FROM contacts WHERE account_id = $1 OR status = 'x'", "contacts"),
        # joined on contact_id only: events is not pinned
        (
            """SELECT c.id FROM contacts c JOIN events e ON e.contact_id = c.id
               WHERE c.account_id = $1""",
            "events",
        ),
        # the subquery is not correlated on account_id
        (
            """SELECT c.id FROM contacts c WHERE c.account_id = $1 AND c.id IN (
                   SELECT contact_id FROM contact_list_members WHERE list_id = $2)""",
            "contact_list_members",
        ),
        ("UPDATE segments SET status = 'PENDING' WHERE id = $1", "segments"),
        ("DELETE FROM segment_references WHERE segment_id = $1", "segment_references"),
        ("INSERT INTO contacts (id, email) VALUES ($1, $2)", "INSERT INTO contacts"),
        ("WITH s AS (SELECT id FROM segments WHERE status = 'DONE') SELECT * FROM s", "segments"),
        ("SELECT 1 FROM contacts WHERE account_id = $1 UNION SELECT 1 FROM events", "events"),
    ],
)
def test_statements_not_pinned_are_caught(sql: str, culprit: str) -> None:
    problems = unroutable(sql, TABLES)
    assert any(p.startswith(culprit) for p in problems), problems


def test_a_statement_that_pins_one_table_of_two_names_the_other() -> None:
    problems = unroutable(
        "SELECT 1 FROM contacts c JOIN events e ON e.contact_id = c.id WHERE c.account_id = $1",
        TABLES,
    )
    assert problems == ["events (as e) is not pinned to one account"]


def _queries(rules: dict[str, Any], universe: tuple[uuid.UUID, ...]) -> list[str]:
    tree = parse_rules("v2", rules, REGISTRY)
    query = SegmentQuery(uuid.uuid4(), tree, universe, NOW)
    candidates = [uuid.uuid4(), uuid.uuid4()]
    counted = [c for c in tree.conditions() if isinstance(c, ActivityCondition)]
    member_ids = compile_member_ids(query)
    forms = [
        compile_count(query),
        member_ids,
        compile_matching_among(query, candidates),
        compile_explain(query, [tree.root, *tree.conditions()], counted, candidates[0]),
    ]
    # And what builds run on the member ids (worker.builds): a rebuild's check and step 1.
    return [f.sql for f in forms] + [on_members(t, member_ids) for t in (_UNCHANGED, _DIFF)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=nested_v2_rules(),
    universe=st.lists(st.uuids(), max_size=2).map(tuple),
)
def test_every_compiled_form_is_routable(
    rules: dict[str, Any], universe: tuple[uuid.UUID, ...]
) -> None:
    for sql in _queries(rules, universe):
        assert unroutable(sql, TABLES) == [], sql
