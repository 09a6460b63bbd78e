"""A change whose settling fails in an unforeseen way (a bug, an error nobody classified) goes
back to the queue and is settled on its next delivery: nothing stays unacknowledged for as
long as the worker runs. The failure is planted in the settling step; the broker and the
database are real."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from aio_pika.abc import AbstractIncomingMessage

from tests.waiting import wait_for
from tests.worker_support import publish_changes, running_worker, seed_contacts, worker_settings
from worker.settle import Ack, Decision, Settler
from worker.topology import CONTACT_CHANGES_QUEUE


async def test_a_change_whose_settling_fails_goes_back_and_is_acknowledged(
    conn: asyncpg.Connection,
    account_id: uuid.UUID,
    exchange: Any,
    database_url: str,
    amqp_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ann, bob = await seed_contacts(conn, account_id, [{}, {}])
    planted: list[str] = []
    acknowledged: list[list[str]] = []
    settle = Settler.settle

    async def failing_once(
        self: Settler, message: AbstractIncomingMessage, decision: Decision
    ) -> bool:
        ids = json.loads(message.body).get("contact_ids")
        if self.queue is CONTACT_CHANGES_QUEUE and ids and not planted:
            planted.extend(ids)
            raise ValueError("planted: settling failed")
        settled = await settle(self, message, decision)
        if self.queue is CONTACT_CHANGES_QUEUE and ids and isinstance(decision, Ack):
            acknowledged.append(ids)
        return settled

    monkeypatch.setattr(Settler, "settle", failing_once)
    async with running_worker(worker_settings(database_url, amqp_url)):
        await publish_changes(exchange, account_id, [ann])
        await publish_changes(exchange, account_id, [bob])

        async def both_acknowledged() -> bool:
            return sorted(acknowledged) == sorted([[str(ann)], [str(bob)]])

        await wait_for(both_acknowledged, timeout=30)
    assert planted in ([str(ann)], [str(bob)])  # the failure happened, and was recovered from
