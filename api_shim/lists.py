"""Contact lists over HTTP: list, create, rename, delete (members: api_shim.contacts).

Reading takes `segments:read`; writing takes `contacts:write`, like every contact data
write. A list that a segment uses is not deleted: 409 names each such segment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import Depends, Response
from pydantic import BaseModel, ConfigDict

from api_shim.auth import CONTACTS, READ, Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, ApiError, ErrorItem, not_found
from api_shim.routing import SlashOptionalRouter
from api_shim.types import Name
from worker import lists

router = SlashOptionalRouter(prefix="/api/v2/lists", tags=["lists"], responses={**ERROR_RESPONSES})
_404: dict[int | str, dict[str, Any]] = {
    404: ERROR_RESPONSES[400] | {"description": "No such list in this account"}
}
_409: dict[int | str, dict[str, Any]] = {
    409: ERROR_RESPONSES[400] | {"description": "Segments use the list: one error per segment"}
}

Ctx = Annotated[AppContext, Depends(app_context)]
Reader = Annotated[Principal, Depends(require(READ))]
Writer = Annotated[Principal, Depends(require(CONTACTS))]


class ContactList(BaseModel):
    id: UUID
    name: str
    created_at: datetime
    members_count: int


class ContactLists(BaseModel):
    """Every list of the account (not paginated)."""

    items: list[ContactList]


class ListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


def _shown(row: asyncpg.Record) -> ContactList:
    return ContactList.model_validate(dict(row))


@router.get("/", response_model=ContactLists, summary="List the account's contact lists")
async def all_lists(ctx: Ctx, who: Reader) -> ContactLists:
    async with ctx.pool.acquire() as conn:
        rows = await lists.all_lists(conn, who.account_id)
    return ContactLists(items=[_shown(r) for r in rows])


@router.post("/", status_code=201, response_model=ContactList, summary="Create a contact list")
async def create(ctx: Ctx, who: Writer, body: ListIn) -> ContactList:
    async with ctx.pool.acquire() as conn:
        row = await lists.create_list(conn, who.account_id, body.name)
    return _shown(row)


@router.get("/{list_id}/", response_model=ContactList, responses=_404, summary="Get a list")
async def get(ctx: Ctx, who: Reader, list_id: UUID) -> ContactList:
    async with ctx.pool.acquire() as conn:
        row = await lists.get_list(conn, who.account_id, list_id)
    if row is None:
        raise not_found("list", "list_id")
    return _shown(row)


@router.patch("/{list_id}/", response_model=ContactList, responses=_404, summary="Rename a list")
async def rename(ctx: Ctx, who: Writer, list_id: UUID, body: ListIn) -> ContactList:
    async with ctx.pool.acquire() as conn:
        row = await lists.rename_list(conn, who.account_id, list_id, body.name)
    if row is None:
        raise not_found("list", "list_id")
    return _shown(row)


@router.delete(
    "/{list_id}/",
    status_code=204,
    responses={**_404, **_409},
    summary="Delete a list and its memberships (409 while a segment uses it)",
)
async def delete(ctx: Ctx, who: Writer, list_id: UUID) -> Response:
    async with ctx.pool.acquire() as conn, conn.transaction():
        try:
            deleted = await lists.delete_list(conn, who.account_id, list_id)
        except lists.ListInUse as exc:
            raise in_use(
                exc.segments, "list", "restricted to this list or names it in its rules"
            ) from None
    if not deleted:
        raise not_found("list", "list_id")
    return Response(status_code=204)


def in_use(segments: list[lists.SegmentRef], what: str, how: str) -> ApiError:
    """409: one error per segment that uses the thing, saying what to change."""
    return ApiError(
        409,
        [
            ErrorItem(
                loc=None,
                msg=f"segment {s.name!r} ({s.id}) is {how}: change it first "
                f"(PATCH /api/v2/segments/{s.id}/) or delete it, then delete the {what}",
                type=f"{what}_in_use",
            )
            for s in segments
        ],
    )
