"""The simple segments API (README: HTTP API): integer ids (`segments.number`, numbered per
account from 1, sql/007), AND-ed rules, `contacts_count`, plus `status` and `error`.
Segments made here draw from all the account's contacts (no list ids); a segment made in v2
shows its lists in the read-only `contact_list_ids` (README: HTTP API).

Lists are complete: `GET /api/segments` and `GET /api/segments/contacts` stream every row
from a server-side cursor (memory stays flat); `limit`/`offset` are optional.

POST waits a bounded time (SEGMENTS_API_SIMPLE_WAIT_S) for the first build so that
`contacts_count` is usually filled; if the build takes longer the answer has it null and
the segment builds on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import Depends, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from api_shim import segments
from api_shim.auth import READ, WRITE, Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, not_found
from api_shim.members import contacts_json
from api_shim.models import Contact, Status
from api_shim.routing import SlashOptionalRouter
from api_shim.store import (
    SegmentValues,
    get_segment,
    get_segment_by_number,
    segments_in_number_order,
)
from api_shim.streaming import from_pool, json_array
from api_shim.types import DocumentedAs, Name
from api_shim.validation import check_simple_rules
from worker.db import Conn
from worker.rules import shown_item, simple_rules
from worker.rules.limits import MAX_SIMPLE_RULES
from worker.rules.simple import SimpleRuleIn
from worker.store import load_registry

router = SlashOptionalRouter(
    prefix="/api/segments", tags=["simple segments"], responses={**ERROR_RESPONSES}
)
# Segments made here have no colour of their own; v2 shows them in the palette's first blue.
DEFAULT_COLOR = "#7cb7de"
_POLL_S = 0.1
_MAX_NUMBER = 2**63 - 1  # segments.number is a bigint


class SimpleRule(BaseModel):
    field: str | None
    operator: str | None
    value: Any = None


class SimpleSegmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    rules: Annotated[list[Any], DocumentedAs(list[SimpleRuleIn])] = Field(
        description=f"AND-ed rules, 1 to {MAX_SIMPLE_RULES}."
    )


class SimpleSegment(BaseModel):
    id: int = Field(description="The segment's number in this account (the first is 1).")
    name: str
    rules: list[SimpleRule]
    contact_list_ids: list[UUID] = Field(
        description="Read-only. Empty: the segment draws from all the account's contacts. "
        "Otherwise (set in the v2 API) only contacts in at least one of these lists can "
        "match `rules`."
    )
    contacts_count: int | None = Field(description="Matching contacts; null unless DONE.")
    status: Status
    error: str | None = Field(description="Why the last build failed; null unless FAILED.")


Ctx = Annotated[AppContext, Depends(app_context)]
Limit = Annotated[int | None, Query(ge=1, le=_MAX_NUMBER, description="At most this many.")]
Offset = Annotated[int, Query(ge=0, le=_MAX_NUMBER, description="Skip this many.")]
Number = Annotated[int, Path(ge=1, le=_MAX_NUMBER, description="The segment's id.")]
_404: dict[int | str, dict[str, Any]] = {
    404: ERROR_RESPONSES[400] | {"description": "No such segment in this account"}
}


@router.get(
    "",
    response_model=None,
    responses={200: {"model": list[SimpleSegment], "description": "Every segment, by id"}},
    summary="List segments (all of them, streamed)",
)
async def list_(
    ctx: Ctx,
    who: Annotated[Principal, Depends(require(READ))],
    limit: Limit = None,
    offset: Offset = 0,
) -> StreamingResponse:
    async def produce(conn: Conn) -> AsyncIterator[bytes]:
        async for rows in segments_in_number_order(
            conn, who.account_id, limit=limit, offset=offset
        ):
            yield _SEGMENTS.dump_json([simple_segment(r) for r in rows])[1:-1]

    return StreamingResponse(
        from_pool(ctx, lambda conn: json_array(produce(conn)), event="simple.list"),
        media_type="application/json",
    )


@router.post("", response_model=SimpleSegment, summary="Create a segment")
async def create(
    ctx: Ctx, who: Annotated[Principal, Depends(require(WRITE))], body: SimpleSegmentCreate
) -> SimpleSegment:
    async with ctx.pool.acquire() as conn:
        registry = await load_registry(conn, who.account_id)
        tree = check_simple_rules(body.rules, registry)
        values = SegmentValues(
            name=body.name,
            color=DEFAULT_COLOR,
            description=None,
            dialect="simple",
            rules=body.rules,
            contact_list_ids=[],  # all the account's contacts
            display_fields=[],
            time_relative=tree.depends_on_clock,
        )
        row = await segments.create(conn, who.account_id, values)
    return simple_segment(await _wait_for_build(ctx, row))


@router.get(
    "/contacts",
    response_model=None,
    responses={
        200: {
            "model": list[Contact],
            "description": "Every member (streamed), or `limit` of them from `offset`, in "
            "contact id order; `[]` until the segment's build is DONE (header "
            "`X-Segment-Status` says its status).",
        },
        404: ERROR_RESPONSES[400] | {"description": "No such segment"},
    },
    summary="Contacts in a segment (all of them, streamed)",
)
async def contacts(
    ctx: Ctx,
    who: Annotated[Principal, Depends(require(READ))],
    segment_id: Annotated[int, Query(ge=1, le=_MAX_NUMBER, description="The segment's id.")],
    limit: Limit = None,
    offset: Offset = 0,
) -> Response:
    async with ctx.pool.acquire() as conn:
        segment = await get_segment_by_number(conn, who.account_id, segment_id)
    if segment is None:
        raise not_found("segment", "segment_id")
    headers = {"X-Segment-Status": segment["status"]}
    if segment["status"] != "DONE":
        return Response(b"[]", media_type="application/json", headers=headers)

    def produce(conn: Conn) -> AsyncIterator[bytes]:
        members = contacts_json(conn, who.account_id, segment["id"], limit=limit, offset=offset)
        return json_array(members)

    stream = from_pool(ctx, produce, event="simple.contacts", segment_id=str(segment["id"]))
    return StreamingResponse(stream, media_type="application/json", headers=headers)


@router.get("/{number}", response_model=SimpleSegment, responses=_404, summary="Get a segment")
async def get(
    ctx: Ctx, who: Annotated[Principal, Depends(require(READ))], number: Number
) -> SimpleSegment:
    async with ctx.pool.acquire() as conn:
        return simple_segment(await _by_number(conn, who.account_id, number))


@router.delete("/{number}", status_code=204, responses=_404, summary="Delete a segment")
async def delete(
    ctx: Ctx, who: Annotated[Principal, Depends(require(WRITE))], number: Number
) -> Response:
    async with ctx.pool.acquire() as conn:
        row = await _by_number(conn, who.account_id, number)
        await segments.delete(conn, who.account_id, row["id"])
    return Response(status_code=204)


async def _by_number(conn: Conn, account_id: UUID, number: int) -> asyncpg.Record:
    row = await get_segment_by_number(conn, account_id, number)
    if row is None:
        raise not_found("segment", "number")
    return row


async def _wait_for_build(ctx: AppContext, row: asyncpg.Record) -> asyncpg.Record:
    """The segment once its build is DONE or FAILED, or as it is when the wait runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.api_simple_wait_s
    while True:
        async with ctx.pool.acquire() as conn:
            latest = await get_segment(conn, row["account_id"], row["id"])
        if latest is None:  # deleted meanwhile: answer what was created
            return row
        if latest["status"] in ("DONE", "FAILED"):
            return latest
        remaining = deadline - loop.time()
        if remaining <= 0:
            return latest
        await asyncio.sleep(min(_POLL_S, remaining))


def simple_segment(row: asyncpg.Record) -> SimpleSegment:
    rules = simple_rules(row["dialect"], row["rules"])
    return SimpleSegment(
        id=row["number"],
        name=row["name"],
        rules=[SimpleRule(**shown_item(r)) for r in rules if isinstance(r, dict)],
        contact_list_ids=list(row["contact_list_ids"]),
        contacts_count=segments.shown_count(row),
        status=row["status"],
        error=row["error_reason"] if row["status"] == "FAILED" else None,
    )


_SEGMENTS = TypeAdapter(list[SimpleSegment])
