"""One error shape for every failure the API answers (README: HTTP API, Errors):

    {"errors": [{"loc": "rules_json.any[0].all[2].value", "msg": "...", "type": "..."}]}

`loc` is a dotted location in the request (body keys, query or path parameter names) or
null when the problem is not about one input; `type` is a stable machine-readable code.
Every exception that can reach the client is mapped here, in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.rules import RulesInvalid
from worker.rules.errors import join_loc

log = structlog.get_logger(__name__)

# FastAPI prefixes each location with where the input came from; our locations name only
# the input itself (`page`, `rules_json.any[0]`), like the rule parsers do.
_LOC_SOURCES = {"body", "query", "path", "header", "cookie"}
_FRIENDLY = {
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "json_invalid": "is not valid JSON",
}
_TYPE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    503: "unavailable",
}
# The database or broker is away or slow: the client may retry; not the client's fault.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.QueryCanceledError,
    asyncpg.LockNotAvailableError,
    asyncpg.DeadlockDetectedError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.InternalClientError,  # a connection the server ended (worker/errors.py)
)


class ErrorItem(BaseModel):
    loc: str | None
    msg: str
    type: str


class ErrorBody(BaseModel):
    errors: list[ErrorItem]


class ApiError(Exception):
    """Raised anywhere in a request; answered with the shape above."""

    def __init__(
        self,
        status: int,
        errors: Sequence[ErrorItem],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__("; ".join(e.msg for e in errors))
        self.status = status
        self.errors = list(errors)
        self.headers = dict(headers or {})

    @classmethod
    def one(
        cls,
        status: int,
        msg: str,
        type_: str | None = None,
        loc: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ApiError:
        return cls(status, [ErrorItem(loc=loc, msg=msg, type=type_ or _type(status))], headers)

    @classmethod
    def invalid(cls, items: Iterable[tuple[str, str, str]]) -> ApiError:
        """A 400 from (loc, msg, type) triples."""
        return cls(400, [ErrorItem(loc=loc, msg=msg, type=t) for loc, msg, t in items])


def not_found(what: str, loc: str | None = None) -> ApiError:
    return ApiError.one(404, f"{what} not found", "not_found", loc)


def rules_errors(exc: RulesInvalid) -> list[ErrorItem]:
    return [ErrorItem(loc=e.loc, msg=e.msg, type=e.type) for e in exc.errors]


class ErrorResponse(JSONResponse):
    # ensure_ascii: a message may quote the client's input, which can hold lone surrogates
    # ("\ud800" is valid JSON); escaped, they can always be encoded.
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def error_response(
    status: int, errors: Sequence[ErrorItem], headers: Mapping[str, str] | None = None
) -> ErrorResponse:
    body = ErrorBody(errors=list(errors)).model_dump(mode="json")
    return ErrorResponse(body, status_code=status, headers=dict(headers or {}))


def validation_items(errors: Sequence[Any]) -> list[ErrorItem]:
    """pydantic/FastAPI errors -> items with our dotted locations."""
    items = []
    for e in errors:
        loc = tuple(e.get("loc", ()))
        if loc and loc[0] in _LOC_SOURCES:
            source, loc = loc[0], loc[1:]
            if source == "body" and loc and isinstance(loc[0], int) and len(loc) == 1:
                loc = ()  # JSON decode errors carry a character offset, not a location
        path = join_loc("", *(p if isinstance(p, int) else str(p) for p in loc)) or "body"
        kind = str(e.get("type", "invalid"))
        msg = _FRIENDLY.get(kind) or str(e.get("msg")).removeprefix("Value error, ")
        items.append(ErrorItem(loc=path, msg=msg, type=kind))
    return items


def _type(status: int) -> str:
    return _TYPE_BY_STATUS.get(status, "error")


async def _api_error(request: Request, exc: Exception) -> ErrorResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.errors, exc.headers)


async def _rules_invalid(request: Request, exc: Exception) -> ErrorResponse:
    assert isinstance(exc, RulesInvalid)
    return error_response(400, rules_errors(exc))


async def _request_validation(request: Request, exc: Exception) -> ErrorResponse:
    assert isinstance(exc, RequestValidationError)
    unparsed = _unparsed_body(request, exc.errors())
    if unparsed is not None:
        return error_response(415, [unparsed])
    return error_response(400, validation_items(exc.errors()))


def _unparsed_body(request: Request, errors: Sequence[Any]) -> ErrorItem | None:
    """A body sent without `Content-Type: application/json` is not parsed as JSON, so it
    fails as a whole ("should be an object"); say what the client must change instead."""
    content_type = request.headers.get("content-type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return None
    if not any(tuple(e.get("loc", ())) == ("body",) and e.get("type") != "missing" for e in errors):
        return None
    sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type header"
    return ErrorItem(
        loc="Content-Type",
        msg=f"the body must be JSON, sent with the header `Content-Type: application/json` "
        f"(got {sent}); with curl: -H 'Content-Type: application/json'",
        type="unsupported_media_type",
    )


async def _http_exception(request: Request, exc: Exception) -> ErrorResponse:
    assert isinstance(exc, StarletteHTTPException)
    msg = exc.detail if isinstance(exc.detail, str) else "request failed"
    return error_response(
        exc.status_code,
        [ErrorItem(loc=None, msg=msg, type=_type(exc.status_code))],
        exc.headers,
    )


async def _conflict(request: Request, exc: Exception) -> ErrorResponse:
    log.info("api.conflict", path=request.url.path, error=str(exc))
    return error_response(
        409,
        [ErrorItem(loc=None, msg="a concurrent change conflicted; retry", type="conflict")],
    )


async def _unavailable(request: Request, exc: Exception) -> ErrorResponse:
    log.warning("api.unavailable", path=request.url.path, error=repr(exc))
    item = ErrorItem(
        loc=None, msg="the database is unavailable or too slow; retry later", type="unavailable"
    )
    return error_response(503, [item], {"Retry-After": "5"})


async def _data_error(request: Request, exc: Exception) -> ErrorResponse:
    # Validation should catch every such value first; this keeps a miss a 400, not a 500.
    log.warning("api.data_error", path=request.url.path, error=str(exc))
    item = ErrorItem(loc=None, msg="a value is not one the database accepts", type="data_error")
    return error_response(400, [item])


async def _internal(request: Request, exc: Exception) -> ErrorResponse:
    log.exception("api.internal_error", path=request.url.path)
    return error_response(500, [ErrorItem(loc=None, msg="internal error", type="internal")])


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RulesInvalid, _rules_invalid)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(asyncpg.UniqueViolationError, _conflict)
    app.add_exception_handler(asyncpg.SerializationError, _conflict)
    app.add_exception_handler(asyncpg.DataError, _data_error)
    for exc_type in _UNAVAILABLE:
        app.add_exception_handler(exc_type, _unavailable)
    app.add_exception_handler(Exception, _internal)


# The responses every route documents (OpenAPI): any 4xx has this shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "Error (see README: HTTP API, Errors)"},
    400: {"model": ErrorBody, "description": "Invalid input, with the location of each problem"},
    401: {"model": ErrorBody, "description": "Missing or unknown API key"},
    403: {"model": ErrorBody, "description": "The key lacks the scope this route needs"},
    413: {"model": ErrorBody, "description": "Body larger than the configured limit"},
    429: {"model": ErrorBody, "description": "Rate limit exceeded; see Retry-After"},
    503: {"model": ErrorBody, "description": "Database unavailable; retry later"},
}
