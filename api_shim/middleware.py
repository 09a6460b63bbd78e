"""ASGI middleware: the body size limit, the rate-limit headers and the access log (and the
base of the request metrics, api_shim/metrics.py).

All are plain ASGI (not BaseHTTPMiddleware) so they see every response, errors included.
"""

from __future__ import annotations

import time

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_shim.auth import RATE_SCOPE_KEY
from api_shim.errors import ErrorItem, error_response
from api_shim.ratelimit import RateDecision

log = structlog.get_logger("api_shim.access")


class HttpMiddleware:
    """Plain ASGI middleware for HTTP requests: `handle` sees each one; other scopes
    (lifespan) pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class ObservedMiddleware(HttpMiddleware):
    """Sees each request's final status and duration: `finished` is called once the app has
    answered (or failed: status 500)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500  # if the app dies before answering

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self.finished(scope, status, time.perf_counter() - started)

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        raise NotImplementedError


class AccessLog(ObservedMiddleware):
    """One `http.request` line per request (uvicorn's own access log is off). The path only:
    never the query string, which may carry secrets, nor any header (the API key)."""

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        log.info(
            "http.request",
            method=scope["method"],
            path=scope["path"],
            status=status,
            duration_ms=round(seconds * 1000, 1),
        )


class BodyLimit(HttpMiddleware):
    """413 for bodies over `max_bytes`, before anything parses them.

    A declared Content-Length over the limit is refused without reading a byte; a body sent
    without one (chunked) is read up to the limit, then refused. Accepted bodies are replayed
    to the app unchanged.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        item = ErrorItem(
            loc="body",
            msg=f"request body is larger than {self.max_bytes} bytes",
            type="body_too_large",
        )
        await error_response(413, [item], {"Connection": "close"})(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect as usual

    return replay


class RateLimitHeaders(HttpMiddleware):
    """Copies the rate decision made during authentication into the response headers."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            decision = scope.get(RATE_SCOPE_KEY)
            if message["type"] == "http.response.start" and isinstance(decision, RateDecision):
                headers = MutableHeaders(scope=message)
                for name, value in decision.headers().items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
