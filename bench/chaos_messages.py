"""A consumer of `membership.changed` for the chaos suite (docs/changes.md, "Messages"): a
queue of its own, bound before any segment exists, straight to the broker (not through the
service's proxy), that follows each segment's messages as a consumer keeping a copy would:
a message at or below its cursor is a repeat (at least once) and skipped; the next must
start right after the cursor. What it applied, item by item, must at the end be the feed
itself (so, by the feed check, the members).

A message that starts beyond the cursor is a gap (none is allowed here: the queue was bound
first and is never purged), one that overlaps it only in part is out of order; both are
recorded as problems.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from bench.chaos_feeds import Baseline, Item, unnest

QUEUE = "chaos.membership-copy"


class MessageCopy:
    """Every segment's feed items as the messages brought them, deduplicated."""

    def __init__(self) -> None:
        self.items: dict[uuid.UUID, list[Item]] = {}
        self.problems: list[tuple[uuid.UUID, str]] = []
        self.received = 0
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._keeper: asyncio.Task[None] | None = None

    async def start(self, amqp_url: str) -> None:
        """Consume, and from now on reconnect within a second of any loss (a broker restart
        or stop_app). A plain connection and a loop of our own rather than aio-pika's robust
        connection: with that one, a run of four broker restarts ended with the queue holding
        730 messages ready and none unacknowledged: no consumer left on it."""
        await self._connect(amqp_url)
        self._keeper = asyncio.create_task(self._keep(amqp_url))

    async def _connect(self, amqp_url: str) -> None:
        """Declare and bind the queue (durable, quorum: it outlives broker restarts) and
        consume from it."""
        connection = await aio_pika.connect(amqp_url, timeout=10)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=100)
            queue = await channel.declare_queue(
                QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
            )
            await queue.bind("segments", routing_key="membership.changed")
            await queue.consume(self._on_message)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._channel = connection, channel

    async def _keep(self, amqp_url: str) -> None:
        while True:
            await asyncio.sleep(1)
            alive = self._connection is not None and not self._connection.is_closed
            if alive and self._channel is not None and not self._channel.is_closed:
                continue
            if self._connection is not None:
                with contextlib.suppress(Exception):  # already broken
                    await self._connection.close()
                self._connection = self._channel = None
            with contextlib.suppress(Exception):  # the broker still down: next second
                await self._connect(amqp_url)

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.apply(json.loads(message.body))
        await message.ack()

    def apply(self, body: Mapping[str, Any]) -> None:
        segment_id = uuid.UUID(body["segment_id"])
        self.received += 1
        applied = self.items.setdefault(segment_id, [])
        cursor = applied[-1].seq if applied else 0
        first, last = int(body["seq_first"]), int(body["seq_last"])
        if last <= cursor:
            return  # a repeat
        if first != cursor + 1:
            what = "a gap" if first > cursor + 1 else "out of order"
            self.problems.append((segment_id, f"seqs {first}..{last} after {cursor} ({what})"))
        row = {
            "seq_first": first,
            "total_count": body.get("total_count") if body.get("initial") else None,
            "entered": [uuid.UUID(i) for i in body.get("entered", [])],
            "left_ids": [uuid.UUID(i) for i in body.get("left", [])],
        }
        applied.extend(i for i in unnest(row) if i.seq > cursor)

    def violations(
        self, baselines: Mapping[uuid.UUID, Baseline], feeds: Mapping[uuid.UUID, list[Item]]
    ) -> list[str]:
        """Where what the messages brought differs from the feeds (empty: they agree)."""
        problems = [
            f"messages of {baselines[s].name if s in baselines else s}: {what}"
            for s, what in self.problems
        ]
        for segment_id, baseline in baselines.items():
            have, want = self.items.get(segment_id, []), feeds.get(segment_id, [])
            if have != want:
                differ = next(
                    (w.seq for h, w in zip(have, want, strict=False) if h != w),
                    min(len(have), len(want)) + 1,
                )
                problems.append(
                    f"messages of {baseline.name} disagree with the feed: {len(have)} items"
                    f" applied, {len(want)} in the feed, first difference at seq {differ}"
                )
        return problems
