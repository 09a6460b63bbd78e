"""A contact by id or email, and which segments it is in (`segments:read`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Path
from pydantic import BaseModel, Field

from api_shim.auth import READ, Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, not_found
from api_shim.models import Contact
from api_shim.routing import SlashOptionalRouter
from worker.contact_lookup import contact_list_ids, find_contact, segments_of_contact
from worker.db import Conn

router = SlashOptionalRouter(
    prefix="/api/v2/contacts", tags=["contacts"], responses={**ERROR_RESPONSES}
)
Ctx = Annotated[AppContext, Depends(app_context)]
Reader = Annotated[Principal, Depends(require(READ))]
ContactRef = Annotated[
    str, Path(description="The contact's id, or its email (any case).", max_length=320)
]
_404: dict[int | str, dict[str, Any]] = {
    404: ERROR_RESPONSES[400] | {"description": "No such contact in this account"}
}


class ContactDetail(Contact):
    isp_id: int | None
    list_ids: list[UUID] = Field(description="The lists the contact is a member of.")


class ContactSegment(BaseModel):
    id: UUID
    number: int
    name: str
    added_at: datetime


class ContactSegments(BaseModel):
    """Every DONE segment whose membership holds the contact (not paginated)."""

    items: list[ContactSegment]


@router.get("/{contact}/", response_model=ContactDetail, responses=_404, summary="Get a contact")
async def get(ctx: Ctx, who: Reader, contact: ContactRef) -> ContactDetail:
    async with ctx.pool.acquire() as conn:
        row = await _find(conn, who.account_id, contact)
        list_ids = await contact_list_ids(conn, who.account_id, row["id"])
    return ContactDetail.model_validate({**dict(row), "list_ids": list_ids})


@router.get(
    "/{contact}/segments/",
    response_model=ContactSegments,
    responses=_404,
    summary="The segments a contact is in",
)
async def segments(ctx: Ctx, who: Reader, contact: ContactRef) -> ContactSegments:
    async with ctx.pool.acquire() as conn:
        row = await _find(conn, who.account_id, contact)
        rows = await segments_of_contact(conn, who.account_id, row["id"])
    return ContactSegments(items=[ContactSegment.model_validate(dict(r)) for r in rows])


async def _find(conn: Conn, account_id: UUID, ref: str) -> Any:
    row = await find_contact(conn, account_id, ref)
    if row is None:
        raise not_found(f"contact {ref!r}", "contact")
    return row
