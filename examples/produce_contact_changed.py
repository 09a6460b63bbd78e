#!/usr/bin/env python3
"""Tell the segments service that contacts changed: publish `contact.changed` to RabbitMQ.

A producer's example to copy: it needs Python 3.11+ and aio-pika only (`pip install aio-pika`).

    python produce_contact_changed.py --amqp-url amqp://guest:guest@127.0.0.1:5672/ \\
        --account ACCOUNT_ID [--changed '{"fields": ["country"]}'] CONTACT_ID [CONTACT_ID ...]

It prints one JSON line, {"published": N, "message_ids": [...]}, and exits 0 once RabbitMQ has
confirmed every message; 1 if it could not publish (say why on stderr: publish again, repeating
a message is harmless); 2 on bad arguments.

The contract (README "Producers"; docs/schemas/contact-changed.schema.json):
- exchange `segments` (topic, durable), declared by the service: used here, never declared;
- routing key `contact.changed`;
- body: UTF-8 JSON {"schema": 1, "account_id": ..., "contact_ids": [1 to 1000 ids],
  "changed_at": RFC 3339 date-time with an offset, optionally "changed": change hints};
  more ids go in several messages;
- properties: content_type application/json, persistent, a unique message_id;
- publisher confirms: a message counts as sent only once the broker confirmed it, and
  `mandatory` plus `on_return_raises` turn "no queue took it" into an error, not a silent loss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika

EXCHANGE = "segments"
ROUTING_KEY = "contact.changed"
MAX_IDS_PER_MESSAGE = 1000


def bodies(
    account_id: uuid.UUID,
    contact_ids: list[uuid.UUID],
    changed_at: datetime,
    changed: dict[str, Any] | None = None,
) -> list[bytes]:
    """The message bodies for these contacts: at most 1000 ids each, with the change hints
    `changed` if given (README: Producers, change hints)."""
    out = []
    for start in range(0, len(contact_ids), MAX_IDS_PER_MESSAGE):
        chunk = contact_ids[start : start + MAX_IDS_PER_MESSAGE]
        body = {
            "schema": 1,
            "account_id": str(account_id),
            "contact_ids": [str(contact_id) for contact_id in chunk],
            "changed_at": changed_at.isoformat(),
        }
        if changed is not None:
            body["changed"] = changed
        out.append(json.dumps(body).encode())
    return out


async def publish(
    amqp_url: str,
    account_id: uuid.UUID,
    contact_ids: list[uuid.UUID],
    changed: dict[str, Any] | None = None,
) -> list[str]:
    """Publish the changes with confirms; return the message ids once all are confirmed."""
    now = datetime.now(UTC)
    message_ids = []
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        # ensure=True is a passive declare: it fails if the service has not set up the broker.
        exchange = await channel.get_exchange(EXCHANGE, ensure=True)
        for body in bodies(account_id, contact_ids, now, changed):
            message_id = str(uuid.uuid4())
            message = aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id,
                timestamp=now,
            )
            await exchange.publish(message, routing_key=ROUTING_KEY, mandatory=True, timeout=30)
            message_ids.append(message_id)
    return message_ids


def main() -> int:
    parser = argparse.ArgumentParser(description="Publish contact.changed to the segments service.")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--account", required=True, type=uuid.UUID, help="the account id")
    parser.add_argument(
        "--changed",
        type=json.loads,
        help='change hints, e.g. \'{"fields": ["country"]}\' (default: anything changed)',
    )
    parser.add_argument("contact_ids", nargs="+", type=uuid.UUID, metavar="CONTACT_ID")
    args = parser.parse_args()
    try:
        message_ids = asyncio.run(
            publish(args.amqp_url, args.account, args.contact_ids, args.changed)
        )
    except Exception as exc:  # connection refused, no exchange, nack, return, timeout
        print(f"could not publish contact.changed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"published": len(message_ids), "message_ids": message_ids}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
