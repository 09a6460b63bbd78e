"""Custom fields (`contact_fields`) over HTTP: list, declare or change type, remove.

Reading takes `segments:read`; declaring takes `contacts:write`. Stored values are never
rewritten: after a type change a value that does not read as the new type reads as null, and
the segments that use the field are built again (DONE, or FAILED when their rules no longer
fit the new type). See worker/fields.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Depends, Path, Response
from pydantic import BaseModel, ConfigDict

from api_shim.auth import CONTACTS, READ, Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, ApiError, not_found
from api_shim.lists import in_use
from api_shim.routing import SlashOptionalRouter
from worker import fields

router = SlashOptionalRouter(
    prefix="/api/v2/fields", tags=["custom fields"], responses={**ERROR_RESPONSES}
)
Ctx = Annotated[AppContext, Depends(app_context)]
Reader = Annotated[Principal, Depends(require(READ))]
Writer = Annotated[Principal, Depends(require(CONTACTS))]
Key = Annotated[str, Path(description=f"The key in `contacts.attributes`: {fields.KEY_HELP}.")]
DataType = Literal["text", "number", "datetime", "boolean", "list"]


class CustomField(BaseModel):
    key: str
    data_type: DataType


class CustomFields(BaseModel):
    """Every custom field of the account (not paginated)."""

    items: list[CustomField]


class FieldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_type: DataType


class SegmentName(BaseModel):
    id: UUID
    name: str


class FieldChanged(BaseModel):
    key: str
    data_type: DataType
    previous_type: DataType | None
    rebuilt_segments: list[SegmentName]


@router.get("/", response_model=CustomFields, summary="List the account's custom fields")
async def all_fields(ctx: Ctx, who: Reader) -> CustomFields:
    async with ctx.pool.acquire() as conn:
        rows = await fields.all_fields(conn, who.account_id)
    return CustomFields(items=[CustomField.model_validate(dict(r)) for r in rows])


@router.put(
    "/{key}/",
    response_model=FieldChanged,
    summary="Declare a custom field, or change its type (segments using it are rebuilt)",
)
async def declare(ctx: Ctx, who: Writer, key: Key, body: FieldIn) -> FieldChanged:
    async with ctx.pool.acquire() as conn:
        try:
            change = await fields.declare_field(conn, who.account_id, key, body.data_type)
        except fields.FieldInvalid as exc:
            raise ApiError.one(400, str(exc), "invalid_key", "key") from None
    return FieldChanged(
        key=change.key,
        data_type=change.data_type,
        previous_type=change.previous_type,
        rebuilt_segments=[SegmentName(id=s.id, name=s.name) for s in change.rebuilt],
    )


_DELETE_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: ERROR_RESPONSES[400] | {"description": "No such custom field in this account"},
    409: ERROR_RESPONSES[400] | {"description": "Segments use the field: one error per segment"},
}


@router.delete(
    "/{key}/",
    status_code=204,
    responses=_DELETE_RESPONSES,
    summary="Remove a custom field (its stored values stay; 409 while a segment uses it)",
)
async def remove(ctx: Ctx, who: Writer, key: Key) -> Response:
    async with ctx.pool.acquire() as conn:
        try:
            removed = await fields.remove_field(conn, who.account_id, key)
        except fields.FieldInUse as exc:
            raise in_use(exc.segments, "field", "using this field in its rules") from None
    if not removed:
        raise not_found("custom field", "key")
    return Response(status_code=204)
