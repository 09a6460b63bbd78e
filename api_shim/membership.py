"""A segment's membership changes over HTTP (docs/changes.md): the changes feed, read with a
cursor, and the per-minute count history. Both read what worker.membership_log recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import Depends, Query
from pydantic import AwareDatetime, BaseModel, Field

from api_shim.auth import READ, Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, ApiError, not_found
from api_shim.routing import SlashOptionalRouter
from worker.membership_feed import MAX_PAGE, CursorExpired, read_changes, read_history
from worker.messages import Cause
from worker.store import SegmentNotFound

router = SlashOptionalRouter(
    prefix="/api/v2/segments", tags=["v2 segments"], responses={**ERROR_RESPONSES}
)
Ctx = Annotated[AppContext, Depends(app_context)]
Reader = Annotated[Principal, Depends(require(READ))]
_404: dict[int | str, dict[str, Any]] = {
    404: ERROR_RESPONSES[400] | {"description": "No such segment in this account"}
}
# The header of a 410 that carries the oldest seq kept, for programs (the message says it too).
OLDEST_SEQ_HEADER = "Segments-Oldest-Seq"
_SEGMENT_ID = "9c1a2b3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d"
_AT = "2026-05-01T10:00:12.345678+00:00"


class MemberChange(BaseModel):
    seq: int = Field(description="Position in the segment's feed: 1, 2, 3, ... no gaps.")
    change: Literal["entered", "left"]
    contact_id: UUID
    at: datetime = Field(description="When the change was recorded (committed just after).")
    cause: Cause = Field(
        description="What moved the contact: `rules` (a rules change), `data` (the contact's "
        "data), `refresh` (time passing), `cascade` (a segment it references), `rebuild`."
    )
    generation: int = Field(description="The segment's generation that made the change.")


class InitialItem(BaseModel):
    seq: int
    change: Literal["initial"]
    total_count: int = Field(description="Members after the segment's first build.")
    at: datetime
    generation: int


ChangeItem = Annotated[MemberChange | InitialItem, Field(discriminator="change")]


class ChangesPage(BaseModel):
    items: list[ChangeItem]
    next_after: int = Field(
        description="The `after` of the next request: the last item's seq, or the `after` "
        "given when there were none."
    )


class HistoryPoint(BaseModel):
    at: datetime = Field(description="The minute (its first instant).")
    total_count: int = Field(description="Members at the end of that minute.")
    entered: int = Field(description="Contacts that entered during that minute.")
    left: int = Field(description="Contacts that left during that minute.")


class History(BaseModel):
    points: list[HistoryPoint]


_CHANGES_EXAMPLE = {
    "items": [
        {"seq": 1, "change": "initial", "total_count": 2, "at": _AT, "generation": 1},
        {
            "seq": 2,
            "change": "entered",
            "contact_id": "0b8e4f6a-1c2d-4e3f-9a5b-6c7d8e9f0a1b",
            "at": "2026-05-01T10:05:00.000001+00:00",
            "cause": "data",
            "generation": 1,
        },
    ],
    "next_after": 2,
}
_410: dict[int | str, dict[str, Any]] = {
    410: ERROR_RESPONSES[400]
    | {
        "description": "Changes after `after` are no longer kept (retention): the message "
        f"and the `{OLDEST_SEQ_HEADER}` header name the oldest seq kept. Read the members "
        "again, then follow the feed from there.",
    }
}


@router.get(
    "/{segment_id}/changes/",
    response_model=ChangesPage,
    responses={
        200: {"content": {"application/json": {"example": _CHANGES_EXAMPLE}}},
        **_404,
        **_410,
    },
    summary="Who entered and left the segment, after a cursor (the changes feed)",
    description=(
        "Items in seq order. The first build records one `initial` item (read the members "
        "once: `GET .../contacts/` or the export), every later change one item per contact. "
        "Pass the answer's `next_after` as `after` to read on. Items are kept "
        "SEGMENTS_CHANGES_RETENTION_DAYS days (default 7). Example: "
        f"`GET /api/v2/segments/{_SEGMENT_ID}/changes/?after=0&limit=100`."
    ),
)
async def changes(
    ctx: Ctx,
    who: Reader,
    segment_id: UUID,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Items with a greater seq (0: from the first).")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items at most (max 1000).")] = 100,
) -> ChangesPage:
    retention = timedelta(days=ctx.settings.changes_retention_days)
    async with ctx.pool.acquire() as conn:
        try:
            page = await read_changes(
                conn, who.account_id, segment_id, after=after, limit=limit, retention=retention
            )
        except SegmentNotFound:
            raise not_found("segment", "segment_id") from None
        except CursorExpired as exc:
            raise ApiError.one(
                410, str(exc), "cursor_expired", "after", {OLDEST_SEQ_HEADER: str(exc.oldest_seq)}
            ) from None
    return ChangesPage(items=[_item(row) for row in page.items], next_after=page.next_after)


def _item(row: asyncpg.Record) -> MemberChange | InitialItem:
    if row["change"] == "initial":
        return InitialItem(
            seq=row["seq"],
            change="initial",
            total_count=row["total_count"],
            at=row["at"],
            generation=row["generation"],
        )
    return MemberChange(
        seq=row["seq"],
        change=row["change"],
        contact_id=row["contact_id"],
        at=row["at"],
        cause=row["cause"],
        generation=row["generation"],
    )


_HISTORY_EXAMPLE = {
    "points": [
        {"at": "2026-05-01T10:00:00+00:00", "total_count": 1200, "entered": 1200, "left": 0},
        {"at": "2026-05-01T10:07:00+00:00", "total_count": 1195, "entered": 3, "left": 8},
    ]
}
DEFAULT_HISTORY = timedelta(days=30)
MAX_HISTORY = timedelta(days=400)


@router.get(
    "/{segment_id}/history/",
    response_model=History,
    responses={200: {"content": {"application/json": {"example": _HISTORY_EXAMPLE}}}, **_404},
    summary="The segment's count, one point per minute in which it changed",
    description=(
        "Points from `since` to `until` (default: the last 30 days; at most 400 days apart, "
        "as long as points are kept). A minute without a change has no point: the count "
        "stayed what the point before says. Example: "
        f"`GET /api/v2/segments/{_SEGMENT_ID}/history/?since=2026-05-01T00:00:00Z`."
    ),
)
async def history(
    ctx: Ctx,
    who: Reader,
    segment_id: UUID,
    since: Annotated[
        AwareDatetime | None,
        Query(description="ISO 8601 with an offset (default: until - 30 days)."),
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="ISO 8601 with an offset (default: now).")
    ] = None,
) -> History:
    end = until or datetime.now(UTC)
    start = since or end - DEFAULT_HISTORY
    if start > end:
        raise ApiError.one(400, "since must not be after until", "invalid_range", "since")
    if end - start > MAX_HISTORY:
        raise ApiError.one(
            400, "since and until are at most 400 days apart", "invalid_range", "since"
        )
    async with ctx.pool.acquire() as conn:
        try:
            rows = await read_history(conn, who.account_id, segment_id, since=start, until=end)
        except SegmentNotFound:
            raise not_found("segment", "segment_id") from None
    return History(points=[HistoryPoint.model_validate(dict(row)) for row in rows])
