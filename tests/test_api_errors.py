"""The error shape for every kind of bad request, the body limit, and the operator routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, segment_body

SEGMENTS = "/api/v2/segments/"


def assert_error_shape(response: httpx.Response, status: int) -> list[dict[str, object]]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    errors: list[dict[str, object]] = response.json()["errors"]
    assert errors
    for error in errors:
        assert set(error) == {"loc", "msg", "type"}
        assert isinstance(error["msg"], str)
        assert isinstance(error["type"], str)
    return errors


async def test_malformed_json_and_wrong_body_types_are_400(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = {**tenant.headers, "Content-Type": "application/json"}
    for content in (b"{", b"[]", b'"x"', b"null", b"\xff\xfe", b"[" * 5000):
        response = await client.post(SEGMENTS, content=content, headers=headers)
        errors = assert_error_shape(response, 400)
        assert errors[0]["loc"] == "body" or response.json()["errors"][0]["type"]


async def test_nul_and_lone_surrogates_are_refused_not_500(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = {**tenant.headers, "Content-Type": "application/json"}
    raw = segment_body(tenant.list_id)
    for name in ('"a\\u0000b"', '"\\ud800"', '"   "'):
        content = httpx.Request("POST", "/", json=raw).content.replace(
            b'"Active Gmail Subscribers"', name.encode()
        )
        errors = assert_error_shape(
            await client.post(SEGMENTS, content=content, headers=headers), 400
        )
        assert errors[0]["loc"] == "name"
    weird_rules = (
        b'{"any":[{"all":[{"kind":"field","field":"city","operator":"equals","value":"\\ud800"}]}]}'
    )
    content = httpx.Request("POST", "/", json={**raw, "rules_json": {}}).content.replace(
        b'"rules_json":{}', b'"rules_json":' + weird_rules
    )
    errors = assert_error_shape(await client.post(SEGMENTS, content=content, headers=headers), 400)
    assert errors[0]["loc"] == "rules_json.any[0].all[0].value"
    search = await client.get(SEGMENTS, params={"search": "a\x00"}, headers=tenant.headers)
    assert_error_shape(search, 400)


async def test_nan_and_huge_numbers_are_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = {**tenant.headers, "Content-Type": "application/json"}
    rules = (
        b'{"any":[{"all":[{"kind":"field","field":"opens_count","operator":"gt","value":NaN}]}]}'
    )
    content = httpx.Request(
        "POST", "/", json={**segment_body(tenant.list_id), "rules_json": {}}
    ).content
    content = content.replace(b'"rules_json":{}', b'"rules_json":' + rules)
    errors = assert_error_shape(await client.post(SEGMENTS, content=content, headers=headers), 400)
    assert errors[0]["loc"] == "rules_json.any[0].all[0].value"
    big = await client.get(SEGMENTS, params={"page": 10**30}, headers=tenant.headers)
    assert_error_shape(big, 400)


async def test_body_over_the_limit_is_413_before_parsing(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    huge = b'{"name": "' + b"x" * 1_100_000 + b'"}'
    declared = await client.post(
        SEGMENTS, content=huge, headers={**tenant.headers, "Content-Type": "application/json"}
    )
    errors = assert_error_shape(declared, 413)
    assert errors[0]["type"] == "body_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 100_000

    streamed = await client.post(SEGMENTS, content=chunks(), headers=tenant.headers)
    assert_error_shape(streamed, 413)
    # No key needed to be refused: the body is never read.
    assert (await client.post(SEGMENTS, content=huge)).status_code == 413


async def test_unknown_routes_and_methods_have_the_error_shape(client: httpx.AsyncClient) -> None:
    assert assert_error_shape(await client.get("/nope"), 404)[0]["type"] == "not_found"
    assert assert_error_shape(await client.put(SEGMENTS), 405)[0]["type"] == "method_not_allowed"


async def test_healthz_readyz_and_metrics(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    await client.get(SEGMENTS, headers=tenant.headers)
    ready = await client.get("/readyz")
    assert ready.status_code in (200, 503)  # the relay may still be connecting
    assert ready.json()["database"] == "ok"
    assert isinstance(ready.json()["outbox"]["backlog"], int)
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert (
        'segments_http_request_duration_seconds_count{method="GET",route="/api/v2/segments",'
        'status="200"}' in text
    )
    assert "segments_outbox_backlog" in text


async def test_openapi_documents_every_route_and_the_error_shape(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert set(spec["paths"]) == {
        "/api/v2/segments/",
        "/api/v2/segments/{segment_id}/",
        "/api/v2/segments/preview/",
        "/api/v2/segments/{segment_id}/rebuild/",
        "/api/v2/segments/{segment_id}/contacts/",
        "/api/v2/segments/{segment_id}/contacts/export/",
        "/api/v1/segments",
        "/api/segments",
        "/api/segments/contacts",
        "/api/segments/{number}",
        "/api/v2/contacts",
        "/api/v2/events",
        "/api/v2/lists/{list_id}/members",
        "/api/v2/contacts/changes",
        "/api/v2/lists/",  # docs/manage.md from here
        "/api/v2/lists/{list_id}/",
        "/api/v2/fields/",
        "/api/v2/fields/{key}/",
        "/api/v2/keys/",
        "/api/v2/keys/{key_id}/",
        "/api/v2/contacts/{contact}/",
        "/api/v2/contacts/{contact}/segments/",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    create = spec["paths"]["/api/v2/segments/"]["post"]
    assert set(create["responses"]) >= {"200", "400", "401", "403", "413", "429"}
    assert "422" not in create["responses"]
    assert create["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    schemas = spec["components"]["schemas"]
    create_body = schemas["SegmentCreate"]["properties"]
    assert "#7cb7de" in create_body["color"]["enum"]

    # The recursive rule tree (docs/rules.md), with examples of nesting and `not`. (FastAPI
    # names the models `<Name>-Input` when they also appear in answers.)
    def named(ref: str) -> str:
        return ref.rsplit("/", 1)[1].removesuffix("-Input")

    rules = schemas[create_body["rules_json"]["$ref"].rsplit("/", 1)[1]]
    assert {named(option["$ref"]) for option in rules["anyOf"]} == {"AnyGroup", "AllGroup"}
    assert '{"not": {"kind"' in rules["description"]  # an example of nesting and `not`
    any_group = next(v for k, v in schemas.items() if k.startswith("AnyGroup"))
    node = any_group["properties"]["any"]["items"]
    refs = {named(option["$ref"]) for option in node["anyOf"] if "$ref" in option}
    assert refs == {"AnyGroup", "AllGroup", "NotGroup"}
    not_group = next(v for k, v in schemas.items() if k.startswith("NotGroup"))
    assert not_group["required"] == ["not"]
    assert set(spec["components"]["securitySchemes"]) == {"APIKeyHeader", "HTTPBearer"}
    list_params = {p["name"]: p for p in spec["paths"]["/api/v2/segments/"]["get"]["parameters"]}
    assert list_params["page_size"]["schema"]["maximum"] == 100
    assert list_params["order_by"]["schema"]["default"] == "updated_at"
