"""The demo's HTTP client: the service's public API only, as any user would call it, paced by
the rate limit the API announces (X-RateLimit-Remaining; 429 and 503 wait Retry-After)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


class DemoError(Exception):
    """Something the user must fix (the message says what); the demo stops."""


class ApiClient:
    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers={"X-API-Key": api_key}, timeout=timeout_s
        )
        self.limit: int | None = None
        self.remaining: int | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of a 2xx; waits out 429 and 503 (a few times); raises DemoError
        with the API's error messages for anything else."""
        for _ in range(10):
            response = await self._http.request(method, path, **kwargs)
            self._note_limit(response)
            if response.status_code in (429, 503):
                await asyncio.sleep(_retry_after(response))
                continue
            if response.status_code == 401:
                raise DemoError(
                    f"the API at {self.base_url} does not know the demo's API key: is it "
                    "serving the database the demo loaded (SEGMENTS_DATABASE_URL)?"
                )
            if response.status_code >= 400:
                raise DemoError(
                    f"{method} {path} answered {response.status_code}: {_errors(response)}"
                )
            return None if response.status_code == 204 else response.json()
        raise DemoError(f"{method} {path}: the API stayed busy (429/503); try again later")

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, body: Any) -> Any:
        return await self.request("POST", path, json=body)

    def pace_s(self, wanted_s: float) -> float:
        """How long to wait before the next poll: `wanted_s`, or longer when the key's rate
        limit is nearly used up (then at the rate the bucket refills)."""
        if self.limit is None or self.remaining is None or self.remaining > 10:
            return wanted_s
        return max(wanted_s, 60.0 / self.limit)

    def _note_limit(self, response: httpx.Response) -> None:
        limit = response.headers.get("X-RateLimit-Limit")
        remaining = response.headers.get("X-RateLimit-Remaining")
        if limit is not None and remaining is not None:
            self.limit, self.remaining = int(limit), int(remaining)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.5, min(30.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


def _errors(response: httpx.Response) -> str:
    try:
        body = response.json()
        return "; ".join(f"{e.get('loc')}: {e.get('msg')}" for e in body["errors"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.text[:500]


async def api_answers(base_url: str, timeout_s: float = 2.0) -> bool:
    """Whether something answers HTTP at `base_url`/healthz."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as http:
            response = await http.get(base_url.rstrip("/") + "/healthz")
    except httpx.HTTPError:
        return False
    return response.status_code == 200
