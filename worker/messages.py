"""Message contracts, shared by the worker, the API shim and producers: the bodies (pydantic
models) and the envelope every message of this service travels in.

Bodies are UTF-8 JSON. Unknown keys are refused: a producer's typo should land in the
dead-letter queue with a reason, not be silently ignored. The envelope: persistent, JSON, a
unique message_id, and the publication time in integer milliseconds (the start of the lag
clocks). Publishing itself is the outbox relay's job (worker/relay.py).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, TypeVar
from uuid import UUID

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

EXCHANGE = "segments"
SEGMENT_ROUTING_KEYS = ("segment.created", "segment.updated", "segment.rebuild", "segment.refresh")
CONTACT_CHANGED = "contact.changed"
MAX_CONTACT_IDS = 1000
# Published by the service for systems downstream (docs/changes.md); nobody in the service
# consumes it, so it may find no queue bound (the relay does not ask the broker to route it).
MEMBERSHIP_CHANGED = "membership.changed"
EVENT_ROUTING_KEYS = frozenset({MEMBERSHIP_CHANGED})
MAX_MEMBERSHIP_IDS = 1000  # entered and left together, per membership.changed message
Cause = Literal["rules", "data", "refresh", "cascade", "rebuild"]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_version: Literal[1] = Field(alias="schema")
    account_id: UUID

    @field_validator("schema_version", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        # Literal[1] alone would take `true` (True == 1 in Python).
        if isinstance(value, bool):
            raise ValueError("must be the number 1")
        return value

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class SegmentMessage(_Message):
    """segment.created | updated | rebuild | refresh: build this generation of the segment."""

    segment_id: UUID
    generation: Annotated[int, Field(ge=1, le=2**63 - 1)]


class ContactChanged(_Message):
    """contact.changed: these contacts (or their events or lists) changed; re-evaluate them."""

    contact_ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_CONTACT_IDS)]
    changed_at: AwareDatetime


Seq = Annotated[int, Field(ge=1, le=2**63 - 1)]


class MembershipChanged(_Message):
    """membership.changed: contacts that entered and left a segment, the feed's items
    seq_first .. seq_last (docs/changes.md); or, with `initial`, the segment's first build."""

    segment_id: UUID
    generation: Annotated[int, Field(ge=1, le=2**63 - 1)]
    at: AwareDatetime
    seq_first: Seq
    seq_last: Seq
    cause: Cause | None = None
    entered: Annotated[list[UUID], Field(max_length=MAX_MEMBERSHIP_IDS)] = []
    left: Annotated[list[UUID], Field(max_length=MAX_MEMBERSHIP_IDS)] = []
    initial: bool = False
    total_count: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MembershipChanged:
        ids = len(self.entered) + len(self.left)
        if self.initial:
            if self.total_count is None or ids or self.seq_first != self.seq_last:
                raise ValueError("an initial message has total_count, one seq and no ids")
        elif self.cause is None or not 1 <= ids <= MAX_MEMBERSHIP_IDS:
            raise ValueError(f"a change has a cause and 1 to {MAX_MEMBERSHIP_IDS} ids in all")
        elif ids != self.seq_last - self.seq_first + 1:
            raise ValueError("one seq per id: seq_last - seq_first + 1 ids")
        return self


M = TypeVar("M", bound=_Message)


class BadMessage(ValueError):
    """Not valid JSON or not of the schema: dead-lettered at once, never retried."""


def decode(model: type[M], body: bytes) -> M:
    """The body as `model`, strictly (JSON mode: no coercion of `true` to 1 or "3" to 3)."""
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise BadMessage(f"body is not UTF-8 JSON: {problems}") from None
        raise BadMessage(f"body does not match {model.__name__} schema 1: {problems}") from None


# Integer milliseconds since the epoch. Not a float: AMQP clients encode floats in headers as
# 32-bit, which moves a 2026 timestamp by tens of seconds.
PUBLISHED_AT_MS_HEADER = "x-published-at-ms"


def amqp_message(body: bytes, message_id: str | None = None) -> aio_pika.Message:
    """`body` in this service's envelope, stamped with the time of publication."""
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id or str(uuid.uuid4()),
        timestamp=datetime.now(UTC),
        headers={PUBLISHED_AT_MS_HEADER: time.time_ns() // 1_000_000},
    )


def contract_message(message: _Message, message_id: str | None = None) -> aio_pika.Message:
    return amqp_message(message.to_json(), message_id)


def published_at(message: AbstractIncomingMessage) -> float | None:
    """When the message was first published (epoch seconds), if its publisher said: our header
    to the millisecond, else the AMQP timestamp property (whole seconds)."""
    value = (message.headers or {}).get(PUBLISHED_AT_MS_HEADER)
    if isinstance(value, int) and not isinstance(value, bool):
        return value / 1000
    if message.timestamp is not None:
        return message.timestamp.timestamp()
    return None
