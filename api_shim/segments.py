"""What the APIs do to segments: each change and its outbox message in one transaction, so a
`segment.*` message is published if and only if the change committed."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

import asyncpg

from api_shim import store
from api_shim.errors import not_found
from api_shim.lists import in_use
from api_shim.models import SegmentPatch
from api_shim.store import SegmentValues
from api_shim.validation import check_v2_input, display_fields
from worker.db import Conn
from worker.outbox import enqueue_segment
from worker.references import lock_references, referring_segments, save_references
from worker.store import load_registry


def shown_count(row: asyncpg.Record) -> int | None:
    """total_count is meaningful only when DONE; otherwise it is null, never a
    stale or partial number."""
    count: int | None = row["total_count"]
    return count if row["status"] == "DONE" else None


async def create(
    conn: Conn, account_id: UUID, values: SegmentValues, referenced: Collection[UUID] = ()
) -> asyncpg.Record:
    """`referenced`: the segments the rules reference (checked by check_v2_input)."""
    async with conn.transaction():
        row = await store.insert_segment(conn, account_id, values)
        await save_references(conn, account_id, row["id"], referenced)
        await enqueue_segment(conn, "segment.created", account_id, row["id"], row["generation"])
    return row


async def patch(
    conn: Conn, account_id: UUID, segment_id: UUID, changes: SegmentPatch
) -> asyncpg.Record:
    """Apply a PATCH. New rules, list ids or timezone (different from the current ones)
    bump the generation, reset to PENDING and publish segment.updated; other fields just
    change."""
    async with conn.transaction():
        current = await store.get_segment(conn, account_id, segment_id, for_update=True)
        if current is None:
            raise not_found("segment", "segment_id")
        if not changes:
            return current
        registry = await load_registry(conn, account_id)
        rules = changes.get("rules_json")
        list_ids = changes.get("contact_list_ids")
        tree = await check_v2_input(
            conn,
            account_id,
            registry,
            rules_json=rules,
            contact_list_ids=list_ids,
            segment_id=segment_id,
        )
        rules_changed = rules is not None and (
            current["dialect"] != "v2" or current["rules"] != rules
        )
        lists_changed = list_ids is not None and set(list_ids) != set(current["contact_list_ids"])
        # The timezone moves every calendar period: a rules change.
        timezone = changes.get("timezone", current["timezone"])
        timezone_changed = timezone != current["timezone"]
        fields: list[dict[str, Any]] = (
            display_fields(registry, changes["display_fields"])
            if "display_fields" in changes
            else current["display_fields"]
        )
        values = SegmentValues(
            name=changes.get("name", current["name"]),
            color=changes.get("color", current["color"]),
            description=changes.get("description", current["description"]),
            dialect="v2" if rules_changed else current["dialect"],
            rules=rules if rules_changed else current["rules"],
            contact_list_ids=list(
                dict.fromkeys(list_ids if list_ids is not None else current["contact_list_ids"])
            ),
            display_fields=fields,
            time_relative=(
                tree.depends_on_clock if rules_changed and tree else current["time_relative"]
            ),
            timezone=timezone,
            local_calendar=(
                tree.follows_local_calendar if rules_changed and tree else current["local_calendar"]
            ),
        )
        rebuild = rules_changed or lists_changed or timezone_changed
        row = await store.save_segment(conn, account_id, segment_id, values, rebuild=rebuild)
        assert row is not None  # locked above
        if rules_changed:
            await save_references(conn, account_id, segment_id, tree.segment_ids() if tree else ())
        if rebuild:
            await enqueue_segment(
                conn, "segment.updated", account_id, segment_id, row["generation"]
            )
    return row


async def rebuild(conn: Conn, account_id: UUID, segment_id: UUID) -> asyncpg.Record:
    async with conn.transaction():
        row = await store.mark_rebuild(conn, account_id, segment_id)
        if row is None:
            raise not_found("segment", "segment_id")
        await enqueue_segment(conn, "segment.rebuild", account_id, segment_id, row["generation"])
    return row


async def delete(conn: Conn, account_id: UUID, segment_id: UUID) -> None:
    """Delete, unless other segments are built from it (409 naming each of them)."""
    async with conn.transaction():
        # Under the references' lock: no save can start referencing it meanwhile.
        await lock_references(conn, account_id)
        referring = await referring_segments(conn, account_id, segment_id)
        if referring:
            raise in_use(
                referring, "segment", "built from this segment (a segment condition names it)"
            )
        if not await store.delete_segment(conn, account_id, segment_id):
            raise not_found("segment", "segment_id")
