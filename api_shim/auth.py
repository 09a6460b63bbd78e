"""API keys: who is calling (401), how often (429), and may they (403).

Order matters: the key is resolved first, then the request is counted against the key's
rate limit (so a key probing routes it may not use still spends its budget), then the scope
is checked. Keys are stored as sha256 hashes (worker.accounts); a revoked key is unknown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api_shim.context import app_context
from api_shim.errors import ApiError
from worker.accounts import hash_api_key

READ = "segments:read"
WRITE = "segments:write"
CONTACTS = "contacts:write"

# Where the rate decision waits for the middleware that copies it into response headers.
RATE_SCOPE_KEY = "segments.rate_decision"

_API_KEY = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key of the account (scoped)."
)
_BEARER = HTTPBearer(auto_error=False, description="v1 only: the same API key as a bearer token.")
ApiKeyHeader = Annotated[str | None, Security(_API_KEY)]


@dataclass(frozen=True)
class Principal:
    key_id: UUID
    account_id: UUID
    scopes: frozenset[str]


Dependency = Callable[..., Awaitable[Principal]]


def require(scope: str) -> Dependency:
    """A dependency: the caller's key, from X-API-Key, holding `scope`."""

    async def dependency(request: Request, api_key: ApiKeyHeader = None) -> Principal:
        return await authenticate(request, api_key, scope)

    return dependency


def require_v1(scope: str) -> Dependency:
    """Like require(), also accepting `Authorization: Bearer <key>` (the v1 API's way)."""

    async def dependency(
        request: Request,
        api_key: ApiKeyHeader = None,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    ) -> Principal:
        return await authenticate(
            request, api_key or (bearer.credentials if bearer else None), scope
        )

    return dependency


async def authenticate(request: Request, key: str | None, scope: str) -> Principal:
    ctx = app_context(request)
    if not key:
        raise ApiError.one(401, "missing API key: send it in the X-API-Key header", loc=None)
    row = await ctx.pool.fetchrow(
        """SELECT id, account_id, scopes FROM api_keys
           WHERE key_hash = $1 AND revoked_at IS NULL""",
        hash_api_key(key),
    )
    if row is None:
        raise ApiError.one(401, "unknown or revoked API key")
    principal = Principal(row["id"], row["account_id"], frozenset(row["scopes"]))
    decision = ctx.limiter.take(principal.key_id)
    request.scope[RATE_SCOPE_KEY] = decision
    if not decision.allowed:
        raise ApiError.one(
            429,
            f"rate limit of {decision.limit} requests per minute exceeded; "
            f"retry in {decision.retry_after_s}s",
            headers=decision.headers(),
        )
    if scope not in principal.scopes:
        raise ApiError.one(403, f"this API key lacks the {scope!r} scope", "missing_scope")
    return principal
