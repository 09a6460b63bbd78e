"""Accounts and their API keys. Keys are random, shown once, and stored as sha256 hashes;
a listing shows a key's id, name, first characters and scopes, never the key."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from worker.db import Conn

# `keys:admin` creates, lists and revokes the account's keys over HTTP. A key that holds it
# can give itself any scope, so it is the account owner's scope: grant it deliberately.
KEYS_ADMIN = "keys:admin"
ALL_SCOPES = ("segments:read", "segments:write", "contacts:write", KEYS_ADMIN)
_KEY_PREFIX = "sk_"


def hash_api_key(key: str) -> bytes:
    # Keys carry 256 bits of randomness, so a fast hash is enough (no password stretching).
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class NewAccount:
    account_id: uuid.UUID
    api_key: str


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: everything but the key."""

    id: uuid.UUID
    name: str | None
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> KeyInfo:
        return cls(
            row["id"],
            row["name"],
            row["key_prefix"],
            tuple(row["scopes"]),
            row["created_at"],
            row["revoked_at"],
        )

    def shown(self) -> dict[str, Any]:
        """As the API and the command line show it (JSON-ready but for ids and times)."""
        return {**asdict(self), "scopes": list(self.scopes)}


@dataclass(frozen=True)
class IssuedKey:
    """A new key: the secret, shown this once, and what a listing will show of it."""

    key: str
    info: KeyInfo


_KEY_COLUMNS = "id, name, key_prefix, scopes, created_at, revoked_at"


def check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """The scopes without repeats, in the order given; ValueError naming the known ones."""
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {list(ALL_SCOPES)}")
    if not scopes:
        raise ValueError(f"give at least one scope of {list(ALL_SCOPES)}")
    return tuple(dict.fromkeys(scopes))


async def issue_api_key(
    conn: Conn,
    account_id: uuid.UUID,
    scopes: Sequence[str] = ALL_SCOPES,
    name: str | None = None,
) -> IssuedKey:
    key = _KEY_PREFIX + secrets.token_urlsafe(32)
    row = await conn.fetchrow(
        f"""INSERT INTO api_keys (account_id, key_hash, key_prefix, scopes, name)
            VALUES ($1, $2, $3, $4, $5) RETURNING {_KEY_COLUMNS}""",  # noqa: S608 (a constant)
        account_id,
        hash_api_key(key),
        key[:10],
        list(check_scopes(scopes)),
        name,
    )
    assert row is not None
    return IssuedKey(key, KeyInfo.from_row(row))


async def create_api_key(
    conn: Conn, account_id: uuid.UUID, scopes: Sequence[str] = ALL_SCOPES
) -> str:
    return (await issue_api_key(conn, account_id, scopes)).key


async def list_api_keys(conn: Conn, account_id: uuid.UUID) -> list[KeyInfo]:
    """All the account's keys, revoked ones included (they show when), oldest first."""
    rows = await conn.fetch(
        f"""SELECT {_KEY_COLUMNS} FROM api_keys WHERE account_id = $1
            ORDER BY created_at, id""",  # noqa: S608 (a constant)
        account_id,
    )
    return [KeyInfo.from_row(r) for r in rows]


async def revoke_api_key(conn: Conn, account_id: uuid.UUID, key_id: uuid.UUID) -> KeyInfo | None:
    """Revoke the key (at once: the next request with it is a 401); None if the account has
    no such key. Revoking a revoked key keeps its first revocation time."""
    row = await conn.fetchrow(
        f"""UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
            WHERE id = $1 AND account_id = $2 RETURNING {_KEY_COLUMNS}""",  # noqa: S608
        key_id,
        account_id,
    )
    return None if row is None else KeyInfo.from_row(row)


async def account_exists(conn: Conn, account_id: uuid.UUID) -> bool:
    return await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id) is not None


async def create_account(conn: Conn, name: str, scopes: tuple[str, ...] = ALL_SCOPES) -> NewAccount:
    async with conn.transaction():
        account_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO accounts (name) VALUES ($1) RETURNING id", name
        )
        key = await create_api_key(conn, account_id, scopes)
    return NewAccount(account_id, key)
