"""How contact.changed deliveries are cut into batches (worker.consumer._Pending): a backlog is
applied in batches of at most change_batch_max_contacts, oldest first, none lost."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from worker.consumer import _Pending
from worker.messages import ContactChanged


def _change(n: int) -> ContactChanged:
    return ContactChanged(
        schema_version=1,
        account_id=uuid.uuid4(),
        contact_ids=[uuid.uuid4() for _ in range(n)],
        changed_at=datetime.now(UTC),
    )


def _backlog(sizes: list[int]) -> tuple[_Pending, list[Any]]:
    pending, deliveries = _Pending(), []
    for i, size in enumerate(sizes):
        delivery: Any = f"delivery {i}"  # only carried along, never read
        pending.add(delivery, _change(size))
        deliveries.append(delivery)
    return pending, deliveries


def test_a_backlog_is_taken_in_bounded_batches_in_order() -> None:
    pending, deliveries = _backlog([100, 300, 200, 500, 50])
    batches = []
    while pending.messages:
        batch = pending.take(600)
        assert batch.contacts <= 600
        assert batch.contacts == sum(len(c.contact_ids) for _, c in batch.messages)
        batches.append([m for m, _ in batch.messages])
    assert batches == [deliveries[:3], deliveries[3:]]
    assert pending.contacts == 0


def test_a_message_bigger_than_the_limit_still_goes_alone() -> None:
    pending, deliveries = _backlog([1000, 10])
    first = pending.take(500)
    assert [m for m, _ in first.messages] == deliveries[:1]
    assert first.contacts == 1000
    assert [m for m, _ in pending.take(500).messages] == deliveries[1:]


def test_taking_from_nothing_gives_nothing() -> None:
    assert _Pending().take(10).messages == []
