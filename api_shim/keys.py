"""API keys over HTTP: create with chosen scopes (the key is shown once), list without the
keys, revoke. All three take the `keys:admin` scope: a key that can create keys can give
itself any scope, so none of the data scopes may imply it. The command line does the same
without a key (`segments key create|list|revoke ACCOUNT_ID`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends
from pydantic import BaseModel, ConfigDict, Field

from api_shim.auth import Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, not_found
from api_shim.routing import SlashOptionalRouter
from api_shim.types import ShortText
from worker.accounts import KEYS_ADMIN, IssuedKey, issue_api_key, list_api_keys
from worker.accounts import revoke_api_key as revoke_key

router = SlashOptionalRouter(
    prefix="/api/v2/keys", tags=["API keys"], responses={**ERROR_RESPONSES}
)
Ctx = Annotated[AppContext, Depends(app_context)]
Admin = Annotated[Principal, Depends(require(KEYS_ADMIN))]
Scope = Literal["segments:read", "segments:write", "contacts:write", "keys:admin"]


class ApiKey(BaseModel):
    """A key as listed: never the key itself."""

    id: UUID
    name: str | None
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None


class NewApiKey(ApiKey):
    key: str = Field(description="The key. Shown this once: it is stored only as a hash.")


class ApiKeys(BaseModel):
    """Every key of the account, revoked ones included (not paginated)."""

    items: list[ApiKey]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scopes: Annotated[list[Scope], Field(min_length=1)]
    name: ShortText | None = None


def _new(issued: IssuedKey) -> NewApiKey:
    return NewApiKey.model_validate({**issued.info.shown(), "key": issued.key})


@router.post("/", status_code=201, response_model=NewApiKey, summary="Create an API key")
async def create(ctx: Ctx, who: Admin, body: KeyIn) -> NewApiKey:
    async with ctx.pool.acquire() as conn:
        issued = await issue_api_key(conn, who.account_id, body.scopes, body.name)
    return _new(issued)


@router.get("/", response_model=ApiKeys, summary="List API keys (without the keys)")
async def all_keys(ctx: Ctx, who: Admin) -> ApiKeys:
    async with ctx.pool.acquire() as conn:
        keys = await list_api_keys(conn, who.account_id)
    return ApiKeys(items=[ApiKey.model_validate(k.shown()) for k in keys])


@router.delete(
    "/{key_id}/",
    response_model=ApiKey,
    responses={404: ERROR_RESPONSES[400] | {"description": "No such key in this account"}},
    summary="Revoke an API key (at once; it stays listed with revoked_at)",
)
async def revoke(ctx: Ctx, who: Admin, key_id: UUID) -> ApiKey:
    async with ctx.pool.acquire() as conn:
        info = await revoke_key(conn, who.account_id, key_id)
    if info is None:
        raise not_found("API key", "key_id")
    return ApiKey.model_validate(info.shown())
