"""Schemathesis over the served OpenAPI document, against a running `segments api`: for every
operation, generated valid and invalid requests must never get a server error, and the
answers must match what the document says (status codes, content types, bodies).

Bounded: a few dozen examples per operation, about a minute in all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.transport import Response

from api_shim.app import create_app
from tests.api_fixtures import ApiProcess, api_process, make_tenant
from worker.settings import Settings

DEFAULT_EXAMPLES = 25
EXAMPLES = int(os.environ.get("SEGMENTS_SCHEMATHESIS_EXAMPLES", DEFAULT_EXAMPLES))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(database_url: str, amqp_url: str) -> Iterator[ApiProcess]:
    with api_process(
        database_url,
        amqp_url,
        SEGMENTS_API_RATE_LIMIT_PER_MINUTE="1000000",
        SEGMENTS_API_SIMPLE_WAIT_S="0",  # no worker here: do not wait for builds
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def api_key(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        return (await make_tenant(conn)).key


# The document the server serves, built the same way without a server (collection needs it
# before any fixture runs); test_served_document_is_this_one checks they are the same.
DOCUMENT = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_served_document_is_this_one(server: ApiProcess) -> None:
    assert httpx.get(f"{server.url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(
    # SEGMENTS_SCHEMATHESIS_EXAMPLES raises the count for a deeper, randomised search.
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=EXAMPLES == DEFAULT_EXAMPLES,  # the default run is the same every time
)
def test_no_server_errors_and_answers_match_the_document(
    case: schemathesis.Case, api_key: str, server: ApiProcess
) -> None:
    response: Response = case.call(base_url=server.url, headers={"X-API-Key": api_key}, timeout=30)
    case.validate_response(response, checks=CHECKS)
