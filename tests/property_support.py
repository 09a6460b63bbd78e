"""What the property tests share: the example budget, the custom fields of the generated
data, a database connection hypothesis can drive, and loading generated data and referenced
segments into it."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import asyncpg

from tests.reference import Data
from tests.statement_capture import TESTS_APPLICATION
from tests.strategies import ACCOUNT, LISTS, OTHER_ACCOUNT, REFERENCED
from worker.compiler import (
    SegmentQuery,
    compile_count,
    compile_matching_among,
    compile_member_ids,
)
from worker.db import connect
from worker.rules import FieldRegistry

EXAMPLES = int(os.environ.get("SEGMENTS_PROPERTY_EXAMPLES", "400"))
REGISTRY = FieldRegistry.from_declarations(
    {
        "c_text": "text",
        "c_num": "number",
        "c_bool": "boolean",
        "c_date": "datetime",
        "c_list": "list",
        "country": "number",
    }
)


class Database:
    """A connection on a private event loop: hypothesis drives plain (sync) test functions."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(
            connect(dsn, application_name=TESTS_APPLICATION)
        )
        # Another session, to hold a segment's lock as a running build would.
        self.holder: asyncpg.Connection = self.loop.run_until_complete(
            connect(dsn, application_name=TESTS_APPLICATION)
        )

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.conn.close())
        self.run(self.holder.close())
        self.loop.close()


async def load_generated(conn: asyncpg.Connection, data: Data) -> None:
    for account in (ACCOUNT, OTHER_ACCOUNT):
        await conn.execute("INSERT INTO accounts (id, name) VALUES ($1, 'property')", account)
    await conn.executemany(
        "INSERT INTO contact_lists (id, account_id, name) VALUES ($1, $2, 'list')",
        [(list_id, ACCOUNT) for list_id in LISTS],
    )
    await conn.executemany(
        "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, $2, $3)",
        [(ACCOUNT, key, data_type) for key, data_type in data.custom_fields.items()],
    )
    await conn.executemany(
        """INSERT INTO contacts (id, account_id, email, status, name, company, country, city,
               tags, isp_id, attributes, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
        [
            (
                c.id,
                c.account_id,
                c.email,
                c.status,
                c.name,
                c.company,
                c.country,
                c.city,
                c.tags,
                c.isp_id,
                c.attributes,
                c.created_at,
                c.updated_at,
            )
            for c in data.contacts
        ],
    )
    await conn.executemany(
        "INSERT INTO contact_list_members (list_id, contact_id, account_id) VALUES ($1, $2, $3)",
        [(m.list_id, m.contact_id, m.account_id) for m in data.members],
    )
    await conn.executemany(
        """INSERT INTO events (account_id, contact_id, type, campaign_id, occurred_at)
           VALUES ($1, $2, $3, $4, $5)""",
        [(e.account_id, e.contact_id, e.type, e.campaign_id, e.occurred_at) for e in data.events],
    )


async def load_referenced(
    conn: asyncpg.Connection, data: Data, memberships: list[set[int]]
) -> dict[uuid.UUID, set[uuid.UUID]]:
    """The REFERENCED segments (PENDING: no change batch or build touches them) with the
    drawn members; returns their members for the reference evaluator."""
    members: dict[uuid.UUID, set[uuid.UUID]] = {}
    for segment_id, indexes in zip(REFERENCED, memberships, strict=True):
        await conn.execute(
            """INSERT INTO segments (id, account_id, name, dialect, rules)
               VALUES ($1, $2, 'referenced', 'v2', '{"any": []}')""",
            segment_id,
            ACCOUNT,
        )
        ids = {data.contacts[i].id if i < len(data.contacts) else uuid.uuid4() for i in indexes}
        await conn.executemany(
            "INSERT INTO segment_members (segment_id, contact_id, account_id) VALUES ($1, $2, $3)",
            [(segment_id, contact_id, ACCOUNT) for contact_id in ids],
        )
        members[segment_id] = ids
    return members


async def sql_answers(
    conn: asyncpg.Connection, query: SegmentQuery, candidates: list[uuid.UUID]
) -> tuple[int, set[uuid.UUID], set[uuid.UUID]]:
    count = compile_count(query)
    ids = compile_member_ids(query)
    among = compile_matching_among(query, candidates)
    n = await conn.fetchval(count.sql, *count.params)
    members = [r[0] for r in await conn.fetch(ids.sql, *ids.params)]
    assert len(members) == len(set(members)), "member ids must be distinct"
    matching = {r[0] for r in await conn.fetch(among.sql, *among.params)}
    return n, set(members), matching
