"""The simple segments API (seed 003): integer ids (`segments.number`), AND-ed rules,
`contacts_count`. Segments made here draw from all the account's contacts (no list ids).

POST waits a bounded time (SEGMENTS_API_SIMPLE_WAIT_S) for the first build so that
`contacts_count` is usually filled; if the build takes longer the answer has it null and
the segment builds on.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from api_shim import segments
from api_shim.auth import READ, WRITE, Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, not_found
from api_shim.members import segment_members
from api_shim.models import Contact
from api_shim.routing import SlashOptionalRouter
from api_shim.store import SegmentValues, get_segment_by_number, list_by_number
from api_shim.types import DocumentedAs, Name
from api_shim.validation import check_simple_rules
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
    id: int
    name: str
    rules: list[SimpleRule]
    contacts_count: int | None


Ctx = Annotated[AppContext, Depends(app_context)]


@router.get("", response_model=list[SimpleSegment], summary="List segments")
async def list_(
    ctx: Ctx,
    who: Annotated[Principal, Depends(require(READ))],
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Skip this many.")] = 0,
) -> list[SimpleSegment]:
    async with ctx.pool.acquire() as conn:
        _, rows = await list_by_number(conn, who.account_id, limit=limit, offset=offset)
    return [simple_segment(r, segments.shown_count(r)) for r in rows]


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
    count = await _wait_for_count(ctx, who.account_id, row["id"])
    return simple_segment(row, count)


@router.get(
    "/contacts",
    response_model=list[Contact],
    responses={404: ERROR_RESPONSES[400] | {"description": "No such segment"}},
    summary="Contacts in a segment (empty until its build is DONE)",
)
async def contacts(
    ctx: Ctx,
    who: Annotated[Principal, Depends(require(READ))],
    segment_id: Annotated[int, Query(ge=1, le=_MAX_NUMBER, description="The segment's id.")],
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many.")] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Skip this many.")] = 0,
) -> list[Contact]:
    async with ctx.pool.acquire() as conn:
        segment = await get_segment_by_number(conn, who.account_id, segment_id)
        if segment is None:
            raise not_found("segment", "segment_id")
        if segment["status"] != "DONE":
            return []
        _, rows = await segment_members(
            conn, who.account_id, segment["id"], limit=limit, offset=offset
        )
    return [Contact.model_validate(dict(r)) for r in rows]


async def _wait_for_count(ctx: AppContext, account_id: UUID, segment_id: UUID) -> int | None:
    """The segment's count once DONE, or None when it fails or the wait runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.api_simple_wait_s
    while True:
        row = await ctx.pool.fetchrow(
            "SELECT status, total_count FROM segments WHERE id = $1 AND account_id = $2",
            segment_id,
            account_id,
        )
        if row is None or row["status"] == "FAILED":
            return None
        if row["status"] == "DONE":
            count: int | None = row["total_count"]
            return count
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(_POLL_S, remaining))


def simple_segment(row: asyncpg.Record, count: int | None) -> SimpleSegment:
    rules = simple_rules(row["dialect"], row["rules"])
    return SimpleSegment(
        id=row["number"],
        name=row["name"],
        rules=[SimpleRule(**shown_item(r)) for r in rules if isinstance(r, dict)],
        contacts_count=count,
    )
