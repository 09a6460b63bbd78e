"""`segments account delete`: remove every row of one account, in bounded batches.

An account can hold millions of contacts, events and segment members; one DELETE (or the
cascade from `accounts`) would hold locks and write WAL for minutes in one transaction. So:

1. The account is frozen in one transaction: its keys are revoked (the API refuses it from
   then on) and every segment gets a new generation and FAILED. A build already running
   for the old generation finds its generation moved and writes nothing; a queued
   `segment.*` message is stale; `contact.changed` and the scheduler only touch DONE,
   RUNNING or PENDING segments, so no worker builds for the account any more.
2. Segment members, events, list members and contacts go in batches of `batch_size` rows,
   one short transaction each, progress logged; then segments, lists, fields and keys.
3. The `accounts` row goes last: until then a rerun finds the account and carries on, so an
   interrupted delete is finished by running it again.

Messages still in the outbox for the account are published and find nothing to do.
"""

from __future__ import annotations

from uuid import UUID

import structlog

from worker.db import Conn

log = structlog.get_logger(__name__)

DEFAULT_BATCH_SIZE = 10_000
DELETED_REASON = "the account is being deleted"

# Each statement deletes at most $2 rows of segment/list $1 of account $3 (or of account $1)
# and is repeated until it deletes none. Batches are picked through an index on the scoping
# column; every table is also filtered by the account, so each statement stays on the
# account's shard when the data is distributed (docs/scaling.md).
_SEGMENT_MEMBERS = """DELETE FROM segment_members
    WHERE account_id = $3 AND segment_id = $1 AND contact_id IN (
        SELECT contact_id FROM segment_members
        WHERE account_id = $3 AND segment_id = $1 LIMIT $2)"""
_LIST_MEMBERS = """DELETE FROM contact_list_members
    WHERE account_id = $3 AND list_id = $1 AND contact_id IN (
        SELECT contact_id FROM contact_list_members
        WHERE account_id = $3 AND list_id = $1 LIMIT $2)"""
_EVENTS = """DELETE FROM events WHERE account_id = $3 AND ctid = ANY(ARRAY(
    SELECT ctid FROM events WHERE account_id = $1 LIMIT $2))"""
_CONTACTS = """DELETE FROM contacts WHERE account_id = $3 AND id IN (
    SELECT id FROM contacts WHERE account_id = $1 LIMIT $2)"""


async def freeze_account(conn: Conn, account_id: UUID) -> int:
    """Step 1: no key works and no worker builds for the account. Returns its segments."""
    async with conn.transaction():
        await conn.execute(
            """UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
               WHERE account_id = $1""",
            account_id,
        )
        status = await conn.execute(
            """UPDATE segments
               SET generation = generation + 1, status = 'FAILED', error_reason = $2,
                   total_count = NULL, updated_at = now()
               WHERE account_id = $1""",
            account_id,
            DELETED_REASON,
        )
    return int(status.split()[-1])


async def delete_account(
    conn: Conn, account_id: UUID, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict[str, int]:
    """Delete the account and all its data; returns rows deleted per table. Safe to rerun
    after an interruption. Returns {} if there is no such account (already deleted)."""
    if await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id) is None:
        return {}
    segments = await freeze_account(conn, account_id)
    log.info("account_delete.frozen", account_id=str(account_id), segments=segments)
    counts: dict[str, int] = {}
    for segment_id in await _ids(conn, "segments", account_id):
        counts["segment_members"] = counts.get("segment_members", 0) + await _batches(
            conn, _SEGMENT_MEMBERS, segment_id, batch_size, "segment_members", account_id
        )
    counts["events"] = await _batches(conn, _EVENTS, account_id, batch_size, "events", account_id)
    counts["contact_list_members"] = 0
    for list_id in await _ids(conn, "contact_lists", account_id):
        counts["contact_list_members"] += await _batches(
            conn, _LIST_MEMBERS, list_id, batch_size, "contact_list_members", account_id
        )
    counts["contacts"] = await _batches(
        conn, _CONTACTS, account_id, batch_size, "contacts", account_id
    )
    async with conn.transaction():
        # Small now: their large children are gone. The accounts row goes last (FKs cascade
        # to anything left, such as a segment created while the account was being emptied).
        for table in ("segments", "contact_lists", "contact_fields", "api_keys"):
            status = await conn.execute(
                f"DELETE FROM {table} WHERE account_id = $1",  # noqa: S608 (constant names)
                account_id,
            )
            counts[table] = int(status.split()[-1])
        await conn.execute("DELETE FROM accounts WHERE id = $1", account_id)
    log.info("account_delete.done", account_id=str(account_id), **counts)
    return counts


async def _ids(conn: Conn, table: str, account_id: UUID) -> list[UUID]:
    rows = await conn.fetch(
        f"SELECT id FROM {table} WHERE account_id = $1 ORDER BY id",  # noqa: S608 (constants)
        account_id,
    )
    return [r["id"] for r in rows]


async def _batches(
    conn: Conn, statement: str, scope: UUID, batch_size: int, table: str, account_id: UUID
) -> int:
    """Run `statement` until it deletes nothing; each run commits on its own."""
    total = 0
    while True:
        status = await conn.execute(statement, scope, batch_size, account_id)
        deleted = int(status.split()[-1])
        if not deleted:
            return total
        total += deleted
        log.info(
            "account_delete.batch",
            account_id=str(account_id),
            table=table,
            deleted=deleted,
            total=total,
        )
