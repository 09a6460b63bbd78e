"""Accounts and their API keys. Keys are random, shown once, and stored as sha256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from worker.db import Conn

ALL_SCOPES = ("segments:read", "segments:write", "contacts:write")
_KEY_PREFIX = "sk_"


def hash_api_key(key: str) -> bytes:
    # Keys carry 256 bits of randomness, so a fast hash is enough (no password stretching).
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class NewAccount:
    account_id: uuid.UUID
    api_key: str


async def create_api_key(
    conn: Conn, account_id: uuid.UUID, scopes: tuple[str, ...] = ALL_SCOPES
) -> str:
    unknown = set(scopes) - set(ALL_SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}; known: {list(ALL_SCOPES)}")
    key = _KEY_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_keys (account_id, key_hash, key_prefix, scopes) VALUES ($1, $2, $3, $4)",
        account_id,
        hash_api_key(key),
        key[:10],
        list(scopes),
    )
    return key


async def create_account(conn: Conn, name: str, scopes: tuple[str, ...] = ALL_SCOPES) -> NewAccount:
    async with conn.transaction():
        account_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO accounts (name) VALUES ($1) RETURNING id", name
        )
        key = await create_api_key(conn, account_id, scopes)
    return NewAccount(account_id, key)
