"""POST /api/v2/segments/preview/ over HTTP: validated exactly as create (one table of
invalid bodies, run against both), scopes, tenant isolation, both kinds of answer, the time
bound, and that nothing is written."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.api_fixtures import *  # noqa: F403
from tests.api_fixtures import Tenant, client_with, make_contact
from tests.preview_data import RULES, Generated, generate_account, table_fingerprints
from tests.segment_data import fill_segment, insert_segment
from worker.accounts import create_api_key
from worker.preview import GRACE_MS
from worker.settings import Settings

PREVIEW = "/api/v2/segments/preview/"
CREATE = "/api/v2/segments/"
SUBSCRIBED = {"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"}


@dataclass(frozen=True)
class Refs:
    """Ids the invalid bodies name: the caller's list, another account's list and segment."""

    own_list: str
    other_list: str
    other_segment: str


def _one(condition: dict[str, Any]) -> dict[str, Any]:
    return {"any": [{"all": [condition]}]}


def _opened(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "activity",
        "metric": "open",
        "operator": "ever",
        "days_window": {"mode": "last", "days": 30},
        **changes,
    }


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = SUBSCRIBED
    for _ in range(levels):
        node = {"all": [node]}
    return node


_DROP = object()  # a body change that removes the key

# (case, body changes from the refs, the 400's locations). Each change replaces a key of a
# valid preview body ({contact_list_ids: [own list], rules_json: subscribed}).
INVALID_BODIES: list[tuple[str, Callable[[Refs], dict[str, Any]], list[str]]] = [
    ("no list ids", lambda r: {"contact_list_ids": []}, ["contact_list_ids"]),
    ("list ids missing", lambda r: {"contact_list_ids": _DROP}, ["contact_list_ids"]),
    ("list id not a uuid", lambda r: {"contact_list_ids": ["nope"]}, ["contact_list_ids[0]"]),
    (
        "another account's list",
        lambda r: {"contact_list_ids": [r.own_list, r.other_list]},
        ["contact_list_ids[1]"],
    ),
    ("rules missing", lambda r: {"rules_json": _DROP}, ["rules_json"]),
    ("rules not an object", lambda r: {"rules_json": [SUBSCRIBED]}, ["rules_json"]),
    ("empty group", lambda r: {"rules_json": {"any": []}}, ["rules_json.any"]),
    (
        "unknown field",
        lambda r: {"rules_json": _one({**SUBSCRIBED, "field": "shoe_size"})},
        ["rules_json.any[0].all[0].field"],
    ),
    (
        "operator not for the type",
        lambda r: {"rules_json": _one({**SUBSCRIBED, "operator": "gt"})},
        ["rules_json.any[0].all[0].operator"],
    ),
    (
        "value of the wrong type",
        lambda r: {"rules_json": _one({**SUBSCRIBED, "field": "opens_count", "value": "x"})},
        ["rules_json.any[0].all[0].value"],
    ),
    (
        "unknown key in a condition",
        lambda r: {"rules_json": _one({**SUBSCRIBED, "colour": "red"})},
        ["rules_json.any[0].all[0].colour"],
    ),
    (
        "days not positive",
        lambda r: {"rules_json": _one(_opened(days_window={"mode": "last", "days": 0}))},
        ["rules_json.any[0].all[0].days_window.days"],
    ),
    (
        "campaigns included and excluded",
        lambda r: {
            "rules_json": _one(
                _opened(include_campaign_ids=[r.own_list], exclude_campaign_ids=[r.own_list])
            )
        },
        ["rules_json.any[0].all[0].exclude_campaign_ids"],
    ),
    (
        "another account's list in a rule",
        lambda r: {
            "rules_json": _one({"kind": "membership", "operator": "in", "list_ids": [r.other_list]})
        },
        ["rules_json.any[0].all[0].list_ids[0]"],
    ),
    (
        "another account's segment in a rule",
        lambda r: {
            "rules_json": {
                "all": [{"kind": "segment", "operator": "in", "segment_ids": [r.other_segment]}]
            }
        },
        ["rules_json.all[0].segment_ids[0]"],
    ),
    (
        "a bad nested node",
        lambda r: {"rules_json": {"all": [{"not": {**SUBSCRIBED, "value": None}}]}},
        ["rules_json.all[0].not.value"],
    ),
    (
        "nested too deep",
        lambda r: {"rules_json": _deep(7)},
        ["rules_json.all[0].all[0].all[0].all[0].all[0].all[0]"],
    ),
    ("unknown timezone", lambda r: {"timezone": "Mars/Olympus"}, ["timezone"]),
    ("unknown key", lambda r: {"shoe_size": 44}, ["shoe_size"]),
]


@pytest.fixture
async def refs(conn: asyncpg.Connection, tenant: Tenant, other: Tenant) -> Refs:
    other_segment = await insert_segment(conn, other.account_id, name="theirs")
    return Refs(str(tenant.list_id), str(other.list_id), str(other_segment))


def preview_body(refs: Refs, changes: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"contact_list_ids": [refs.own_list], "rules_json": _one(SUBSCRIBED)}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not _DROP}


@pytest.mark.parametrize(
    ("changes", "locations"),
    [pytest.param(changes, locations, id=case) for case, changes, locations in INVALID_BODIES],
)
async def test_invalid_bodies_are_the_same_400_as_on_create(
    client: httpx.AsyncClient,
    tenant: Tenant,
    refs: Refs,
    changes: Callable[[Refs], dict[str, Any]],
    locations: list[str],
) -> None:
    body = preview_body(refs, changes(refs))
    previewed = await client.post(PREVIEW, json=body, headers=tenant.headers)
    created = await client.post(
        CREATE, json={"name": "n", "color": "#7cb7de", **body}, headers=tenant.headers
    )
    assert (previewed.status_code, created.status_code) == (400, 400), created.text
    assert [e["loc"] for e in previewed.json()["errors"]] == locations
    assert previewed.json() == created.json()  # the same locations, messages and types


async def test_the_valid_base_body_is_valid(
    client: httpx.AsyncClient, tenant: Tenant, refs: Refs
) -> None:
    """The table's bodies are invalid by their change alone."""
    response = await client.post(PREVIEW, json=preview_body(refs, {}), headers=tenant.headers)
    assert response.status_code == 200, response.text


async def test_exact_answer_counts_only_the_accounts_universe(
    client: httpx.AsyncClient, conn: asyncpg.Connection, tenant: Tenant, other: Tenant
) -> None:
    mine = await _contacts_on_list(conn, tenant, 3)
    await make_contact(conn, tenant.account_id, "off-list@example.com")  # not in the universe
    await _contacts_on_list(conn, other, 4)
    body = {"contact_list_ids": [str(tenant.list_id)], "rules_json": _one(SUBSCRIBED)}
    response = await client.post(PREVIEW, json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"exact", "total_count", "sample", "took_ms"}
    assert answer["exact"] is True and answer["total_count"] == 3
    assert answer["sample"] == [{"id": str(i), "email": e} for i, e in sorted(mine.items())]
    assert answer["took_ms"] >= 0


async def test_estimate_answer_samples_only_the_account(
    api_settings: Settings, conn: asyncpg.Connection, tenant: Tenant, other: Tenant
) -> None:
    mine = await _contacts_on_list(conn, tenant, 12)
    await _contacts_on_list(conn, other, 12)
    body = {"contact_list_ids": [str(tenant.list_id)], "rules_json": _one(SUBSCRIBED)}
    async with client_with(api_settings, preview_timeout_ms=0) as http:
        await warm_up(http, tenant.headers)
        response = await estimated(http, body, tenant.headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["exact"] is False and answer["total_count"] is None
    # Twelve contacts, all sampled: the estimate is exact, and the sample is the first ten.
    assert answer["estimate"] == {"value": 12, "low": 12, "high": 12, "confidence": 0.95}
    assert answer["sample"] == [{"id": str(i), "email": e} for i, e in sorted(mine.items())[:10]]


async def test_a_segment_condition_reads_the_accounts_segment(
    client: httpx.AsyncClient, conn: asyncpg.Connection, tenant: Tenant
) -> None:
    segment = await insert_segment(conn, tenant.account_id)
    await fill_segment(conn, tenant.account_id, segment, 5)  # not on the tenant's list
    await conn.execute(
        """INSERT INTO contact_list_members (list_id, contact_id, account_id)
           SELECT $1, id, account_id FROM contacts WHERE account_id = $2""",
        tenant.list_id,
        tenant.account_id,
    )
    rules = {"all": [{"kind": "segment", "operator": "in", "segment_ids": [str(segment)]}]}
    body = {"contact_list_ids": [str(tenant.list_id)], "rules_json": rules}
    response = await client.post(PREVIEW, json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["total_count"] == 5


async def test_preview_needs_the_read_scope(
    client: httpx.AsyncClient, conn: asyncpg.Connection, tenant: Tenant
) -> None:
    body = {"contact_list_ids": [str(tenant.list_id)], "rules_json": _one(SUBSCRIBED)}
    assert (await client.post(PREVIEW, json=body)).status_code == 401
    writer = await tenant.key_with(conn, "segments:write", "contacts:write")
    refused = await client.post(PREVIEW, json=body, headers=writer)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["type"] == "missing_scope"
    reader = await tenant.key_with(conn, "segments:read")
    assert (await client.post(PREVIEW, json=body, headers=reader)).status_code == 200


@pytest.fixture(scope="module")
async def generated(pool: asyncpg.Pool) -> AsyncIterator[Generated]:
    yield await generate_account(pool, contacts=4_000, events=30_000)


async def _generated_tenant(conn: asyncpg.Connection, data: Generated) -> dict[str, str]:
    return {"X-API-Key": await create_api_key(conn, data.account_id, ["segments:read"])}


@pytest.mark.parametrize("timeout_ms", [1, 50])
async def test_an_answer_never_comes_later_than_timeout_and_grace(
    api_settings: Settings, conn: asyncpg.Connection, generated: Generated, timeout_ms: int
) -> None:
    headers = await _generated_tenant(conn, generated)
    body = {"contact_list_ids": [str(generated.lists["all"])], "rules_json": RULES["rare"]}
    statuses = []
    async with client_with(api_settings, preview_timeout_ms=timeout_ms) as http:
        await warm_up(http, headers)
        for _ in range(5):
            started = time.monotonic()
            response = await http.post(PREVIEW, json=body, headers=headers)
            elapsed_ms = (time.monotonic() - started) * 1000
            assert elapsed_ms <= timeout_ms + GRACE_MS, response.text
            statuses.append(response.status_code)
            if response.status_code == 200:
                assert response.json()["took_ms"] <= timeout_ms + GRACE_MS
    # A 503 (not even the sample drawn in time) is within the bound too, but only a machine
    # starved of CPU gives one here.
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses


async def test_a_preview_over_http_writes_nothing(
    api_settings: Settings, conn: asyncpg.Connection, generated: Generated
) -> None:
    headers = await _generated_tenant(conn, generated)
    body = {"contact_list_ids": [str(generated.lists["all"])], "rules_json": RULES["engaged"]}
    before = await table_fingerprints(conn)
    for timeout_ms in (0, 60_000):  # the estimate, then the exact count
        # No relay: it would mark other tests' outbox rows sent.
        async with client_with(
            api_settings, preview_timeout_ms=timeout_ms, outbox_relay_enabled=False
        ) as http:
            if timeout_ms:
                response = await http.post(PREVIEW, json=body, headers=headers)
            else:
                response = await estimated(http, body, headers)
        assert response.status_code == 200, response.text
        assert response.json()["exact"] is (timeout_ms > 0)
    assert await table_fingerprints(conn) == before


async def estimated(
    http: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """The answer of an app whose timeout is 0. A machine starved of CPU may not draw (503)
    or test (value null) the sample within the 200 ms: then ask again, a few times."""
    for _ in range(5):
        response = await http.post(PREVIEW, json=body, headers=headers)
        if response.status_code != 503 and response.json()["estimate"]["value"] is not None:
            break
    return response


async def warm_up(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """A first request of a new app pays for its start (the pool's connections, lazily built
    validators): not the preview's time."""
    for _ in range(2):
        await http.post(PREVIEW, json={}, headers=headers)


async def _contacts_on_list(
    conn: asyncpg.Connection, tenant: Tenant, count: int
) -> dict[uuid.UUID, str]:
    out = {}
    for i in range(count):
        email = f"p{i}-{uuid.uuid4().hex[:8]}@example.com"
        contact = await make_contact(conn, tenant.account_id, email)
        await conn.execute(
            """INSERT INTO contact_list_members (list_id, contact_id, account_id)
               VALUES ($1, $2, $3)""",
            tenant.list_id,
            contact,
            tenant.account_id,
        )
        out[contact] = email
    return out
