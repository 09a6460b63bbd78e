"""Custom fields (`contact_fields`): declare, change type, remove. Shared by the API
(api_shim.fields) and the `segments field` command.

Stored values are never rewritten. A value reads as its field's declared type or as null
(docs/rules.md: a number field reads JSON numbers, so "42" stored as text reads as null once
the field is a number). So a type change is a change of the rules' meaning: every segment
that uses the field gets a new generation and is built again, ending DONE if its rules still
fit the new type, or FAILED ("the rules no longer fit this account's fields: ...") if an
operator or value does not (worker.builds). Segments that had failed because the field was
missing or of another type, and whose rules now fit, are built again too.

A field that a segment uses cannot be removed (`FieldInUse` names the segments).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from worker.db import Conn
from worker.lists import SegmentRef
from worker.outbox import enqueue_segment
from worker.rules import FieldCondition, FieldRegistry, RulesInvalid, parse_rules
from worker.rules.fields import BUILTIN_FIELDS, FieldSource, FieldType
from worker.store import load_registry

FIELD_TYPES = tuple(t.value for t in FieldType)
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}")
KEY_HELP = "1 to 100 letters, digits, '_', '.', ':' or '-', starting with a letter, digit or '_'"


class FieldInvalid(ValueError):
    """A key or type that cannot be declared; the message says why and what would do."""


class FieldInUse(Exception):
    def __init__(self, segments: Sequence[SegmentRef]) -> None:
        names = ", ".join(f"{s.name!r} ({s.id})" for s in segments)
        super().__init__(f"the field is used by segments {names}: change their rules first")
        self.segments = list(segments)


@dataclass(frozen=True)
class FieldChange:
    key: str
    data_type: str
    previous_type: str | None  # None: newly declared
    rebuilt: list[SegmentRef]  # segments built again for the new meaning


def check_key(key: str) -> str:
    if key in BUILTIN_FIELDS:
        raise FieldInvalid(
            f"{key!r} is a built-in field (a custom field of that name would be shadowed); "
            "choose another key"
        )
    if not _KEY.fullmatch(key):
        raise FieldInvalid(f"{key!r} is not a valid key: use {KEY_HELP}")
    return key


def check_type(data_type: str) -> str:
    if data_type not in FIELD_TYPES:
        raise FieldInvalid(f"unknown type {data_type!r}; one of {list(FIELD_TYPES)}")
    return data_type


async def all_fields(conn: Conn, account_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT key, data_type FROM contact_fields WHERE account_id = $1 ORDER BY key",
        account_id,
    )


async def declare_field(conn: Conn, account_id: UUID, key: str, data_type: str) -> FieldChange:
    """Declare the field, or change its type (then rebuild the segments that use it)."""
    check_key(key)
    check_type(data_type)
    async with conn.transaction():
        before = await _lock_fields(conn, account_id)
        previous = before.custom.get(key)
        if previous == data_type:
            return FieldChange(key, data_type, previous, [])
        await conn.execute(
            """INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, $2, $3)
               ON CONFLICT (account_id, key) DO UPDATE SET data_type = EXCLUDED.data_type""",
            account_id,
            key,
            data_type,
        )
        after = await load_registry(conn, account_id)
        rebuilt = await _rebuild_affected(conn, account_id, key, before, after)
    return FieldChange(key, data_type, previous.value if previous else None, rebuilt)


async def remove_field(conn: Conn, account_id: UUID, key: str) -> bool:
    """Undeclare the field (its stored values stay in `attributes`); False if it was not
    declared; FieldInUse if a segment uses it."""
    async with conn.transaction():
        registry = await _lock_fields(conn, account_id)
        if key not in registry.custom:
            return False
        rows = await _segments(conn, account_id)
        users = [_ref(r) for r in rows if _uses(r, key, registry)]
        if users:
            raise FieldInUse(users)
        await conn.execute(
            "DELETE FROM contact_fields WHERE account_id = $1 AND key = $2", account_id, key
        )
    return True


async def _lock_fields(conn: Conn, account_id: UUID) -> FieldRegistry:
    """The account's fields, with concurrent declarations of the account serialised (the
    account row's lock), so the segments rebuilt are judged against the fields as saved."""
    await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE", account_id)
    return await load_registry(conn, account_id)


async def _rebuild_affected(
    conn: Conn, account_id: UUID, key: str, before: FieldRegistry, after: FieldRegistry
) -> list[SegmentRef]:
    rebuilt = []
    for row in await _segments(conn, account_id):
        if _uses(row, key, before) or (not _fits(row, before) and _fits(row, after)):
            generation = await conn.fetchval(
                """UPDATE segments SET generation = generation + 1, status = 'PENDING',
                       total_count = NULL, error_reason = NULL, updated_at = now()
                   WHERE account_id = $1 AND id = $2 RETURNING generation""",
                account_id,
                row["id"],
            )
            await enqueue_segment(conn, "segment.updated", account_id, row["id"], generation)
            rebuilt.append(_ref(row))
    return rebuilt


async def _segments(conn: Conn, account_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT id, name, dialect, rules FROM segments WHERE account_id = $1
           ORDER BY name, id FOR UPDATE""",
        account_id,
    )


def _ref(row: asyncpg.Record) -> SegmentRef:
    return SegmentRef(row["id"], row["name"])


def _parsed(row: Any, registry: FieldRegistry) -> Any:
    try:
        return parse_rules(row["dialect"], row["rules"], registry)
    except RulesInvalid:
        return None


def _fits(row: asyncpg.Record, registry: FieldRegistry) -> bool:
    return _parsed(row, registry) is not None


def _uses(row: asyncpg.Record, key: str, registry: FieldRegistry) -> bool:
    tree = _parsed(row, registry)
    return tree is not None and any(
        isinstance(c, FieldCondition)
        and c.field.source is FieldSource.CUSTOM
        and c.field.name == key
        for c in tree.conditions()
    )
