"""Contact data SQL of the ingestion API. Each function runs inside the caller's transaction,
which also writes the `contact.changed` outbox rows (api_shim.contacts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from worker.db import Conn


async def upsert_contacts(
    conn: Conn, account_id: UUID, docs: Sequence[dict[str, Any]]
) -> dict[str, tuple[UUID, bool]]:
    """Insert or update contacts by email; returns email -> (id, created).

    In a document a key present sets its column (null clears it) and a key absent leaves it;
    `attributes` is merged key by key; a new contact without `status` is subscribed."""
    inserted = await conn.fetch(
        """INSERT INTO contacts (account_id, email, name, first_name, last_name, company,
                                 status, country, city, language, tags, isp_id, attributes)
           SELECT $1, d->>'email', d->>'name', d->>'first_name', d->>'last_name',
                  d->>'company', coalesce(d->>'status', 'subscribed'), d->>'country',
                  d->>'city', d->>'language',
                  ARRAY(SELECT jsonb_array_elements_text(coalesce(d->'tags', '[]'))),
                  (d->>'isp_id')::int, coalesce(d->'attributes', '{}')
           FROM jsonb_array_elements($2::jsonb) AS x(d)
           ORDER BY d->>'email'  -- one lock order for concurrent batches
           ON CONFLICT (account_id, email) DO NOTHING
           RETURNING id, email""",
        account_id,
        list(docs),
    )
    result = {r["email"]: (r["id"], True) for r in inserted}
    updated = await conn.fetch(
        """UPDATE contacts c SET
               name = CASE WHEN d ? 'name' THEN d->>'name' ELSE c.name END,
               first_name = CASE WHEN d ? 'first_name' THEN d->>'first_name'
                                 ELSE c.first_name END,
               last_name = CASE WHEN d ? 'last_name' THEN d->>'last_name' ELSE c.last_name END,
               company = CASE WHEN d ? 'company' THEN d->>'company' ELSE c.company END,
               country = CASE WHEN d ? 'country' THEN d->>'country' ELSE c.country END,
               city = CASE WHEN d ? 'city' THEN d->>'city' ELSE c.city END,
               language = CASE WHEN d ? 'language' THEN d->>'language' ELSE c.language END,
               status = coalesce(d->>'status', c.status),
               tags = CASE WHEN d ? 'tags'
                           THEN ARRAY(SELECT jsonb_array_elements_text(d->'tags'))
                           ELSE c.tags END,
               isp_id = CASE WHEN d ? 'isp_id' THEN (d->>'isp_id')::int ELSE c.isp_id END,
               attributes = c.attributes || coalesce(d->'attributes', '{}'),
               updated_at = now()
           FROM jsonb_array_elements($2::jsonb) AS x(d)
           WHERE c.account_id = $1 AND c.email = d->>'email' AND NOT c.id = ANY($3::uuid[])
           RETURNING c.id, c.email""",
        account_id,
        list(docs),
        [contact_id for contact_id, _ in result.values()],
    )
    result.update({r["email"]: (r["id"], False) for r in updated})
    return result


async def existing_contacts(conn: Conn, account_id: UUID, ids: Sequence[UUID]) -> set[UUID]:
    """Which of `ids` are contacts of this account."""
    rows = await conn.fetch(
        "SELECT id FROM contacts WHERE account_id = $1 AND id = ANY($2::uuid[])",
        account_id,
        list(set(ids)),
    )
    return {r["id"] for r in rows}


async def insert_events(
    conn: Conn,
    account_id: UUID,
    rows: Sequence[tuple[UUID, str, UUID | None, datetime | None]],
) -> int:
    """(contact_id, type, campaign_id, occurred_at or None for now) rows; returns the count."""
    await conn.execute(
        """INSERT INTO events (account_id, contact_id, type, campaign_id, occurred_at)
           SELECT $1, contact_id, type, campaign_id, coalesce(occurred_at, now())
           FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::timestamptz[])
                AS e(contact_id, type, campaign_id, occurred_at)""",
        account_id,
        [r[0] for r in rows],
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )
    return len(rows)


async def list_exists(conn: Conn, account_id: UUID, list_id: UUID) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM contact_lists WHERE id = $1 AND account_id = $2", list_id, account_id
    )
    return found is not None
