"""One structured access line per request, through the real app: what was asked and how it
went, never the key or the query string; and a setting to turn it off."""

from __future__ import annotations

import httpx
from structlog.testing import capture_logs

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, client_with
from worker.settings import Settings


def _access_lines(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [line for line in logs if line["event"] == "http.request"]


async def test_each_request_logs_one_line_without_secrets(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    with capture_logs() as logs:
        ok = await client.get("/api/v2/segments/?search=private-words", headers=tenant.headers)
        refused = await client.get("/api/v2/segments/", headers={"X-API-Key": "wrong-key"})
    assert ok.status_code == 200 and refused.status_code == 401
    first, second = _access_lines(logs)
    assert first["method"] == "GET" and first["path"] == "/api/v2/segments/"
    assert first["status"] == 200 and second["status"] == 401
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert first["log_level"] == "info"
    text = str(logs)
    assert tenant.key not in text and "wrong-key" not in text and "private-words" not in text


async def test_the_access_log_can_be_turned_off(api_settings: Settings) -> None:
    async with client_with(api_settings, api_access_log=False) as quiet:
        with capture_logs() as logs:
            assert (await quiet.get("/healthz")).status_code == 200
    assert _access_lines(logs) == []
