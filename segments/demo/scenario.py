"""The demo's story, told through the public HTTP API: create segments in the v2 and simple
dialects (every rule kind), watch them build, read one back through the read-only v1 API,
then change contacts the four ways producers do and watch the counts follow.

Every count is checked against the compiled SQL run directly (worker.compiler.compile_count):
what the API shows is what the rules mean on the data as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from segments.demo.client import ApiClient, DemoError
from segments.demo.data import DemoData
from segments.demo.display import Display, Table, delta, number, seconds
from segments.demo.specs import SIMPLE, V2, SegmentSpec, segment_specs
from worker.compiler import compile_count
from worker.db import Conn
from worker.store import load_registry, load_segment_rules

TERMINAL = ("DONE", "FAILED")


@dataclass
class Segment:
    """A demo segment as last seen through the API."""

    spec: SegmentSpec
    id: UUID | None = None  # v2 id; a simple-API segment's is found by name
    status: str = "PENDING"
    count: int | None = None
    build_s: float | None = None  # created_at to the first DONE (API times): queue + build
    statuses: list[str] = field(default_factory=list)  # as seen, in order
    sql_count: int | None = None  # compile_count run directly, after the builds
    before: int | None = None  # before the changes
    after: int | None = None
    expected: int | None = None  # compile_count after the changes

    @property
    def dialect(self) -> str:
        return "v2" if self.spec.path == V2 else "simple"


async def create_segments(
    client: ApiClient, specs: list[SegmentSpec], display: Display
) -> list[Segment]:
    display.heading("Creating segments through the HTTP API")
    segments = []
    for spec in specs:
        answer = await client.post(spec.path, spec.body)
        segment = Segment(spec)
        if spec.path == V2:
            segment.id = UUID(answer["id"])
            shown = f"status {answer['status']}, total_count {json.dumps(answer['total_count'])}"
        else:
            shown = f"id {answer['id']}, contacts_count {json.dumps(answer['contacts_count'])}"
        display.write(f"  POST {spec.path:<19} {spec.name:<27} {spec.summary}")
        display.write(f"  {'':<24} -> {shown}")
        segments.append(segment)
    return segments


def build_table(segments: list[Segment]) -> Table:
    return Table(
        ("segment", "API", "status", "contacts", "to DONE", "SQL"),
        [
            (
                s.spec.name,
                s.dialect,
                s.status,
                number(s.count),
                seconds(s.build_s),
                _check(s.count, s.sql_count),
            )
            for s in segments
        ],
        right=frozenset({3, 4}),
        status_column=2,
    )


def _check(count: int | None, sql: int | None) -> str:
    """The count against the compiled SQL run directly: "=" when they agree."""
    if sql is None:
        return ""
    return "=" if count == sql else f"!= {sql:,}"


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


async def _poll(client: ApiClient, segments: list[Segment], display: Display) -> None:
    """One look at every segment (one list call, not one call each: the key's rate limit)."""
    answer = await client.get(V2, page_size=100, order_by="created_at", ordering="asc")
    by_name = {item["name"]: item for item in answer["items"]}
    for s in segments:
        item = by_name.get(s.spec.name)
        if item is None:
            continue
        s.id = UUID(item["id"])
        s.status, s.count = item["status"], item["total_count"]
        if not s.statuses or s.statuses[-1] != s.status:
            s.statuses.append(s.status)
        if s.status == "DONE" and s.build_s is None:
            s.build_s = _seconds_between(item["created_at"], item["updated_at"])
        display.status(s.spec.name, s.status, total_count=s.count, build_s=s.build_s)


async def watch_builds(
    client: ApiClient, segments: list[Segment], display: Display, timeout_s: float
) -> None:
    display.heading("Building (polling GET /api/v2/segments/)")
    deadline = time.monotonic() + timeout_s
    while True:
        await _poll(client, segments, display)
        display.table(build_table(segments))
        if all(s.status in TERMINAL for s in segments):
            break
        if time.monotonic() > deadline:
            display.table(build_table(segments), final=True)
            raise DemoError(
                f"segments not built after {timeout_s:.0f}s: is a worker consuming "
                "segments.build on this broker and database (`segments worker`)?"
            )
        await asyncio.sleep(client.pace_s(0.5))
    for s in segments:
        if s.status == "FAILED" and s.id is not None:
            detail = await client.get(f"{V2}{s.id}/")
            display.write(f"  {s.spec.name}: FAILED: {detail.get('error_reason')}")


async def sql_count(conn: Conn, segment_id: UUID) -> int:
    """The segment's count by its compiled SQL, run directly on the database now."""
    rules = await load_segment_rules(conn, segment_id)
    if rules is None:
        raise DemoError(f"segment {segment_id} is gone")
    registry = await load_registry(conn, rules.account_id)
    compiled = compile_count(rules.query(registry, datetime.now(UTC)))
    value: int = await conn.fetchval(compiled.sql, *compiled.params)
    return value


async def check_counts(conn: Conn, segments: list[Segment], display: Display) -> None:
    for s in segments:
        if s.id is not None and s.status == "DONE":
            s.sql_count = await sql_count(conn, s.id)
    display.table(build_table(segments), final=True)


async def show_v1(client: ApiClient, segment: Segment, display: Display) -> None:
    display.heading("The same segment through the read-only v1 API (GET /api/v1/segments?id=...)")
    answer = await client.get("/api/v1/segments", id=str(segment.id))
    display.write(_v1_json(answer["data"][0]))
    listed = await client.get(SIMPLE)
    display.heading("And the simple API's list (GET /api/segments): every segment, integer ids")
    for item in listed:
        display.write(
            f"  id {item['id']:>4}  contacts_count {number(item['contacts_count']):>8}  "
            f"{item['name']}"
        )


def _v1_json(segment: dict[str, Any]) -> str:
    """JSON, one key a line and one filter a line: readable, and still valid JSON."""
    lines = []
    for key, value in segment.items():
        if key == "filters" and isinstance(value, list) and value:
            items = ",\n".join(f"      {json.dumps(f, ensure_ascii=False)}" for f in value)
            lines.append(f'    "filters": [\n{items}\n    ]')
        else:
            lines.append(f"    {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "  {\n" + ",\n".join(lines) + "\n  }"


async def _member_sample(client: ApiClient, segment: Segment, size: int) -> list[dict[str, Any]]:
    if segment.id is None or segment.status != "DONE":
        return []
    answer = await client.get(f"{V2}{segment.id}/contacts/", page_size=size)
    items: list[dict[str, Any]] = answer["items"]
    return items


async def make_changes(
    client: ApiClient, conn: Conn, data: DemoData, segments: dict[str, Segment], display: Display
) -> float:
    """Change contacts four ways, each of which ends in a `contact.changed` message; returns
    when the last change was made (time.monotonic())."""
    display.heading("Changing contacts (each call publishes contact.changed)")
    vip = await _member_sample(client, segments["vip"], 40)
    engaged = await _member_sample(client, segments["engaged"], 15)
    emails = {c["email"] for c in vip}
    upserts = [{"email": c["email"], "attributes": {"plan": "free", "vip": False}} for c in vip]
    upserts += [
        {"email": c["email"], "status": "bounced"} for c in engaged if c["email"] not in emails
    ]
    if upserts:
        await client.post("/api/v2/contacts", {"contacts": upserts})
        display.write(
            f"  POST /api/v2/contacts (upsert): {len(vip)} VIP customers moved to the free plan, "
            f"{len(upserts) - len(vip)} engaged subscribers bounced"
        )
    dormant = await _member_sample(client, segments["dormant"], 40)
    if dormant:
        now = datetime.now(UTC).isoformat()
        opens = [{"contact_id": c["id"], "type": "open", "occurred_at": now} for c in dormant]
        await client.post("/api/v2/events", {"events": opens + opens})
        display.write(f"  POST /api/v2/events: {len(dormant)} dormant readers opened twice today")
    clickers = await _member_sample(client, segments["clickers"], 20)
    if clickers:
        blocklist = data.lists["blocklist"]
        await client.post(
            f"/api/v2/lists/{blocklist}/members", {"add": [c["id"] for c in clickers]}
        )
        display.write(
            f"  POST /api/v2/lists/{{id}}/members: {len(clickers)} clickers added to 'Do not mail'"
        )
    # The backing API's way: write the shared tables directly, then say which contacts changed.
    changed = await conn.fetch(
        """UPDATE contacts SET status = 'complained', updated_at = now()
           WHERE account_id = $1 AND id IN (
               SELECT c.id FROM contacts c
               JOIN contact_list_members m
                   ON m.contact_id = c.id AND m.account_id = c.account_id AND m.list_id = $2
               WHERE c.account_id = $1 AND c.status = 'subscribed'
               ORDER BY c.id LIMIT 25)
           RETURNING id""",
        data.account_id,
        data.lists["newsletter"],
    )
    if changed:
        await client.post(
            "/api/v2/contacts/changes", {"contact_ids": [str(r["id"]) for r in changed]}
        )
        display.write(
            f"  UPDATE contacts, then POST /api/v2/contacts/changes (the backing API's way): "
            f"{len(changed)} newsletter subscribers complained"
        )
    return time.monotonic()


def change_table(segments: list[Segment]) -> Table:
    return Table(
        ("segment", "before", "after", "change", "SQL"),
        [
            (
                s.spec.name,
                number(s.before),
                number(s.after),
                delta(s.before, s.after),
                _check(s.after, s.expected),
            )
            for s in segments
        ],
        right=frozenset({1, 2, 3}),
    )


async def watch_changes(
    client: ApiClient,
    conn: Conn,
    segments: list[Segment],
    display: Display,
    *,
    changed_at: float,
    timeout_s: float,
) -> bool:
    """Poll the counts until each is what the compiled SQL says (run meanwhile, directly on
    the database); False if they do not get there in `timeout_s`."""
    display.heading("Counts following the changes (incremental updates, no rebuild)")
    expected = asyncio.create_task(_expected_counts(conn, segments))
    last_move = changed_at
    try:
        while True:
            await _poll(client, segments, display)
            for s in segments:
                if s.count != s.after:
                    s.after, last_move = s.count, time.monotonic()
            display.table(change_table(segments))
            settled = expected.done() and all(
                s.after == s.expected for s in segments if s.expected is not None
            )
            if settled or time.monotonic() - changed_at > timeout_s:
                break
            await asyncio.sleep(client.pace_s(0.5))
    finally:
        if not expected.done():  # timed out, or interrupted
            expected.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await expected  # the connection is free again (and an SQL error surfaces)
    display.table(change_table(segments), final=True)
    if settled:
        display.write(
            f"  the counts moved within {last_move - changed_at:.1f}s of the last change "
            "(polled every 0.5s) and match the SQL"
        )
    else:
        display.write(
            f"  counts still differ from the SQL after {timeout_s:.0f}s: are the worker "
            "(segments.contact_changes) and the API's outbox relay running?"
        )
    return settled


async def _expected_counts(conn: Conn, segments: list[Segment]) -> None:
    for s in segments:
        if s.id is not None and s.status == "DONE":
            s.expected = await sql_count(conn, s.id)


@dataclass
class ScenarioResult:
    segments: list[Segment]
    settled: bool


async def run_scenario(
    client: ApiClient,
    conn: Conn,
    data: DemoData,
    display: Display,
    *,
    build_timeout_s: float = 600.0,
    change_timeout_s: float = 60.0,
) -> ScenarioResult:
    segments = await create_segments(client, segment_specs(data), display)
    await watch_builds(client, segments, display, build_timeout_s)
    await check_counts(conn, segments, display)
    by_key = {s.spec.key: s for s in segments}
    await show_v1(client, by_key["engaged"], display)
    for s in segments:
        s.before = s.after = s.count
    changed_at = await make_changes(client, conn, data, by_key, display)
    settled = await watch_changes(
        client, conn, segments, display, changed_at=changed_at, timeout_s=change_timeout_s
    )
    return ScenarioResult(segments, settled)
