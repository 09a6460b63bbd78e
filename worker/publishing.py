"""How this service puts a message on the wire: persistent JSON with a unique message_id and
the publication time, published with confirms (the channel is opened with
publisher_confirms=True, so `publish` returns only once the broker has the message)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from worker.messages import _Message

PUBLISHED_AT_HEADER = "x-published-at"  # epoch seconds (float): start of the lag clocks


def amqp_message(body: bytes, message_id: str | None = None) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id or str(uuid.uuid4()),
        timestamp=datetime.now(UTC),
        headers={PUBLISHED_AT_HEADER: time.time()},
    )


def contract_message(message: _Message, message_id: str | None = None) -> aio_pika.Message:
    return amqp_message(message.to_json(), message_id)


def published_at(message: AbstractIncomingMessage) -> float | None:
    """When the message was first published, if its publisher said."""
    value = (message.headers or {}).get(PUBLISHED_AT_HEADER)
    if isinstance(value, int | float):
        return float(value)
    if message.timestamp is not None:
        return message.timestamp.timestamp()
    return None
