"""Generated accounts for the preview tests (the demo generator, segments.demo.data), and the
rules they preview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from segments.demo.data import generate_rows, insert_account_setup
from tests.services import unique_name
from worker.compiler import SegmentQuery
from worker.rules import parse_rules
from worker.store import load_registry


@dataclass(frozen=True)
class Generated:
    account_id: UUID
    lists: dict[str, UUID]  # the demo's list keys -> ids
    contacts: int


async def generate_account(pool: asyncpg.Pool, contacts: int, events: int) -> Generated:
    async with pool.acquire() as conn, conn.transaction():
        account_id: UUID = await conn.fetchval(
            "INSERT INTO accounts (name) VALUES ($1) RETURNING id", unique_name("preview")
        )
        now = datetime.now(UTC)
        lists = await insert_account_setup(conn, account_id, now)
        await generate_rows(conn, account_id, contacts, events, now)
    async with pool.acquire() as conn:
        for table in ("contacts", "contact_list_members", "events"):
            await conn.execute(f"ANALYZE {table}")
    return Generated(account_id, lists, contacts)


def field(name: str, operator: str, value: Any = None) -> dict[str, Any]:
    condition = {"kind": "field", "field": name, "operator": operator}
    return condition if value is None else {**condition, "value": value}


def opened(days: int, at_least: int = 1) -> dict[str, Any]:
    return {
        "kind": "activity",
        "metric": "open",
        "operator": "count_gte",
        "value": at_least,
        "days_window": {"mode": "last", "days": days},
    }


# Rules of different shares of the universe: most, some, few contacts.
RULES: dict[str, dict[str, Any]] = {
    "subscribed": {"all": [field("status", "equals", "subscribed")]},
    "engaged": {"all": [field("status", "equals", "subscribed"), opened(30, 2)]},
    "rare": {"any": [field("country", "equals", "PT"), {"not": opened(365)}]},
}


async def query_of(
    pool: asyncpg.Pool, account_id: UUID, rules: dict[str, Any], lists: tuple[UUID, ...]
) -> SegmentQuery:
    async with pool.acquire() as conn:
        registry = await load_registry(conn, account_id)
    return SegmentQuery(account_id, parse_rules("v2", rules, registry), lists, datetime.now(UTC))


async def table_fingerprints(conn: asyncpg.Connection) -> dict[str, tuple[int, str]]:
    """Every table of the schema: its row count and a digest of its rows."""
    tables = await conn.fetch(
        """SELECT quote_ident(table_name) AS name FROM information_schema.tables
           WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
           ORDER BY table_name"""
    )
    assert len(tables) > 5  # the schema was found
    out = {}
    for table in tables:
        name = table["name"]  # from the catalogue, quoted
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))"
            f" AS digest FROM {name} t"
        )
        assert row is not None
        out[name] = (row["n"], row["digest"])
    return out
