"""How contact.changed deliveries are cut into batches: the rules alone, with no broker, no
event loop and no database (worker.consumer drives them; tests/test_change_batches.py checks
them with a hand-moved clock).

- `add(delivery, change)`: the delivery waits, in arrival order.
- `ready()`: a batch may start now: the waiting contacts reach `max_contacts`, or the oldest
  waiting delivery has waited `window_s`. `wait_s()` says how long until the window alone
  makes it ready (what the consumer's timer waits for).
- `take()`: the oldest deliveries up to `max_contacts` contacts, at least one (a single
  message bigger than the limit still goes, alone); they leave the batcher. A backlog is
  taken in several batches, oldest first, none lost, none twice.
- A `Batch` is applied one account at a time (`accounts()`): every delivery of an account's
  part is settled with that part's outcome, so each delivery is settled exactly once.

Why bounded: one batch is one statement per account, and a statement's size must stay bounded
(a large backlog in one statement ran for minutes: docs/benchmarks.md).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from uuid import UUID

from worker.messages import ContactChanged

Delivery = TypeVar("Delivery")


@dataclass(frozen=True)
class AccountPart(Generic[Delivery]):
    """One account's share of a batch: its distinct contacts, and the deliveries to settle
    with the outcome of applying them (with their messages, in arrival order)."""

    account_id: UUID
    contact_ids: list[UUID]
    deliveries: list[Delivery]
    changes: list[ContactChanged]


@dataclass
class Batch(Generic[Delivery]):
    items: list[tuple[Delivery, ContactChanged]] = field(default_factory=list)
    contacts: int = 0  # ids over the messages, duplicates counted (what bounds a batch)

    def add(self, delivery: Delivery, change: ContactChanged) -> None:
        self.items.append((delivery, change))
        self.contacts += len(change.contact_ids)

    @property
    def deliveries(self) -> list[Delivery]:
        return [delivery for delivery, _ in self.items]

    @property
    def changes(self) -> list[ContactChanged]:
        return [change for _, change in self.items]

    def accounts(self) -> Iterator[AccountPart[Delivery]]:
        """The batch per account, accounts in order of their first message; each account's
        contacts distinct and sorted (the order the apply statement wants)."""
        by_account: dict[UUID, list[tuple[Delivery, ContactChanged]]] = {}
        for delivery, change in self.items:
            by_account.setdefault(change.account_id, []).append((delivery, change))
        for account_id, items in by_account.items():
            contact_ids = sorted({cid for _, change in items for cid in change.contact_ids})
            yield AccountPart(
                account_id,
                contact_ids,
                [delivery for delivery, _ in items],
                [change for _, change in items],
            )


class ChangeBatcher(Generic[Delivery]):
    """The deliveries waiting to be applied. `clock` is monotonic seconds (injectable)."""

    def __init__(
        self,
        *,
        max_contacts: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_contacts = max_contacts
        self.window_s = window_s
        self._clock = clock
        # (arrival time, delivery, change), oldest first
        self._waiting: deque[tuple[float, Delivery, ContactChanged]] = deque()
        self._contacts = 0

    def __len__(self) -> int:
        """Deliveries waiting."""
        return len(self._waiting)

    @property
    def contacts(self) -> int:
        """Contact ids waiting, over all messages (duplicates counted)."""
        return self._contacts

    def add(self, delivery: Delivery, change: ContactChanged) -> None:
        self._waiting.append((self._clock(), delivery, change))
        self._contacts += len(change.contact_ids)

    @property
    def full(self) -> bool:
        return self._contacts >= self.max_contacts

    def wait_s(self) -> float | None:
        """Seconds until the oldest waiting delivery has waited the window (0 when it has);
        None when nothing waits."""
        if not self._waiting:
            return None
        return max(0.0, self._waiting[0][0] + self.window_s - self._clock())

    def ready(self) -> bool:
        """Whether a batch should start now, if nothing else is being applied."""
        return bool(self._waiting) and (self.full or self.wait_s() == 0.0)

    def take(self) -> Batch[Delivery]:
        """The oldest deliveries up to `max_contacts` contacts (at least one); they leave the
        batcher. Empty when nothing waits."""
        batch: Batch[Delivery] = Batch()
        while self._waiting and (
            not batch.items
            or batch.contacts + len(self._waiting[0][2].contact_ids) <= self.max_contacts
        ):
            _, delivery, change = self._waiting.popleft()
            self._contacts -= len(change.contact_ids)
            batch.add(delivery, change)
        return batch
