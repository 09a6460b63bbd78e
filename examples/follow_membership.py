#!/usr/bin/env python3
"""Keep a copy of one segment's membership: its members once, then `membership.changed`.

A consumer's example to copy: it needs Python 3.11+ and aio-pika only (`pip install aio-pika`).

    python follow_membership.py --amqp-url amqp://guest:guest@127.0.0.1:5672/ \\
        --api-url http://127.0.0.1:8000 --api-key KEY --segment SEGMENT_ID \\
        [--queue crm-sync.membership]

It prints one JSON line per change it applies, {"seq": N, "members": M}, until stopped.

The protocol (docs/changes.md, "Keeping a copy"):
1. declare and bind our queue to `membership.changed` first: nothing published from then on
   is lost;
2. take a cursor: the newest seq of the segment's changes feed;
3. read the members (GET /api/v2/segments/{id}/contacts/, page by page): not a snapshot, and
   it need not be, since every change that could slip past the read comes again after the
   cursor;
4. apply messages in order: skip a message whose seq_last is at or below the cursor (at least
   once delivery repeats some), fill a gap (seq_first beyond cursor + 1) from the feed, add
   `entered`, remove `left`; an `initial` message (the segment's first build) means: read the
   members again. A 410 from the feed (changes expired) means: start again at step 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import aio_pika

EXCHANGE = "segments"
ROUTING_KEY = "membership.changed"
PAGE = 100


class FeedExpired(Exception):
    """The changes after our cursor are no longer kept: start again from the members."""

    def __init__(self, oldest_seq: int) -> None:
        super().__init__(f"the feed now starts at seq {oldest_seq}")
        self.oldest_seq = oldest_seq


class Api:
    """The few HTTP calls we need (urllib, so nothing beyond aio-pika to install)."""

    def __init__(self, url: str, key: str, segment_id: str) -> None:
        self.base = f"{url.rstrip('/')}/api/v2/segments/{segment_id}"
        self.key = key

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.base + path, headers={"X-API-Key": self.key})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as exc:
            if exc.code == 410:
                raise FeedExpired(int(exc.headers["Segments-Oldest-Seq"])) from None
            raise

    def changes(self, after: int) -> tuple[list[dict[str, Any]], int]:
        page = self.get(f"/changes/?after={after}&limit=1000")
        return page["items"], page["next_after"]

    def newest_seq(self) -> int:
        after = 0
        while True:
            try:
                items, after = self.changes(after)
            except FeedExpired as exc:
                after = exc.oldest_seq - 1  # what is older is gone: we only need the newest
                continue
            if not items:
                return after

    def members(self) -> set[str]:
        out: set[str] = set()
        page = 1
        while True:
            answer = self.get(f"/contacts/?page={page}&page_size={PAGE}")
            out.update(item["id"] for item in answer["items"])
            if page >= answer["pagination"]["total_pages"]:
                return out
            page += 1


class MembershipCopy:
    """The copy and its cursor. Blocking calls (HTTP) are the caller's to run off the loop."""

    def __init__(self, api: Api, report: Callable[[int, int], None] = lambda s, m: None) -> None:
        self.api = api
        self.report = report
        self.members: set[str] = set()
        self.last_seq = 0

    def start(self) -> None:
        """Steps 2 and 3: a cursor, then the members."""
        self.last_seq = self.api.newest_seq()
        self.members = self.api.members()

    def apply(self, message: dict[str, Any]) -> None:
        """Step 4, for one message of our segment."""
        if message["seq_last"] <= self.last_seq:
            return  # seen already (at least once delivery)
        try:
            if message["seq_first"] > self.last_seq + 1:
                self._fill_gap(message["seq_first"] - 1)
            if message.get("initial"):
                self.members = self.api.members()
            else:
                self.members.update(message["entered"])
                self.members.difference_update(message["left"])
            self.last_seq = message["seq_last"]
        except FeedExpired:
            self.start()
        self.report(self.last_seq, len(self.members))

    def _fill_gap(self, until: int) -> None:
        while self.last_seq < until:
            items, _ = self.api.changes(self.last_seq)
            if not items:
                return
            for item in items:
                if item["seq"] > until:
                    return
                if item["change"] == "initial":
                    self.members = self.api.members()
                elif item["change"] == "entered":
                    self.members.add(item["contact_id"])
                else:
                    self.members.discard(item["contact_id"])
                self.last_seq = item["seq"]


async def follow(
    amqp_url: str,
    copy: MembershipCopy,
    segment_id: str,
    queue_name: str = "",
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Steps 1 to 4, until `stop`. An empty `queue_name` makes a queue that lives as long as
    the connection (a real consumer names a durable one, so it keeps messages while down)."""
    stop = stop or asyncio.Event()
    async with await aio_pika.connect_robust(amqp_url) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.declare_queue(
            queue_name, durable=bool(queue_name), exclusive=not queue_name
        )
        await queue.bind(EXCHANGE, ROUTING_KEY)
        await asyncio.to_thread(copy.start)
        if ready is not None:
            ready.set()
        async with queue.iterator() as messages:
            stopping = asyncio.ensure_future(stop.wait())
            while not stop.is_set():
                receiving = asyncio.ensure_future(messages.__anext__())
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()
                    break
                message = receiving.result()
                body = json.loads(message.body)
                if body["segment_id"] == segment_id:
                    await asyncio.to_thread(copy.apply, body)
                await message.ack()  # after applying: a crash before it gets it again


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--segment", required=True)
    parser.add_argument("--queue", default="", help="a durable queue of yours (default: none)")
    args = parser.parse_args()

    def report(seq: int, members: int) -> None:
        print(json.dumps({"seq": seq, "members": members}), flush=True)

    copy = MembershipCopy(Api(args.api_url, args.api_key, args.segment), report)
    try:
        asyncio.run(follow(args.amqp_url, copy, args.segment, args.queue))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
