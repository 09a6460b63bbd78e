"""Routes whose trailing slash is optional: `/api/v2/segments/` and `/api/v2/segments` both
answer (no redirect, which some clients do not follow for POST). The OpenAPI document shows
the form each route is documented with; the twin is served but not listed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter


class SlashOptionalRouter(APIRouter):
    def add_api_route(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        twin = path[:-1] if path.endswith("/") else path + "/"
        hidden = {**kwargs, "include_in_schema": False}
        hidden.pop("operation_id", None)
        super().add_api_route(twin, endpoint, **hidden)
