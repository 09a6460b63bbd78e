"""The v2 segments API (README: HTTP API): full CRUD over `rules_json`."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import Body, Depends, Query, Response

from api_shim import segments
from api_shim.auth import READ, WRITE, Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, not_found
from api_shim.members import segment_members
from api_shim.models import (
    Pagination,
    Segment,
    SegmentContact,
    SegmentContactList,
    SegmentCreate,
    SegmentItem,
    SegmentList,
    SegmentPatch,
)
from api_shim.routing import SlashOptionalRouter
from api_shim.store import OrderBy, SegmentValues, get_segment, list_segments
from api_shim.types import SearchText
from api_shim.validation import check_segment_rules
from worker.rules import v2_rules

router = SlashOptionalRouter(
    prefix="/api/v2/segments", tags=["v2 segments"], responses={**ERROR_RESPONSES}
)
_404: dict[int | str, dict[str, Any]] = {
    404: ERROR_RESPONSES[400] | {"description": "No such segment in this account"}
}

Ctx = Annotated[AppContext, Depends(app_context)]
Reader = Annotated[Principal, Depends(require(READ))]
Writer = Annotated[Principal, Depends(require(WRITE))]
Page = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number.")]
PageSize = Annotated[int, Query(ge=1, le=100, description="Results per page (max 100).")]


@router.get("/", response_model=SegmentList, summary="List segments")
async def list_(
    ctx: Ctx,
    who: Reader,
    page: Page = 1,
    page_size: PageSize = 25,
    search: Annotated[SearchText | None, Query(description="Name contains (any case).")] = None,
    ordering: Annotated[Literal["asc", "desc"], Query(description="Sort direction.")] = "desc",
    order_by: Annotated[OrderBy, Query(description="Field to sort by.")] = "updated_at",
) -> SegmentList:
    async with ctx.pool.acquire() as conn:
        total, rows = await list_segments(
            conn,
            who.account_id,
            search=search or None,
            order_by=order_by,
            descending=ordering == "desc",
            limit=page_size,
            offset=(page - 1) * page_size,
        )
    return SegmentList(
        pagination=pagination(page, page_size, total), items=[segment_item(r) for r in rows]
    )


@router.post("/", response_model=Segment, summary="Create a segment (build starts at once)")
async def create(ctx: Ctx, who: Writer, body: SegmentCreate) -> Segment:
    # One transaction: the segments its rules reference are checked and saved under one lock
    # (api_shim.validation), so none of them can be deleted in between.
    async with ctx.pool.acquire() as conn, conn.transaction():
        tree = await check_segment_rules(conn, who.account_id, body)
        values = SegmentValues(
            name=body.name,
            color=body.color,
            description=body.description,
            dialect="v2",
            rules=body.rules_json,
            contact_list_ids=list(dict.fromkeys(body.contact_list_ids)),
            display_fields=[],
            time_relative=tree.depends_on_clock,
            timezone=body.timezone,
            local_calendar=tree.follows_local_calendar,
        )
        row = await segments.create(conn, who.account_id, values, tree.segment_ids())
    return segment_full(row)


@router.get("/{segment_id}/", response_model=Segment, responses=_404, summary="Get a segment")
async def get(ctx: Ctx, who: Reader, segment_id: UUID) -> Segment:
    async with ctx.pool.acquire() as conn:
        row = await get_segment(conn, who.account_id, segment_id)
    if row is None:
        raise not_found("segment", "segment_id")
    return segment_full(row)


@router.patch("/{segment_id}/", response_model=Segment, responses=_404, summary="Update")
async def patch(
    ctx: Ctx, who: Writer, segment_id: UUID, body: Annotated[SegmentPatch, Body()]
) -> Segment:
    async with ctx.pool.acquire() as conn:
        row = await segments.patch(conn, who.account_id, segment_id, body)
    return segment_full(row)


_409: dict[int | str, dict[str, Any]] = {
    409: ERROR_RESPONSES[400]
    | {"description": "Other segments are built from it: one error per referring segment"}
}


@router.delete(
    "/{segment_id}/",
    status_code=204,
    responses={**_404, **_409},
    summary="Delete a segment (409 while other segments reference it)",
)
async def delete(ctx: Ctx, who: Writer, segment_id: UUID) -> Response:
    async with ctx.pool.acquire() as conn:
        await segments.delete(conn, who.account_id, segment_id)
    return Response(status_code=204)


@router.post(
    "/{segment_id}/rebuild/", response_model=Segment, responses=_404, summary="Rebuild now"
)
async def rebuild(ctx: Ctx, who: Writer, segment_id: UUID) -> Segment:
    async with ctx.pool.acquire() as conn:
        row = await segments.rebuild(conn, who.account_id, segment_id)
    return segment_full(row)


@router.get(
    "/{segment_id}/contacts/",
    response_model=SegmentContactList,
    responses=_404,
    summary="Members of a segment (empty unless DONE)",
)
async def contacts(
    ctx: Ctx,
    who: Reader,
    segment_id: UUID,
    page: Page = 1,
    page_size: PageSize = 25,
    search: Annotated[SearchText | None, Query(description="Email or name contains.")] = None,
) -> SegmentContactList:
    async with ctx.pool.acquire() as conn:
        segment = await get_segment(conn, who.account_id, segment_id)
        if segment is None:
            raise not_found("segment", "segment_id")
        total, rows = 0, list[asyncpg.Record]()
        if segment["status"] == "DONE":
            total, rows = await segment_members(
                conn,
                who.account_id,
                segment_id,
                search=search or None,
                limit=page_size,
                offset=(page - 1) * page_size,
            )
    return SegmentContactList(
        pagination=pagination(page, page_size, total),
        items=[SegmentContact.model_validate(dict(r)) for r in rows],
    )


def pagination(page: int, page_size: int, total: int) -> Pagination:
    return Pagination(
        page=page,
        page_size=page_size,
        total_count=total,
        total_pages=math.ceil(total / page_size),
    )


def segment_item(row: asyncpg.Record) -> SegmentItem:
    return SegmentItem(
        id=row["id"],
        name=row["name"],
        color=row["color"],
        status=row["status"],
        total_count=segments.shown_count(row),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def segment_full(row: asyncpg.Record) -> Segment:
    return Segment(
        id=row["id"],
        name=row["name"],
        color=row["color"],
        description=row["description"],
        rules_json=v2_rules(row["dialect"], row["rules"]),
        contact_list_ids=list(row["contact_list_ids"]),
        status=row["status"],
        total_count=segments.shown_count(row),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        display_fields=row["display_fields"],
        timezone=row["timezone"],
        error_reason=row["error_reason"] if row["status"] == "FAILED" else None,
    )
