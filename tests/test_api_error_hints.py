"""Errors a newcomer meets first say what to do: a body without `Content-Type: application/json`,
a malformed email, a write to the read-only v1 API, a segment that is not there (with the
location, whichever the method)."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, segment_body


def _only(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    (error,) = response.json()["errors"]
    assert isinstance(error, dict)
    return error


async def test_a_json_body_without_its_content_type_says_which_header_to_send(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    body = json.dumps(segment_body(tenant.list_id))
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = dict(tenant.headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        error = _only(await client.post("/api/v2/segments/", content=body, headers=headers), 415)
        assert error["loc"] == "Content-Type" and error["type"] == "unsupported_media_type"
        assert "Content-Type: application/json" in str(error["msg"])
    # The same body with the header is accepted, and a JSON error stays a 400 at its place.
    json_headers = {**tenant.headers, "Content-Type": "application/json"}
    created = await client.post("/api/v2/segments/", content=body, headers=json_headers)
    assert created.status_code == 200, created.text
    error = _only(await client.post("/api/v2/segments/", content=b"{", headers=json_headers), 400)
    assert error["loc"] == "body"


async def test_a_malformed_email_says_what_an_email_looks_like(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for email in ("not-an-email", "two@@example.com", "a b@example.com", "@example.com"):
        response = await client.post(
            "/api/v2/contacts", json={"contacts": [{"email": email}]}, headers=tenant.headers
        )
        error = _only(response, 400)
        assert error["loc"] == "contacts[0].email" and error["type"] == "invalid_email"
        assert "name@domain" in str(error["msg"])
    ok = await client.post(
        "/api/v2/contacts",
        json={"contacts": [{"email": " Ada@Example.COM "}]},
        headers=tenant.headers,
    )
    assert ok.status_code == 200 and ok.json()["items"][0]["email"] == "ada@example.com"


async def test_writes_to_v1_name_the_v2_endpoint(client: httpx.AsyncClient, tenant: Tenant) -> None:
    some_id = uuid.uuid4()
    expected = {
        ("POST", "/api/v1/segments"): "POST /api/v2/segments/",
        ("POST", "/api/v1/segments/"): "POST /api/v2/segments/",
        ("PATCH", f"/api/v1/segments/{some_id}"): "PATCH /api/v2/segments/{id}/",
        ("PUT", f"/api/v1/segments/{some_id}"): "PATCH /api/v2/segments/{id}/",
        ("DELETE", f"/api/v1/segments/{some_id}"): "DELETE /api/v2/segments/{id}/",
    }
    for (method, path), instead in expected.items():
        response = await client.request(method, path, json={}, headers=tenant.headers)
        error = _only(response, 405)
        assert error["type"] == "method_not_allowed"
        assert "read-only" in str(error["msg"]) and instead in str(error["msg"])
        assert response.headers["Allow"] == "GET, HEAD"
    listed = await client.get("/api/v1/segments", headers=tenant.headers)
    assert listed.status_code == 200  # reading still works


async def test_missing_segment_has_its_location_for_every_method(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    path = f"/api/v2/segments/{uuid.uuid4()}/"
    calls = [
        client.get(path, headers=tenant.headers),
        client.patch(path, json={"name": "renamed"}, headers=tenant.headers),
        client.delete(path, headers=tenant.headers),
        client.post(f"{path}rebuild/", headers=tenant.headers),
    ]
    for call in calls:
        error = _only(await call, 404)
        assert error == {"loc": "segment_id", "msg": "segment not found", "type": "not_found"}
