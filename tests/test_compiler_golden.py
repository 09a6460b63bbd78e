"""Golden tests of the generated SQL: rule JSON in, the exact SQL text and parameters out.

One file per shape in tests/fixtures/compiler/ pins the query PostgreSQL runs, for review: a
change there is a change in what PostgreSQL runs (read the diff; the plan benchmarks in
docs/benchmarks.md measured these shapes, and `bench-*` are the benchmarked ones). A file is
SQL with a leading comment block:

    -- What the shape shows and why the SQL looks like this (free text, kept on update).
    -- form: count | member_ids | matching_among (candidates: [CONTACT])
    -- lists: the segment's lists (JSON)
    -- rules:
    -- the v2 rules (JSON)
    -- params:
    -- $1 = "00000000-0000-4000-8000-00000000000a"
    SELECT ...

Every golden query is also run on PostgreSQL, on a small seeded account, and its rows must be
the contacts the reference evaluator (tests/reference.py) says match.

To add a shape, write a file with the description, form, lists and rules, then fill in (or,
after a deliberate change of the compiler, rewrite) the params and SQL of every file with

    SEGMENTS_UPDATE_GOLDEN=1 .venv/bin/pytest -p no:cacheprovider tests/test_compiler_golden.py

and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from bench.shapes import SHAPES, bench_context
from tests.reference import Evaluator
from tests.reference_db import load_data
from worker.compiler import (
    CompiledQuery,
    SegmentQuery,
    compile_count,
    compile_matching_among,
    compile_member_ids,
)
from worker.rules import FieldRegistry, parse_v2_rules

FIXTURES = Path(__file__).parent / "fixtures" / "compiler"
UPDATE = os.environ.get("SEGMENTS_UPDATE_GOLDEN") == "1"

ACCOUNT = UUID("00000000-0000-4000-8000-00000000000a")
CONTACT = UUID("00000000-0000-4000-8000-0000000000d1")  # the candidate of matching_among
OTHER_CONTACT = UUID("00000000-0000-4000-8000-0000000000d0")  # a member id of no contact here
NOW = datetime(2026, 5, 21, 12, 0, tzinfo=UTC)
CUSTOM_FIELDS = {"plan": "text", "score": "number"}
REGISTRY = FieldRegistry.from_declarations(CUSTOM_FIELDS)
FORMS = ("count", "member_ids", "matching_among")


# -- the fixture files ------------------------------------------------------------------------
@dataclass(frozen=True)
class Golden:
    description: list[str]
    form: str
    lists: list[str]
    rules: Any
    params: list[str]  # rendered, one line per placeholder
    sql: str

    @classmethod
    def read(cls, path: Path) -> Golden:
        header: list[str] = []
        lines = path.read_text().splitlines()
        while lines and lines[0].startswith("--"):
            header.append(lines.pop(0).removeprefix("--").removeprefix(" "))
        keys = {line.split(":", 1)[0]: i for i, line in enumerate(header) if line.endswith(":")}
        form_at = next(i for i, line in enumerate(header) if line.startswith("form:"))
        lists_line = header[form_at + 1]
        return cls(
            description=header[:form_at],
            form=header[form_at].removeprefix("form:").strip(),
            lists=json.loads(lists_line.removeprefix("lists:")),
            rules=json.loads("\n".join(header[keys["rules"] + 1 : keys["params"]])),
            params=header[keys["params"] + 1 :],
            sql="\n".join(lines).strip(),
        )

    def query(self) -> SegmentQuery:
        tree = parse_v2_rules(self.rules, REGISTRY)
        return SegmentQuery(ACCOUNT, tree, tuple(UUID(x) for x in self.lists), NOW)

    def compile(self) -> CompiledQuery:
        assert self.form in FORMS, f"form must be one of {FORMS}"
        query = self.query()
        if self.form == "member_ids":
            return compile_member_ids(query)
        if self.form == "count":
            return compile_count(query)
        return compile_matching_among(query, [CONTACT])

    def write(self, path: Path, compiled: CompiledQuery) -> None:
        header = [
            *self.description,
            f"form: {self.form}",
            f"lists: {json.dumps(self.lists)}",
            "rules:",
            *pretty_json(self.rules).splitlines(),
            "params:",
            *render_params(compiled.params),
        ]
        comments = "\n".join(f"-- {line}".rstrip() for line in header)
        path.write_text(f"{comments}\n{compiled.sql}\n")


def pretty_json(value: Any, indent: str = "") -> str:
    """JSON with one condition a line (a condition is an object with a "kind")."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list) or not value or "kind" in value or len(flat) <= 40:
        return flat
    inner = indent + "  "
    if isinstance(value, dict) and len(value) == 1:  # {"any": [...]}, {"all": [...]}
        ((key, item),) = value.items()
        return f"{{{json.dumps(key)}: {pretty_json(item, indent)}}}"
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {pretty_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    items = [inner + pretty_json(v, inner) for v in value]
    return "[\n" + ",\n".join(items) + f"\n{indent}]"


def render_params(params: tuple[Any, ...]) -> list[str]:
    return [
        f"${i} = {json.dumps(value, default=str, ensure_ascii=False)}"
        for i, value in enumerate(params, start=1)
    ]


GOLDENS = {path.stem: path for path in sorted(FIXTURES.glob("*.sql"))}


@pytest.mark.parametrize("name", list(GOLDENS))
def test_golden_sql(name: str) -> None:
    golden = Golden.read(GOLDENS[name])
    compiled = golden.compile()
    if UPDATE:
        golden.write(GOLDENS[name], compiled)
        golden = Golden.read(GOLDENS[name])
    assert compiled.sql == golden.sql
    assert render_params(compiled.params) == golden.params


def test_there_are_goldens_of_every_form() -> None:
    assert {Golden.read(path).form for path in GOLDENS.values()} == set(FORMS)


def test_every_benchmarked_shape_is_pinned() -> None:
    ctx = bench_context(NOW)
    for make in SHAPES:
        shape = make(ctx)
        path = GOLDENS.get(f"bench-{shape.key}")
        assert path is not None, f"no fixture bench-{shape.key}.sql for {shape.title}"
        golden = Golden.read(path)
        assert (golden.form, golden.rules) == ("count", shape.rules), shape.key
        assert golden.lists == [str(i) for i in shape.list_ids(ctx)], shape.key


def test_member_ids_and_count_share_the_single_branch() -> None:
    golden = Golden.read(GOLDENS["single-group-field-rule"])
    assert golden.form == "member_ids"
    count = compile_count(golden.query())
    assert count.sql == golden.sql.replace("SELECT c.id", "SELECT count(*)", 1)
    assert render_params(count.params) == golden.params


# -- the golden SQL on PostgreSQL -------------------------------------------------------------
@dataclass(frozen=True)
class Seeded:
    conn: asyncpg.Connection
    evaluator: Evaluator
    contacts: list[UUID]


def _ids_named(rules: Any, key: str) -> set[str]:
    """Every id under `key` anywhere in the rules."""
    found: set[str] = set()
    if isinstance(rules, dict):
        for k, v in rules.items():
            found |= set(v) if k == key else _ids_named(v, key)
    elif isinstance(rules, list):
        for item in rules:
            found |= _ids_named(item, key)
    return found


def _cycle(values: list[Any], i: int) -> Any:
    return values[i % len(values)]


async def _seed(conn: asyncpg.Connection, goldens: list[Golden]) -> list[UUID]:
    """24 contacts with varied fields, events of every type around NOW, memberships of
    every list the goldens name and members of every segment they reference; contact 0 is
    CONTACT."""
    lists = sorted(
        {x for g in goldens for x in (*g.lists, *_ids_named(g.rules, "list_ids"))}, key=str
    )
    campaigns = sorted(
        {
            UUID(x)
            for g in goldens
            for key in ("include_campaign_ids", "exclude_campaign_ids")
            for x in _ids_named(g.rules, key)
        },
        key=str,
    )
    await conn.execute("INSERT INTO accounts (id, name) VALUES ($1, 'golden')", ACCOUNT)
    await conn.executemany(
        "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, $2, $3)",
        [(ACCOUNT, key, data_type) for key, data_type in CUSTOM_FIELDS.items()],
    )
    await conn.executemany(
        "INSERT INTO contact_lists (id, account_id, name) VALUES ($1, $2, 'golden')",
        [(UUID(x), ACCOUNT) for x in lists],
    )
    contacts = [CONTACT, *(UUID(int=CONTACT.int + 0x100 + i) for i in range(1, 24))]
    for i, contact in enumerate(contacts):
        attributes = {}
        if plan := _cycle(["pro", "enterprise", "free", None], i):
            attributes["plan"] = plan
        if (score := _cycle([10, 50, 95, "x", None], i)) is not None:
            attributes["score"] = score
        await conn.execute(
            "INSERT INTO contacts (id, account_id, email, status, country, city, tags, isp_id,"
            " attributes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            contact,
            ACCOUNT,
            f"golden{i}@example.com",
            _cycle(["subscribed", "unsubscribed", "Subscribed"], i),
            _cycle(["FR", "fr", "DE", "us", "at", None, ""], i),
            _cycle(["Paris", "Rome", "Roma", None], i),
            _cycle([["VIP"], ["vip", "churn-risk"], [], ["other"]], i),
            _cycle([1, 2, 3, 4, None], i),
            attributes,
            NOW - timedelta(days=i * 3),
        )
        for j, list_id in enumerate(lists):
            if (i + j + (i * j) // 4) % 3 != 1:
                await conn.execute(
                    "INSERT INTO contact_list_members (list_id, contact_id, account_id)"
                    " VALUES ($1, $2, $3)",
                    UUID(list_id),
                    contact,
                    ACCOUNT,
                )
        await conn.executemany(
            "INSERT INTO events (account_id, contact_id, type, campaign_id, occurred_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(ACCOUNT, contact, *event) for event in _events(i, campaigns)],
        )
    await _seed_referenced(conn, goldens, contacts)
    return contacts


async def _seed_referenced(
    conn: asyncpg.Connection, goldens: list[Golden], contacts: list[UUID]
) -> None:
    """The segments the goldens reference, each with its own members: segment j has contact
    i when (i + j) % (j + 2) == 0, and one contact of another account (never a match)."""
    segments = sorted({x for g in goldens for x in _ids_named(g.rules, "segment_ids")}, key=str)
    for j, segment_id in enumerate(segments):
        await conn.execute(
            """INSERT INTO segments (id, account_id, name, rules, status)
               VALUES ($1, $2, 'golden', '{"any": []}', 'DONE')""",
            UUID(segment_id),
            ACCOUNT,
        )
        members = [c for i, c in enumerate(contacts) if (i + j) % (j + 2) == 0]
        await conn.executemany(
            "INSERT INTO segment_members (segment_id, contact_id, account_id) VALUES ($1, $2, $3)",
            [(UUID(segment_id), c, ACCOUNT) for c in [*members, OTHER_CONTACT]],
        )


async def _segment_members(conn: asyncpg.Connection) -> dict[UUID, set[UUID]]:
    rows = await conn.fetch(
        "SELECT segment_id, contact_id FROM segment_members WHERE account_id = $1", ACCOUNT
    )
    members: dict[UUID, set[UUID]] = {}
    for row in rows:
        members.setdefault(row["segment_id"], set()).add(row["contact_id"])
    return members


def _events(i: int, campaigns: list[UUID]) -> list[tuple[str, UUID | None, datetime]]:
    """Contact i's events: i % 5 opens (of one campaign or none), i % 4 clicks (spread over
    campaigns), some bounces and complaints, older ones for higher i, and one open in the
    future (i % 9 == 3)."""
    events: list[tuple[str, UUID | None, datetime]] = []
    for k in range(i % 5):
        campaign = _cycle([None, *campaigns], i)
        events.append(("open", campaign, NOW - timedelta(days=i * 3 + k, hours=1)))
    for k in range(i % 4):
        campaign = _cycle([None, *campaigns], i + k)
        events.append(("click", campaign, NOW - timedelta(days=i * 7 + k, hours=2)))
    if i % 6 == 1:
        events.append(("bounce", None, NOW - timedelta(days=i * 2)))
    if i % 7 == 2:
        events.append(("complaint", None, NOW - timedelta(days=i)))
    if i % 9 == 3:
        events.append(("open", None, NOW + timedelta(days=1)))
    return events


@pytest.fixture(scope="module")
async def seeded(pool: asyncpg.Pool) -> AsyncIterator[Seeded]:
    """The seeded account, in a transaction rolled back at the end (its ids are fixed)."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            goldens = [Golden.read(path) for path in GOLDENS.values()]
            contacts = await _seed(conn, goldens)
            data = await load_data(conn, ACCOUNT)
            evaluator = Evaluator(data, ACCOUNT, NOW, await _segment_members(conn))
            yield Seeded(conn, evaluator, contacts)
        finally:
            await transaction.rollback()


@pytest.mark.parametrize("name", list(GOLDENS))
async def test_golden_sql_runs_and_matches_the_reference(name: str, seeded: Seeded) -> None:
    golden = Golden.read(GOLDENS[name])
    compiled = golden.compile()
    expected = seeded.evaluator.members("v2", golden.rules, [UUID(x) for x in golden.lists])
    rows = await seeded.conn.fetch(compiled.sql, *compiled.params)
    if golden.form == "count":
        assert [tuple(r) for r in rows] == [(len(expected),)]
        return
    assert all(len(r) == 1 for r in rows)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a contact appears twice"
    if golden.form == "member_ids":
        assert set(ids) == expected
        return
    assert set(ids) == expected & {CONTACT}
    # The same SQL over every seeded contact as candidates ($2).
    assert compiled.params[1] == [CONTACT]
    params = (compiled.params[0], seeded.contacts, *compiled.params[2:])
    assert {r[0] for r in await seeded.conn.fetch(compiled.sql, *params)} == expected


async def test_the_seeded_data_tells_the_goldens_apart(seeded: Seeded) -> None:
    """Every shape matches some of the seeded contacts and misses others, so comparing its rows
    with the reference above can fail; `constant-conditions` matches everyone by design."""
    everyone_or_no_one = set()
    for name, path in GOLDENS.items():
        golden = Golden.read(path)
        expected = seeded.evaluator.members("v2", golden.rules, [UUID(x) for x in golden.lists])
        if len(expected) in (0, len(seeded.contacts)):
            everyone_or_no_one.add(name)
    assert everyone_or_no_one == {"constant-conditions"}


def test_placeholders_are_numbered_from_one_without_gaps() -> None:
    for path in GOLDENS.values():
        golden = Golden.read(path)
        used = {int(n) for n in re.findall(r"\$(\d+)", golden.sql)}
        assert used == set(range(1, len(golden.params) + 1)), path.name
