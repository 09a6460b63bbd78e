"""Reading segments and the account's field declarations from the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from worker.compiler import SegmentQuery
from worker.db import Conn
from worker.rules import FieldRegistry, RuleTree, parse_rules


async def load_registry(conn: Conn, account_id: UUID) -> FieldRegistry:
    rows = await conn.fetch(
        "SELECT key, data_type FROM contact_fields WHERE account_id = $1", account_id
    )
    return FieldRegistry.from_declarations({r["key"]: r["data_type"] for r in rows})


@dataclass(frozen=True)
class SegmentRules:
    segment_id: UUID
    account_id: UUID
    generation: int
    dialect: str
    rules: Any
    contact_list_ids: tuple[UUID, ...]
    timezone: str  # IANA name; calendar periods are local to it

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> SegmentRules:
        """From a row with id, account_id, generation, dialect, rules, contact_list_ids,
        timezone."""
        return cls(
            row["id"],
            row["account_id"],
            row["generation"],
            row["dialect"],
            row["rules"],
            tuple(row["contact_list_ids"]),
            row["timezone"],
        )

    def tree(self, registry: FieldRegistry) -> RuleTree:
        """The rules as the canonical tree; raises RulesInvalid if they no longer fit the
        account's fields (a custom field undeclared or retyped since the segment was saved)."""
        return parse_rules(self.dialect, self.rules, registry)

    def query(self, registry: FieldRegistry, now: datetime) -> SegmentQuery:
        """The segment's query at `now` (RulesInvalid as `tree`)."""
        return self.query_of(self.tree(registry), now)

    def query_of(self, tree: RuleTree, now: datetime) -> SegmentQuery:
        """The segment's query at `now`, its rules parsed already as `tree`."""
        return SegmentQuery(self.account_id, tree, self.contact_list_ids, now, self.timezone)


async def load_segment_rules(conn: Conn, segment_id: UUID) -> SegmentRules | None:
    row = await conn.fetchrow(
        """SELECT id, account_id, generation, dialect, rules, contact_list_ids, timezone
           FROM segments WHERE id = $1""",
        segment_id,
    )
    return None if row is None else SegmentRules.from_row(row)


FIND_UUID = (
    "the segment's uuid: the `id` the v2 API answers with "
    "(GET /api/v2/segments/?search=NAME lists them)"
)


class SegmentNotFound(LookupError):
    """What was given names no segment; the message says what to give instead."""


async def resolve_segment(conn: Conn, given: str, account_id: UUID | None) -> UUID:
    """The segment `given` names: its uuid, or its simple-API number within `account_id`."""
    try:
        segment_id = UUID(given)
    except ValueError:
        pass
    else:
        if account_id is not None and not await _belongs(conn, segment_id, account_id):
            raise SegmentNotFound(f"account {account_id} has no segment {segment_id}")
        return segment_id
    if not given.isdecimal():
        raise SegmentNotFound(f"{given!r} is not a segment: give {FIND_UUID}")
    if account_id is None:
        raise SegmentNotFound(
            f"{given} looks like a simple-API segment number, which is only unique within an "
            f"account: add --account ACCOUNT_ID, or give {FIND_UUID}"
        )
    found: UUID | None = await conn.fetchval(
        "SELECT id FROM segments WHERE account_id = $1 AND number = $2",
        account_id,
        int(given),
    )
    if found is None:
        raise SegmentNotFound(f"account {account_id} has no segment number {given}")
    return found


async def _belongs(conn: Conn, segment_id: UUID, account_id: UUID) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM segments WHERE id = $1 AND account_id = $2", segment_id, account_id
        )
    )
