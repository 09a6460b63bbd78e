"""The read-only v1 segments API (README: HTTP API): `matchType` + `filters`, `cachedCount`.

Segments written in another dialect are shown in v1 terms by worker.rules (worker.rules.v1
says what is shown when v1 cannot express a rule); a v2 segment's lists are shown beside its
filters, in the read-only `contactListIds`. `cachedCount` is the count of the last finished
build (null unless DONE); `lastCountedAt` is when that build finished.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import Depends, Query
from pydantic import BaseModel, Field

from api_shim.auth import READ, Principal, require_v1
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, not_found
from api_shim.routing import SlashOptionalRouter
from api_shim.segments import shown_count
from api_shim.store import get_segment, list_by_number
from api_shim.types import SearchText
from worker.db import Conn
from worker.rules import shown_item, v1_rules

router = SlashOptionalRouter(prefix="/api/v1", tags=["v1 segments (read-only)"])


class V1Filter(BaseModel):
    field: str | None
    operator: str | None
    value: Any = None


class V1Segment(BaseModel):
    id: str
    name: str
    description: str | None
    matchType: Literal["all", "any"]  # the v1 API's own (camelCase) names
    filters: list[V1Filter]
    contactListIds: list[UUID] = Field(
        description="Read-only. Empty: the segment draws from all the account's contacts. "
        "Otherwise (set in the v2 API) only contacts in at least one of these lists can "
        "match `filters`."
    )
    cachedCount: int | None
    lastCountedAt: datetime | None
    createdAt: datetime


class V1Pagination(BaseModel):
    page: int
    limit: int
    total: int
    totalPages: int


class V1SegmentList(BaseModel):
    data: list[V1Segment]
    pagination: V1Pagination


@router.get(
    "/segments",
    response_model=V1SegmentList,
    responses={
        **ERROR_RESPONSES,
        404: ERROR_RESPONSES[400] | {"description": "`id` names no segment of this account"},
    },
    summary="List segments (or one, by id)",
)
async def list_segments(
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require_v1(READ))],
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number.")] = 1,
    limit: Annotated[int, Query(ge=1, le=100, description="Results per page.")] = 50,
    id: Annotated[SearchText | None, Query(description="Return this segment only.")] = None,
) -> V1SegmentList:
    async with ctx.pool.acquire() as conn:
        if id is not None:
            row = await _one(conn, who.account_id, id)
            total, rows = 1, [row] if page == 1 else []
        else:
            total, rows = await list_by_number(
                conn, who.account_id, limit=limit, offset=(page - 1) * limit
            )
    return V1SegmentList(
        data=[v1_segment(r) for r in rows],
        pagination=V1Pagination(
            page=page, limit=limit, total=total, totalPages=math.ceil(total / limit)
        ),
    )


async def _one(conn: Conn, account_id: UUID, segment_id: str) -> asyncpg.Record:
    try:
        parsed = UUID(segment_id)
    except ValueError:
        raise not_found("segment", "id") from None
    row = await get_segment(conn, account_id, parsed)
    if row is None:
        raise not_found("segment", "id")
    return row


def v1_segment(row: asyncpg.Record) -> V1Segment:
    match_type, filters = v1_rules(row["dialect"], row["rules"])
    return V1Segment(
        id=str(row["id"]),
        name=row["name"],
        description=row["description"],
        matchType="any" if match_type == "any" else "all",
        filters=[V1Filter(**shown_item(f)) for f in filters if isinstance(f, dict)],
        contactListIds=list(row["contact_list_ids"]),
        cachedCount=shown_count(row),
        lastCountedAt=row["last_built_at"] if row["status"] == "DONE" else None,
        createdAt=row["created_at"],
    )
