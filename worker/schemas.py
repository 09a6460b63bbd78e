"""JSON Schemas (draft 2020-12) of the message contracts, generated from `worker/messages.py`.

    python -m worker.schemas            # (re)write docs/schemas/*.schema.json
    python -m worker.schemas --check    # exit 1 if the committed files are not what this makes
    python -m worker.schemas --print    # print them (one JSON object keyed by file name)

The types and limits come from the pydantic models (the code that decodes every message), so
the files cannot say something the worker does not do; the words (titles, descriptions,
examples) are here. tests/test_docs.py keeps the committed files equal to this output.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.messages import (
    CONTACT_CHANGED,
    EXCHANGE,
    MAX_CONTACT_IDS,
    MAX_MEMBERSHIP_IDS,
    MEMBERSHIP_CHANGED,
    SEGMENT_ROUTING_KEYS,
    ContactChanged,
    MembershipChanged,
    SegmentMessage,
    _Message,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_DIR = Path("docs/schemas")

_ACCOUNT = "3f2c5a7e-9b1d-4c8e-a6f0-2d4b8c1e7a95"
_SEGMENT = "9c1a2b3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
_SCHEMA_FIELD = "Version of this message format: always 1."
_PROPERTIES = (
    "Body: UTF-8 JSON. Properties: content_type application/json, delivery_mode 2 "
    "(persistent), a unique message_id."
)


@dataclass(frozen=True)
class MessageDoc:
    file_name: str
    model: type[_Message]
    title: str
    description: str
    fields: dict[str, str]  # by the name on the wire (alias); every field must have one
    examples: tuple[dict[str, Any], ...]


MESSAGES = (
    MessageDoc(
        file_name="contact-changed.schema.json",
        model=ContactChanged,
        title=CONTACT_CHANGED,
        description=(
            f"Routing key `{CONTACT_CHANGED}` on the durable topic exchange `{EXCHANGE}`. "
            "These contacts, or their events or list memberships, changed: the worker "
            "re-evaluates them in every DONE segment of the account and changes membership and "
            "total_count in place. Published by producers and by the service's API (outbox). "
            f"{_PROPERTIES} Delivery is at least once; a repeated message is harmless. A body "
            "that does not match this schema is dead-lettered at once "
            "(x-segments-reason: bad_message)."
        ),
        fields={
            "schema": _SCHEMA_FIELD,
            "account_id": (
                "The account the contacts belong to. Ids of another account's contacts change "
                "nothing."
            ),
            "contact_ids": (
                f"Ids (contacts.id) of the contacts that changed, 1 to {MAX_CONTACT_IDS}: split "
                "larger changes into several messages. Deleted contacts may be named (they leave "
                "every segment); duplicates are ignored."
            ),
            "changed_at": (
                "When the change happened: an RFC 3339 date-time with an offset. Only measured "
                "(segments_change_lag_seconds): the worker always reads the contacts' current "
                "data."
            ),
        },
        examples=(
            {
                "schema": 1,
                "account_id": _ACCOUNT,
                "contact_ids": [
                    "0b8e4f6a-1c2d-4e3f-9a5b-6c7d8e9f0a1b",
                    "5d6e7f80-9a1b-4c2d-8e3f-4a5b6c7d8e9f",
                ],
                "changed_at": "2024-05-01T10:00:00Z",
            },
        ),
    ),
    MessageDoc(
        file_name="segment-message.schema.json",
        model=SegmentMessage,
        title="segment.*",
        description=(
            f"Routing keys {', '.join(f'`{k}`' for k in SEGMENT_ROUTING_KEYS)} on the durable "
            f"topic exchange `{EXCHANGE}`: build this generation of the segment. Published by "
            "the service's API (outbox) and its scheduler; outside producers change segments "
            f"through the HTTP API instead. {_PROPERTIES} Delivery is at least once; a repeated "
            "message is harmless. A body that does not match this schema is dead-lettered at "
            "once (x-segments-reason: bad_message)."
        ),
        fields={
            "schema": _SCHEMA_FIELD,
            "account_id": "The account the segment belongs to.",
            "segment_id": "The segment to build (segments.id).",
            "generation": (
                "The segment's generation this message is for (it goes up with every change of "
                "rules or lists). A message for an older generation than the segment's is "
                "ignored."
            ),
        },
        examples=(
            {
                "schema": 1,
                "account_id": _ACCOUNT,
                "segment_id": _SEGMENT,
                "generation": 3,
            },
        ),
    ),
    MessageDoc(
        file_name="membership-changed.schema.json",
        model=MembershipChanged,
        title=MEMBERSHIP_CHANGED,
        description=(
            f"Routing key `{MEMBERSHIP_CHANGED}` on the durable topic exchange `{EXCHANGE}`: "
            "contacts entered or left a segment (the changes feed's items seq_first to "
            "seq_last, one per contact), or, with `initial`, the segment's first build. "
            "Published by the service (outbox) in the transaction that changed the membership; "
            "bind a queue of your own to the routing key before you read the members (a "
            f"message finds no queue otherwise). {_PROPERTIES} Delivery is at least once, and "
            "for one segment in seq order: skip a message whose seq_last you have applied; a "
            "seq_first beyond the next one you expect means you missed changes, which the "
            "changes feed (GET /api/v2/segments/{id}/changes/?after=) still has."
        ),
        fields={
            "schema": _SCHEMA_FIELD,
            "account_id": "The account the segment belongs to.",
            "segment_id": "The segment whose membership changed (segments.id).",
            "generation": "The segment's generation (rules version) that made the change.",
            "at": "When the change was recorded: an RFC 3339 date-time with an offset.",
            "seq_first": (
                "The first feed seq this message carries. Seqs of a segment go 1, 2, 3, ... "
                "with no gaps, one per contact moved (the initial item takes one)."
            ),
            "seq_last": "The last feed seq this message carries (seq_first for the initial).",
            "cause": (
                "What moved the contacts: `rules` (rules changed), `data` (their data "
                "changed), `refresh` (time passed), `cascade` (a segment the rules reference "
                "changed), `rebuild` (a rebuild found a difference). Absent in the initial."
            ),
            "entered": (
                f"Contacts that entered. With `left`, 1 to {MAX_MEMBERSHIP_IDS} ids in all, "
                "seq_last - seq_first + 1 of them; larger changes come as several messages."
            ),
            "left": "Contacts that left.",
            "initial": (
                "True once per segment, after its first build: read its members then (GET "
                "/api/v2/segments/{id}/contacts/ or the export) and follow later messages."
            ),
            "total_count": "With `initial`: the members the first build found.",
        },
        examples=(
            {
                "schema": 1,
                "account_id": _ACCOUNT,
                "segment_id": _SEGMENT,
                "generation": 3,
                "at": "2026-05-01T10:00:12.345678+00:00",
                "seq_first": 41,
                "seq_last": 43,
                "cause": "data",
                "entered": [
                    "0b8e4f6a-1c2d-4e3f-9a5b-6c7d8e9f0a1b",
                    "5d6e7f80-9a1b-4c2d-8e3f-4a5b6c7d8e9f",
                ],
                "left": ["7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"],
            },
            {
                "schema": 1,
                "account_id": _ACCOUNT,
                "segment_id": _SEGMENT,
                "generation": 1,
                "at": "2026-05-01T09:58:01.000001+00:00",
                "seq_first": 1,
                "seq_last": 1,
                "initial": True,
                "total_count": 1200,
            },
        ),
    ),
)


def build(doc: MessageDoc) -> dict[str, Any]:
    """The JSON Schema of one message: pydantic's types and limits, our words."""
    generated = doc.model.model_json_schema(by_alias=True, mode="validation")
    properties: dict[str, Any] = generated["properties"]
    if set(properties) != set(doc.fields):
        raise ValueError(
            f"{doc.model.__name__}: describe exactly its fields {sorted(properties)}, "
            f"not {sorted(doc.fields)}"
        )
    return {
        "$schema": DRAFT,
        "$comment": "Generated by `python -m worker.schemas` from worker/messages.py; do not edit.",
        "title": doc.title,
        "description": doc.description,
        "type": generated["type"],
        "properties": {
            name: {"title": spec.get("title", name), "description": doc.fields[name], **spec}
            for name, spec in properties.items()
        },
        "required": generated["required"],
        "additionalProperties": generated["additionalProperties"],
        "examples": list(doc.examples),
    }


def schemas() -> dict[str, dict[str, Any]]:
    """Every message's schema, by file name."""
    return {doc.file_name: build(doc) for doc in MESSAGES}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def stale(directory: Path) -> list[Path]:
    """The schema files in `directory` that are missing or differ from what `schemas()` makes."""
    out = []
    for name, schema in schemas().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render(schema):
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.schemas", description=__doc__)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="default: docs/schemas")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    action.add_argument("--print", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    if args.print:
        print(json.dumps(schemas(), indent=2, ensure_ascii=False))
        return 0
    if args.check:
        paths = stale(args.dir)
        for path in paths:
            print(f"{path} is stale: run python -m worker.schemas", file=sys.stderr)
        return 1 if paths else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        (args.dir / name).write_text(render(schema), encoding="utf-8")
        print(args.dir / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
