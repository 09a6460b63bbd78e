"""How contact.changed deliveries are cut into batches (worker.batching): when a batch is
ready, how big it gets, in what order, and what becomes of its deliveries. No broker, no
event loop: the clock is moved by hand."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from worker.batching import ChangeBatcher
from worker.messages import ContactChanged


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _change(n: int, account_id: uuid.UUID | None = None) -> ContactChanged:
    return ContactChanged(
        schema_version=1,
        account_id=account_id or uuid.uuid4(),
        contact_ids=[uuid.uuid4() for _ in range(n)],
        changed_at=datetime.now(UTC),
    )


def _batcher(max_contacts: int = 600, window_s: float = 0.1) -> tuple[ChangeBatcher[str], Clock]:
    clock = Clock()
    return ChangeBatcher(max_contacts=max_contacts, window_s=window_s, clock=clock), clock


def _backlog(sizes: list[int], max_contacts: int = 600) -> tuple[ChangeBatcher[str], list[str]]:
    batcher, _ = _batcher(max_contacts)
    deliveries = [f"delivery {i}" for i in range(len(sizes))]  # only carried along
    for delivery, size in zip(deliveries, sizes, strict=True):
        batcher.add(delivery, _change(size))
    return batcher, deliveries


def test_a_backlog_is_taken_in_bounded_batches_in_order() -> None:
    batcher, deliveries = _backlog([100, 300, 200, 500, 50])
    batches = []
    while batcher:
        batch = batcher.take()
        assert batch.contacts <= 600
        assert batch.contacts == sum(len(c.contact_ids) for c in batch.changes)
        batches.append(batch.deliveries)
    assert batches == [deliveries[:3], deliveries[3:]]
    assert batcher.contacts == 0


def test_a_message_bigger_than_the_limit_still_goes_alone() -> None:
    batcher, deliveries = _backlog([1000, 10], max_contacts=500)
    first = batcher.take()
    assert first.deliveries == deliveries[:1]
    assert first.contacts == 1000
    assert batcher.take().deliveries == deliveries[1:]


def test_taking_from_nothing_gives_nothing() -> None:
    batcher, _ = _batcher()
    assert batcher.take().items == []
    assert not batcher.ready()
    assert batcher.wait_s() is None


def test_a_batch_is_ready_once_its_oldest_message_has_waited_the_window() -> None:
    # Times in binary fractions, so that the arithmetic is exact.
    batcher, clock = _batcher(window_s=0.125)
    batcher.add("first", _change(1))
    assert not batcher.ready()
    assert batcher.wait_s() == 0.125
    clock.now += 0.0625
    batcher.add("second", _change(1))  # joins the open window, does not restart it
    assert not batcher.ready()
    assert batcher.wait_s() == 0.0625
    clock.now += 0.0625
    assert batcher.ready()
    assert batcher.wait_s() == 0.0
    assert batcher.take().deliveries == ["first", "second"]
    assert not batcher.ready()


def test_a_full_batch_is_ready_before_its_window_ends() -> None:
    batcher, _ = _batcher(max_contacts=10, window_s=60)
    batcher.add("a", _change(6))
    assert not batcher.ready()
    batcher.add("b", _change(4))
    assert batcher.full
    assert batcher.ready()


def test_with_no_window_a_message_is_ready_at_once() -> None:
    batcher, _ = _batcher(window_s=0)
    batcher.add("only", _change(1))
    assert batcher.ready()


def test_the_window_of_what_is_left_counts_from_its_own_oldest_message() -> None:
    batcher, clock = _batcher(max_contacts=10, window_s=0.125)
    batcher.add("a", _change(10))
    clock.now += 0.0625
    batcher.add("b", _change(1))
    assert batcher.take().deliveries == ["a"]
    assert not batcher.ready()
    assert batcher.wait_s() == 0.125  # "b" has not waited yet


def test_a_batch_is_applied_per_account_and_every_delivery_is_settled_once() -> None:
    batcher, _ = _batcher(max_contacts=1000)
    ours, theirs = uuid.uuid4(), uuid.uuid4()
    shared = _change(3, ours)
    batcher.add("ours 1", shared)
    batcher.add("theirs", _change(2, theirs))
    # The same contacts again, for the same account: one evaluation, both deliveries settled.
    batcher.add("ours 2", shared)
    parts = list(batcher.take().accounts())
    assert [p.account_id for p in parts] == [ours, theirs]
    assert parts[0].deliveries == ["ours 1", "ours 2"]
    assert parts[0].contact_ids == sorted(shared.contact_ids)
    assert parts[1].deliveries == ["theirs"]
    assert len(parts[1].contact_ids) == 2
    settled = [d for p in parts for d in p.deliveries]
    assert sorted(settled) == ["ours 1", "ours 2", "theirs"]
    assert len(batcher) == 0
