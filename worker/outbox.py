"""The transactional outbox: messages are rows written in the same transaction as the data
they describe, so a message exists if and only if its data committed.

Writing (here, shared by the API shim, `segments import` and the demo): `enqueue_*` insert an
`outbox` row and NOTIFY the relay; both take effect at the caller's COMMIT. Publishing: the
outbox relay of every API process (`segments api`, `segments run`) sends rows to RabbitMQ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from worker.db import Conn
from worker.messages import CONTACT_CHANGED, MAX_CONTACT_IDS, ContactChanged, SegmentMessage

NOTIFY_CHANNEL = "segments_outbox"


async def enqueue(conn: Conn, routing_key: str, body: Mapping[str, Any]) -> None:
    """Add one message to the outbox. Call inside the transaction that writes its data."""
    await conn.execute(
        "INSERT INTO outbox (routing_key, body) VALUES ($1, $2)", routing_key, dict(body)
    )
    await notify_relay(conn)


async def notify_relay(conn: Conn) -> None:
    """Wake the relays: call in a transaction that wrote outbox rows. Delivered at COMMIT,
    once per transaction however many rows it wrote (and however many calls)."""
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)


async def enqueue_segment(
    conn: Conn, routing_key: str, account_id: UUID, segment_id: UUID, generation: int
) -> None:
    """segment.created | segment.updated | segment.rebuild for this generation."""
    message = SegmentMessage(
        schema_version=1, account_id=account_id, segment_id=segment_id, generation=generation
    )
    await enqueue(conn, routing_key, message.model_dump(mode="json", by_alias=True))


async def enqueue_contacts_changed(
    conn: Conn, account_id: UUID, contact_ids: Sequence[UUID]
) -> int:
    """contact.changed for these contacts, split into messages of at most 1000 ids (the
    contract's limit). Returns the number of messages written."""
    unique = list(dict.fromkeys(contact_ids))
    changed_at = datetime.now(UTC)
    count = 0
    for start in range(0, len(unique), MAX_CONTACT_IDS):
        message = ContactChanged(
            schema_version=1,
            account_id=account_id,
            contact_ids=unique[start : start + MAX_CONTACT_IDS],
            changed_at=changed_at,
        )
        await enqueue(conn, CONTACT_CHANGED, message.model_dump(mode="json", by_alias=True))
        count += 1
    return count
