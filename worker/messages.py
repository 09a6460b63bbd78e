"""Message contracts (DESIGN.md 7), shared by the worker, the API shim and producers.

Bodies are UTF-8 JSON. Unknown keys are refused: a producer's typo should land in the
dead-letter queue with a reason, not be silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

EXCHANGE = "segments"
SEGMENT_ROUTING_KEYS = ("segment.created", "segment.updated", "segment.rebuild", "segment.refresh")
CONTACT_CHANGED = "contact.changed"
MAX_CONTACT_IDS = 1000


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
