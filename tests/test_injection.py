"""Hostile strings in every position of a rule: each is either matched literally (run on real
PostgreSQL and compared with a plain-Python reference) or rejected cleanly with RulesInvalid.
Never a database error, and never part of the SQL text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
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
from worker.rules import (
    FieldRegistry,
    RulesInvalid,
    RuleTree,
    parse_simple_rules,
    parse_v1_rules,
    parse_v2_rules,
)
from worker.rules.limits import (
    MAX_ARRAY_ITEMS,
    MAX_FIELD_NAME_LENGTH,
    MAX_RULES_BYTES,
    MAX_STRING_LENGTH,
)
from worker.store import load_registry

NOW = datetime(2026, 5, 21, 12, 0, tzinfo=UTC)

# Strings a rule may hold: each must be matched literally.
ACCEPTED = {
    "single-quote": "O'Brien",
    "double-quote": 'say "hi"',
    "two-quotes": "''",
    "percent": "%",
    "underscore": "_",
    "backslash": "\\",
    "like-pattern": "50%_off\\",
    "escape-sequence": "\\x27\\n",
    "drop-table": "'; DROP TABLE contacts; --",
    "or-true": "x' OR '1'='1",
    "placeholder": "$1",
    "dollar-quote": "$$; SELECT 1; $$",
    "cast": "'::text",
    "comment": "/* */ -- #",
    "regex-chars": ".*[a-z]+?^$|(){}",
    "emoji": "🎉🔥👩‍👩‍👧",
    "rtl": "שלום مرحبا\u200f!",
    "combining-marks": "Cafe\u0301",
    "zero-width": "a\u200bb",
    "whitespace": "a\n\tb ",
    "at-length-limit": "L" * MAX_STRING_LENGTH,
}
# Strings a rule may not hold, and the error each gives as a text value.
REJECTED = {
    "nul": ("a\x00b", "string_nul"),
    "lone-surrogate": ("a\ud800b", "string_unicode"),
    "over-length-limit": ("L" * (MAX_STRING_LENGTH + 1), "string_too_long"),
    "empty": ("", "string_empty"),
}
EVERY_STRING = {**ACCEPTED, **{label: s for label, (s, _) in REJECTED.items()}}
# Custom field keys: any text PostgreSQL can store (jsonb and text cannot hold NUL).
CUSTOM_KEYS = {
    label: s for label, s in ACCEPTED.items() if label not in ("at-length-limit", "whitespace")
}
CUSTOM_KEYS |= {
    "at-name-limit": "k" * MAX_FIELD_NAME_LENGTH,
    "dotted": "c.email",
    "paren": "email) OR (1=1",
    "json-path": "{a,b}",
    "arrow": "a'->>'b",
}


def v2(*conditions: Any) -> dict[str, Any]:
    return {"any": [{"all": list(conditions)}]}


def field(name: str, operator: str, value: Any) -> dict[str, Any]:
    return {"kind": "field", "field": name, "operator": operator, "value": value}


# -- a plain-Python reference of the text operators (docs/rules.md) --------------------------
def text_reference(operator: str, value: str, stored: str | None) -> bool:
    have, want = (stored or "").lower(), value.lower()
    present = have != ""
    return {
        "equals": present and have == want,
        "not_equals": have != want,
        "contains": present and want in have,
        "not_contains": want not in have,
        "starts_with": present and have.startswith(want),
        "in": present and have in (want, "zz-other"),
        "not_in": have not in (want, "zz-other"),
    }[operator]


def rule_value(operator: str, value: str) -> Any:
    return [value, "zz-other"] if operator in ("in", "not_in") else value


TEXT_OPERATORS = ["equals", "not_equals", "contains", "not_contains", "starts_with", "in", "not_in"]


@dataclass
class Population:
    conn: asyncpg.Connection
    account_id: UUID
    stored: dict[UUID, dict[str, Any]]  # contact id -> the values stored for it

    async def run(self, tree: RuleTree) -> set[UUID]:
        """Members by all three compiled forms (they must agree)."""
        query = SegmentQuery(self.account_id, tree, (), NOW)
        members = await self._ids(compile_member_ids(query))
        count = compile_count(query)
        assert await self.conn.fetchval(count.sql, *count.params) == len(members)
        among = await self._ids(compile_matching_among(query, list(self.stored)))
        assert among == members
        return members

    async def _ids(self, compiled: CompiledQuery) -> set[UUID]:
        rows = await self.conn.fetch(compiled.sql, *compiled.params)
        ids = [r[0] for r in rows]
        assert len(ids) == len(set(ids))
        return set(ids)

    def expect(self, predicate: Callable[[dict[str, Any]], bool]) -> set[UUID]:
        return {cid for cid, values in self.stored.items() if predicate(values)}


@pytest.fixture
async def population(conn: asyncpg.Connection, account_id: UUID) -> Population:
    """Contacts whose company, tags and custom text hold each accepted string: alone, inside
    other text, upper-cased; plus null and '' and plain values as near misses."""
    await conn.execute(
        "INSERT INTO contact_fields (account_id, key, data_type)"
        " VALUES ($1, 'nick', 'text'), ($1, 'labels', 'list')",
        account_id,
    )
    variants: list[str | None] = [None, "", "plain", "50 off", "Obrien", "Cafe", "%%"]
    for s in ACCEPTED.values():
        variants += [s, f"<{s}>", s.upper(), f"{s}tail"]
    stored: dict[UUID, dict[str, Any]] = {}
    for i, text in enumerate(variants):
        tags = [] if not text else [text, "other"]
        values = {"company": text, "tags": tags, "nick": text}
        contact_id = await conn.fetchval(
            "INSERT INTO contacts (account_id, email, status, company, tags, attributes)"
            " VALUES ($1, $2, 'subscribed', $3, $4, $5) RETURNING id",
            account_id,
            f"c{i}@example.com",
            text,
            tags,
            {"nick": text, "labels": tags},
        )
        stored[contact_id] = values
    return Population(conn, account_id, stored)


async def _registry(population: Population) -> FieldRegistry:
    return await load_registry(population.conn, population.account_id)


# -- accepted strings match literally ---------------------------------------------------------
@pytest.mark.parametrize("label", list(ACCEPTED))
async def test_text_value_matches_literally(population: Population, label: str) -> None:
    s = ACCEPTED[label]
    registry = await _registry(population)
    for column in ("company", "nick"):
        for operator in TEXT_OPERATORS:
            tree = parse_v2_rules(v2(field(column, operator, rule_value(operator, s))), registry)
            expected = {
                cid
                for cid, stored in population.stored.items()
                if text_reference(operator, s, stored[column])
            }
            assert await population.run(tree) == expected, (column, operator)


@pytest.mark.parametrize("label", list(ACCEPTED))
async def test_list_element_matches_literally(population: Population, label: str) -> None:
    s = ACCEPTED[label]
    registry = await _registry(population)

    def tags_hold(values: dict[str, Any], wanted: list[str]) -> list[bool]:
        have = {t.lower() for t in values["tags"]}
        return [w.lower() in have for w in wanted]

    for name in ("tags", "labels"):
        for operator, check in (
            ("has_any", lambda v: any(tags_hold(v, [s]))),
            ("has_all", lambda v: all(tags_hold(v, [s, "OTHER"]))),
            ("has_none", lambda v: not any(tags_hold(v, [s]))),
        ):
            value = [s, "OTHER"] if operator == "has_all" else [s]
            tree = parse_v2_rules(v2(field(name, operator, value)), registry)
            assert await population.run(tree) == population.expect(check), (name, operator)


@pytest.mark.parametrize("label", ["like-pattern", "drop-table", "emoji", "combining-marks"])
async def test_v1_and_simple_values_match_literally(population: Population, label: str) -> None:
    s = ACCEPTED[label]
    registry = await _registry(population)
    expected = population.expect(lambda v: text_reference("contains", s, v["company"]))
    v1 = {"matchType": "any", "filters": [{"field": "company", "operator": "contains", "value": s}]}
    assert await population.run(parse_v1_rules(v1, registry)) == expected
    simple = [{"field": "company", "operator": "contains", "value": s}]
    assert await population.run(parse_simple_rules(simple, registry)) == expected


async def test_like_pattern_characters_are_literal(population: Population) -> None:
    """contains "50%_off\\" matches only text holding that exact substring."""
    registry = await _registry(population)
    tree = parse_v2_rules(v2(field("company", "contains", "50%_off\\")), registry)
    matched = {population.stored[c]["company"] for c in await population.run(tree)}
    assert matched == {"50%_off\\", "<50%_off\\>", "50%_OFF\\", "50%_off\\tail"}


async def test_the_largest_array_of_strings_within_the_size_limit_runs(
    population: Population,
) -> None:
    registry = await _registry(population)
    s = ACCEPTED["at-length-limit"]
    fits = MAX_RULES_BYTES // (len(s) + 3) - 1  # each element costs its quotes and a comma
    values = [s, *(f"{i:04d}" + s[4:] for i in range(fits - 1))]
    tree = parse_v2_rules(v2(field("company", "in", values)), registry)
    expected = population.expect(lambda v: (v["company"] or "").lower() == s.lower())
    assert await population.run(tree) == expected
    assert len(expected) == 2  # the string itself and its upper-case twin


def test_a_full_array_of_strings_at_the_length_limit_is_rejected_by_size() -> None:
    s = ACCEPTED["at-length-limit"]
    values = [f"{i:04d}" + s[4:] for i in range(MAX_ARRAY_ITEMS)]
    with pytest.raises(RulesInvalid) as caught:
        parse_v2_rules(v2(field("company", "in", values)), FieldRegistry.builtin_only())
    assert [(e.loc, e.type) for e in caught.value.errors] == [("rules_json", "rules_too_large")]


async def test_sql_text_never_depends_on_values(population: Population) -> None:
    registry = await _registry(population)

    def compiled(s: str) -> CompiledQuery:
        rules = {
            "any": [
                {
                    "all": [
                        field("company", "contains", s),
                        field("nick", "not_in", [s, s]),
                        field("tags", "has_all", [s]),
                    ]
                },
                {"all": [field("email", "starts_with", s)]},
            ]
        }
        tree = parse_v2_rules(rules, registry)
        return compile_member_ids(SegmentQuery(population.account_id, tree, (), NOW))

    benign = compiled("benign")
    for label, s in ACCEPTED.items():
        hostile = compiled(s)
        assert hostile.sql == benign.sql, label
        assert [p for p in hostile.params if p not in (s, [s], [s, s])] == [
            p for p in benign.params if p not in ("benign", ["benign"], ["benign", "benign"])
        ], label


# -- rejected strings are rule errors at the value --------------------------------------------
@pytest.mark.parametrize("label", list(REJECTED))
def test_rejected_text_values_are_rule_errors(label: str) -> None:
    s, error_type = REJECTED[label]
    at = "rules_json.any[0].all[0].value"
    for name, operator, value, loc in [
        ("company", "equals", s, at),
        ("company", "not_contains", s, at),
        ("email", "starts_with", s, at),
        ("city", "in", ["ok", s], at + "[1]"),
        ("tags", "has_any", ["ok", s], at + "[1]"),
        ("tags", "has_none", [s], at + "[0]"),
    ]:
        with pytest.raises(RulesInvalid) as info:
            parse_v2_rules(v2(field(name, operator, value)), FieldRegistry.builtin_only())
        assert [(e.loc, e.type) for e in info.value.errors] == [(loc, error_type)], name


@pytest.mark.parametrize("label", list(REJECTED))
def test_rejected_values_in_v1_and_simple_are_rule_errors(label: str) -> None:
    s, error_type = REJECTED[label]
    registry = FieldRegistry.builtin_only()
    v1 = {"matchType": "all", "filters": [{"field": "company", "operator": "eq", "value": s}]}
    with pytest.raises(RulesInvalid) as info:
        parse_v1_rules(v1, registry)
    assert [(e.loc, e.type) for e in info.value.errors] == [("filters[0].value", error_type)]
    simple = [{"field": "company", "operator": "contains", "value": s}]
    with pytest.raises(RulesInvalid) as info:
        parse_simple_rules(simple, registry)
    assert [(e.loc, e.type) for e in info.value.errors] == [("rules[0].value", error_type)]


# -- every other position: never a crash, always a located rule error -------------------------
C = "rules_json.any[0].all[0]"
CAMPAIGN = "5f1e2b7c-7d0c-4b5e-8a59-3f2c1d0e9a11"
# position -> (body with the string placed there, the location of the error)
POSITIONS: dict[str, Callable[[str], tuple[Any, str]]] = {
    "kind": lambda s: (v2({"kind": s}), f"{C}.kind"),
    "field-name": lambda s: (v2(field(s, "equals", "x")), f"{C}.field"),
    "operator": lambda s: (v2(field("email", s, "x")), f"{C}.operator"),
    "number-value": lambda s: (v2(field("opens_count", "gt", s)), f"{C}.value"),
    "number-element": lambda s: (v2(field("clicks_count", "in", [1, s])), f"{C}.value[1]"),
    "datetime-value": lambda s: (v2(field("created_at", "lt", s)), f"{C}.value"),
    "within-days": lambda s: (v2(field("last_open_at", "within_days", s)), f"{C}.value"),
    "is-null-value": lambda s: (v2(field("city", "is_null", s)), f"{C}.value"),
    "metric": lambda s: (
        v2({"kind": "activity", "metric": s, "operator": "ever"}),
        f"{C}.metric",
    ),
    "count-value": lambda s: (
        v2({"kind": "activity", "metric": "open", "operator": "count_gte", "value": s}),
        f"{C}.value",
    ),
    "days-window-mode": lambda s: (
        v2(
            {
                "kind": "deliverability",
                "metric": "bounce",
                "operator": "ever",
                "days_window": {"mode": s, "days": 3},
            }
        ),
        f"{C}.days_window.mode",
    ),
    "days": lambda s: (
        v2(
            {
                "kind": "activity",
                "metric": "click",
                "operator": "ever",
                "days_window": {"mode": "last", "days": s},
            }
        ),
        f"{C}.days_window.days",
    ),
    "campaign-id": lambda s: (
        v2(
            {
                "kind": "activity",
                "metric": "open",
                "operator": "ever",
                "exclude_campaign_ids": [CAMPAIGN, s],
            }
        ),
        f"{C}.exclude_campaign_ids[1]",
    ),
    "list-id": lambda s: (
        v2({"kind": "membership", "operator": "not_in", "list_ids": [s]}),
        f"{C}.list_ids[0]",
    ),
    "isp-value": lambda s: (v2({"kind": "isp", "operator": "in", "values": [s]}), f"{C}.values[0]"),
    "unknown-condition-key": lambda s: (
        v2({"kind": "field", "field": "city", "operator": "is_null", s: 1}),
        f"{C}.{s}",
    ),
    "unknown-days-window-key": lambda s: (
        v2(
            {
                "kind": "activity",
                "metric": "open",
                "operator": "ever",
                "days_window": {"mode": "last", "days": 3, s: 1},
            }
        ),
        f"{C}.days_window.{s}",
    ),
    "unknown-group-key": lambda s: (
        {"any": [{"all": [field("city", "is_null", None)], s: 1}]},
        f"rules_json.any[0].{s}",
    ),
    "unknown-top-level-key": lambda s: (
        {"any": [{"all": [field("city", "is_null", None)]}], s: 1},
        f"rules_json.{s}",
    ),
}


# Every string in every position, except where it is not an unknown key at all.
_STRING_POSITIONS = [
    (label, position)
    for position in POSITIONS
    for label, s in EVERY_STRING.items()
    if not (position.startswith("unknown-") and s in ("", "any", "all"))
]


@pytest.mark.parametrize(("label", "position"), _STRING_POSITIONS)
def test_string_in_a_non_text_position_is_a_located_rule_error(label: str, position: str) -> None:
    s = EVERY_STRING[label]
    body, loc = POSITIONS[position](s)
    if "\ud800" in s and position in ("unknown-condition-key", "unknown-days-window-key"):
        # pydantic cannot name a key that is not valid Unicode: it reports the object.
        loc = loc.rsplit(".", 1)[0]
    with pytest.raises(RulesInvalid) as info:
        parse_v2_rules(body, FieldRegistry.builtin_only())
    assert [e.loc for e in info.value.errors] == [loc]
    assert all(isinstance(e.msg, str) and e.type for e in info.value.errors)


@pytest.mark.parametrize("label", list(EVERY_STRING))
def test_string_as_v1_or_simple_operator_or_field_is_a_rule_error(label: str) -> None:
    s = EVERY_STRING[label]
    registry = FieldRegistry.builtin_only()
    for flt, loc in (
        ({"field": "email", "operator": s, "value": "x"}, "operator"),
        ({"field": s, "operator": "eq", "value": "x"}, "field"),
    ):
        with pytest.raises(RulesInvalid) as info:
            parse_v1_rules({"matchType": "all", "filters": [flt]}, registry)
        assert [e.loc for e in info.value.errors] == [f"filters[0].{loc}"]
    with pytest.raises(RulesInvalid) as info:
        parse_v1_rules(
            {"matchType": s, "filters": [{"field": "city", "operator": "exists"}]}, registry
        )
    assert [e.loc for e in info.value.errors] == ["matchType"]
    simple = [{"field": "email", "operator": s, "value": "x"}]
    with pytest.raises(RulesInvalid) as info:
        parse_simple_rules(simple, registry)
    assert [e.loc for e in info.value.errors] == ["rules[0].operator"]


# -- hostile custom field keys ----------------------------------------------------------------
@pytest.fixture
async def custom_keys(conn: asyncpg.Connection, account_id: UUID) -> Population:
    """A declared text field per hostile key; contact i holds "value-i" under key i only."""
    stored: dict[UUID, dict[str, Any]] = {}
    for i, key in enumerate(CUSTOM_KEYS.values()):
        await conn.execute(
            "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, $2, 'text')",
            account_id,
            key,
        )
        contact_id = await conn.fetchval(
            "INSERT INTO contacts (account_id, email, status, attributes)"
            " VALUES ($1, $2, 'subscribed', $3) RETURNING id",
            account_id,
            f"k{i}@example.com",
            {key: f"value-{i}", "decoy": f"value-{i}"},
        )
        stored[contact_id] = {"key": key, "value": f"value-{i}"}
    return Population(conn, account_id, stored)


async def test_hostile_custom_field_keys_are_read_literally(custom_keys: Population) -> None:
    registry = await _registry(custom_keys)
    for i, (label, key) in enumerate(CUSTOM_KEYS.items()):
        assert registry.lookup(key) is not None, label
        tree = parse_v2_rules(v2(field(key, "equals", f"VALUE-{i}")), registry)
        expected = {cid for cid, v in custom_keys.stored.items() if v["key"] == key}
        assert await custom_keys.run(tree) == expected, label
        tree = parse_v2_rules(v2({"kind": "field", "field": key, "operator": "is_null"}), registry)
        assert await custom_keys.run(tree) == set(custom_keys.stored) - expected, label


async def test_custom_key_sql_text_never_depends_on_the_key(custom_keys: Population) -> None:
    registry = await _registry(custom_keys)
    texts = set()
    for key in CUSTOM_KEYS.values():
        tree = parse_v2_rules(v2(field(key, "contains", "v")), registry)
        compiled = compile_count(SegmentQuery(custom_keys.account_id, tree, (), NOW))
        texts.add(compiled.sql)
        assert key in compiled.params
    assert len(texts) == 1


async def test_unstorable_or_overlong_field_names_are_rule_errors(
    conn: asyncpg.Connection, account_id: UUID
) -> None:
    too_long = "k" * (MAX_FIELD_NAME_LENGTH + 1)
    await conn.execute(
        "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, $2, 'text')",
        account_id,
        too_long,
    )
    registry = await load_registry(conn, account_id)
    for name, error_type in [
        ("a\x00b", "unknown_field"),
        ("a\ud800b", "string_unicode"),
        ("", "string_too_short"),
        (too_long, "string_too_long"),
    ]:
        with pytest.raises(RulesInvalid) as info:
            parse_v2_rules(v2(field(name, "equals", "x")), registry)
        assert [(e.loc, e.type) for e in info.value.errors] == [
            ("rules_json.any[0].all[0].field", error_type)
        ]


async def test_contacts_table_survives(population: Population) -> None:
    registry = await _registry(population)
    for s in ACCEPTED.values():
        await population.run(parse_v2_rules(v2(field("company", "equals", s)), registry))
    count = await population.conn.fetchval(
        "SELECT count(*) FROM contacts WHERE account_id = $1", population.account_id
    )
    assert count == len(population.stored)
