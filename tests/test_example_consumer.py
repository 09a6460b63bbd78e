"""examples/follow_membership.py against the real service (`segments api` as a process, a
worker, RabbitMQ): started before the segment's first build, it follows the initial message,
data changes and a rules change, and its copy ends equal to the service's membership."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx

from tests.api_fixtures import api_process, make_tenant, segment_body
from tests.examples_support import load_example
from tests.waiting import wait_for
from tests.worker_support import members, running_worker, seed_contacts, worker_settings


def rules(*countries: str) -> dict[str, Any]:
    condition = {"kind": "field", "field": "country", "operator": "in", "value": list(countries)}
    return {"any": [{"all": [condition]}]}


async def test_the_example_consumer_keeps_an_exact_copy(
    conn: asyncpg.Connection, database_url: str, amqp_url: str
) -> None:
    example = load_example("follow_membership.py")
    tenant = await make_tenant(conn)
    ids = await seed_contacts(conn, tenant.account_id, [{"country": c} for c in "ab" * 10])
    await conn.executemany(
        "INSERT INTO contact_list_members (list_id, contact_id, account_id) VALUES ($1, $2, $3)",
        [(tenant.list_id, contact_id, tenant.account_id) for contact_id in ids],
    )
    with api_process(database_url, amqp_url, SEGMENTS_API_RATE_LIMIT_PER_MINUTE="100000") as api:
        async with httpx.AsyncClient(base_url=api.url, headers=tenant.headers) as http:
            body = segment_body(tenant.list_id, rules_json=rules("a"))
            segment_id = (await http.post("/api/v2/segments/", json=body)).json()["id"]
            copy = example.MembershipCopy(example.Api(api.url, tenant.key, segment_id))
            stop, ready = asyncio.Event(), asyncio.Event()
            follower = asyncio.create_task(
                example.follow(amqp_url, copy, segment_id, stop=stop, ready=ready)
            )
            await asyncio.wait_for(ready.wait(), timeout=30)
            async with running_worker(worker_settings(database_url, amqp_url)):
                for round_ in range(4):
                    moved = [str(c) for c in ids[round_ * 3 : round_ * 3 + 3]]
                    for contact_id in moved:
                        await conn.execute(
                            "UPDATE contacts SET country = 'c' WHERE id = $1",
                            uuid.UUID(contact_id),
                        )
                    answer = await http.post(
                        "/api/v2/contacts/changes", json={"contact_ids": moved}
                    )
                    assert answer.status_code == 202, answer.text
                await http.patch(
                    f"/api/v2/segments/{segment_id}/", json={"rules_json": rules("b", "c")}
                )

                async def caught_up() -> bool:
                    last_seq = await conn.fetchval(
                        "SELECT last_seq FROM segment_change_feeds WHERE segment_id = $1",
                        uuid.UUID(segment_id),
                    )
                    status = await conn.fetchval(
                        "SELECT status FROM segments WHERE id = $1", uuid.UUID(segment_id)
                    )
                    return status == "DONE" and last_seq is not None and copy.last_seq == last_seq

                await wait_for(caught_up, timeout=60)
            stop.set()
            await asyncio.wait_for(follower, timeout=30)
    expected = await members(conn, uuid.UUID(segment_id))
    assert {uuid.UUID(c) for c in copy.members} == expected
    assert len(expected) == 16  # the twelve moved to "c" and the four "b" not moved
