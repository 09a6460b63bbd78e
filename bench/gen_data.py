"""Load the benchmark data set into its own database (default `segments_bench`).

    .venv/bin/python -m bench.gen_data --contacts 1000000 --events 10000000

One big account (N contacts, M events, five overlapping lists) and one small account (a tenth
of each) so that account scoping is exercised. Everything is generated server-side with
INSERT ... SELECT FROM generate_series under a fixed random seed: a reload gives the same data.
A run with the same sizes reuses what is loaded (--force reloads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg

from bench.common import (
    ACCOUNT_BIG,
    ACCOUNT_SMALL,
    CAMPAIGNS,
    CUSTOM_FIELDS,
    DEFAULT_DSN,
    LISTS,
    list_id,
)
from worker.migrations import database_name, migrate

GENERATOR_VERSION = 1  # bump when the distributions change, so old data is not reused
T = TypeVar("T")

# Distributions. Arrays are indexed with power(random(), k) to skew towards the first items.
COUNTRIES = [
    "US", "GB", "DE", "FR", "CA", "ES", "IT", "NL", "BR", "AU",
    "IN", "PL", "SE", "BE", "AT", "CH", "MX", "JP", "IE", "PT",
]  # fmt: skip
CITIES = [
    "New York", "London", "Berlin", "Paris", "Toronto", "Madrid", "Rome", "Amsterdam",
    "São Paulo", "Sydney", "Mumbai", "Warsaw", "Stockholm", "Brussels", "Vienna", "Zürich",
    "Mexico City", "Tokyo", "Dublin", "Lisbon", "Chicago", "Manchester", "Munich", "Lyon",
    "Vancouver", "Barcelona", "Milan", "Rotterdam", "Melbourne", "Hamburg",
]  # fmt: skip
LANGUAGES = ["en", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "ja", "EN", "De"]
TAGS = [
    "newsletter", "VIP", "Customer", "lead", "trial", "churn-risk", "webinar", "promo",
    "b2b", "b2c", "beta", "partner", "event-2024", "Black Friday", "loyal", "inactive",
    "mobile", "desktop", "referral", "press",
]  # fmt: skip
FIRST_NAMES = [
    "Anna", "Ben", "Chloé", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas",
    "Kira", "Liam", "Mia", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sam", "Tara",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Müller", "Martin", "García", "Rossi", "Jansen", "Nowak", "Silva", "Brown",
    "Schmidt", "Dubois", "López", "Bianchi", "de Vries", "Kowalski", "Santos", "Wilson",
    "Fischer", "Bernard", "Taylor",
]  # fmt: skip
INTERESTS = ["Sports", "music", "travel", "Tech", "food", "fashion", "books", "gaming"]
PLANS = ["free", "free", "free", "free", "pro", "pro", "Pro", "enterprise", "Enterprise", ""]
# Event types and where each one's share starts in [0, 1) (for width_bucket): delivered 60%,
# open 28%, click 8.5%, bounce 2%, unsubscribe 1.3%, complaint 0.2%.
EVENT_TYPES = ["delivered", "open", "click", "bounce", "unsubscribe", "complaint"]
EVENT_BOUNDS = [0.0, 0.600, 0.880, 0.965, 0.985, 0.998]

# Per row, one random draw per decision (OFFSET 0 keeps the planner from inlining the
# subquery, which would re-evaluate random() at every use of a draw).
CONTACTS_SQL = """
INSERT INTO contacts (id, account_id, email, name, first_name, last_name, company, status,
                      country, city, language, tags, isp_id, attributes, created_at, updated_at)
SELECT md5($1::uuid::text || ':contact:' || d.n)::uuid,
       $1,
       'contact' || d.n || '@example' || (d.n % 97) || '.com',
       d.first || ' ' || d.last,
       d.first,
       d.last,
       CASE WHEN d.r_company < 0.40 THEN NULL WHEN d.r_company < 0.45 THEN ''
            ELSE 'Company ' || floor(d.r_company * 5000)::int END,
       CASE WHEN d.r_status < 0.85 THEN 'subscribed' WHEN d.r_status < 0.92 THEN 'unsubscribed'
            WHEN d.r_status < 0.95 THEN 'bounced' WHEN d.r_status < 0.955 THEN 'complained'
            ELSE 'pending' END,
       CASE WHEN d.r_country < 0.03 THEN NULL WHEN d.r_country < 0.04 THEN ''
            WHEN d.r_case < 0.03 THEN lower(d.country) ELSE d.country END,
       CASE WHEN d.r_city < 0.08 THEN NULL WHEN d.r_city < 0.10 THEN ''
            ELSE ($5::text[])[1 + floor(cardinality($5::text[])
                                        * power((d.r_city - 0.10) / 0.90, 1.8))::int] END,
       CASE WHEN d.r_lang < 0.05 THEN NULL
            ELSE ($6::text[])[1 + floor(cardinality($6::text[])
                                        * power((d.r_lang - 0.05) / 0.95, 2.0))::int] END,
       ARRAY(SELECT DISTINCT CASE WHEN random() < 0.1 THEN lower(t.tag) ELSE t.tag END
             FROM (SELECT ($7::text[])[1 + floor(cardinality($7::text[])
                                                 * power(random(), 1.4))::int] AS tag
                   FROM generate_series(1, d.tag_count)) t),
       CASE WHEN d.r_isp < 0.15 THEN NULL
            ELSE 1 + floor(38 * power((d.r_isp - 0.15) / 0.85, 2.5))::int END,
       jsonb_strip_nulls(jsonb_build_object(
           -- 2% of scores are strings: bad data the number reader must treat as null.
           'score', CASE WHEN d.r_score < 0.85 THEN to_jsonb(floor(d.r_value * 101)::int)
                         WHEN d.r_score < 0.87 THEN to_jsonb(floor(d.r_value * 101)::text) END,
           'vip', CASE WHEN d.r_vip < 0.6 THEN to_jsonb(d.r_value < 0.1) END,
           'birthday', CASE WHEN d.r_birthday < 0.70
                            THEN to_jsonb(to_char(date '1950-01-01' + floor(d.r_value * 20000)::int,
                                                  'YYYY-MM-DD'))
                            WHEN d.r_birthday < 0.71 THEN to_jsonb('n/a'::text) END,
           'interests', CASE WHEN d.r_interests < 0.6 THEN to_jsonb(ARRAY(
                SELECT ($8::text[])[1 + floor(cardinality($8::text[]) * random())::int]
                FROM generate_series(0, floor(d.r_interests * 5)::int))) END,
           'plan', CASE WHEN d.r_plan < 0.9
                        THEN to_jsonb(($9::text[])[1 + floor(cardinality($9::text[])
                                                             * d.r_plan / 0.9)::int]) END)),
       d.created_at,
       d.created_at + random() * ($3::timestamptz - d.created_at)
FROM (
    SELECT n,
           ($10::text[])[1 + floor(20 * random())::int] AS first,
           ($11::text[])[1 + floor(20 * random())::int] AS last,
           ($4::text[])[1 + floor(cardinality($4::text[]) * power(random(), 2.2))::int]
               AS country,
           floor(5 * power(random(), 1.3))::int AS tag_count,
           $3::timestamptz - random() * interval '1095 days' AS created_at,
           random() AS r_company, random() AS r_status, random() AS r_country,
           random() AS r_case, random() AS r_city, random() AS r_lang, random() AS r_isp,
           random() AS r_score, random() AS r_value, random() AS r_vip,
           random() AS r_birthday, random() AS r_interests, random() AS r_plan
    FROM generate_series(1, $2::bigint) AS n
    OFFSET 0
) d
"""

# Each list is drawn independently per contact. The lateral subquery mentions c (and OFFSET 0
# keeps it a subquery) so random() runs once per (contact, list), not once per list.
MEMBERS_SQL = """
INSERT INTO contact_list_members (list_id, contact_id, account_id, added_at)
SELECT l.id, c.id, c.account_id, c.created_at + l.r * ($3::timestamptz - c.created_at)
FROM contacts c
CROSS JOIN LATERAL (
    SELECT u.id, u.share, random() AS r
    FROM unnest($2::uuid[], $4::float8[]) AS u(id, share)
    WHERE c.id IS NOT NULL
    OFFSET 0
) l
WHERE c.account_id = $1 AND l.r < l.share
"""

# 70% of events go to an "engaged" 30% of contacts (spread over the id range by a
# multiplicative permutation), the rest to anyone: many contacts never open, a few open a lot.
# 90% of events belong to one of 50 weekly campaigns (more events for recent ones) and happen
# in the days after its send; the rest (no campaign) spread over the year, skewed to recent.
# Rows are inserted in time order, as an append-only event log would be.
EVENTS_SQL = """
INSERT INTO events (account_id, contact_id, type, campaign_id, occurred_at)
SELECT $1,
       md5($1::uuid::text || ':contact:' || d.contact_n)::uuid,
       d.type,
       CASE WHEN d.campaign > 0 THEN md5($1::uuid::text || ':campaign:' || d.campaign)::uuid END,
       d.occurred_at
FROM (
    SELECT s.contact_n, s.type, s.campaign,
           CASE WHEN s.campaign > 0
                THEN s.sent_at + power(s.r_delay, 3) * least(interval '5 days', s.since_sent)
                ELSE $3::timestamptz - power(s.r_delay, 2) * interval '365 days'
           END AS occurred_at
    FROM (
        SELECT CASE WHEN r.r_engaged < 0.7
                    THEN (floor(r.r_contact * ceil($2::bigint * 0.3)) * 7919)::bigint
                         % $2::bigint + 1
                    ELSE floor(r.r_contact * $2::bigint)::bigint + 1 END AS contact_n,
               ($5::text[])[width_bucket(r.r_type, $6::float8[])] AS type,
               r.campaign,
               $3::timestamptz - r.days_ago * interval '1 day' AS sent_at,
               r.days_ago * interval '1 day' AS since_sent,
               r.r_delay
        FROM (
            SELECT random() AS r_engaged, random() AS r_contact, random() AS r_type,
                   random() AS r_delay, (c.campaign - 1) * 7.3 + 0.5 AS days_ago, c.campaign
            FROM (SELECT CASE WHEN random() < 0.1 THEN 0
                              ELSE 1 + floor($7::int * power(random(), 1.5))::int END
                             AS campaign
                  FROM generate_series(1, $4::bigint)
                  OFFSET 0) c
            OFFSET 0
        ) r
    ) s
) d
ORDER BY d.occurred_at
"""


@dataclass(frozen=True)
class Spec:
    """What is loaded; a database holding the same spec is reused."""

    contacts: int
    events: int
    small_contacts: int
    small_events: int
    version: int = GENERATOR_VERSION


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def timed(label: str, work: Awaitable[T]) -> T:
    start = time.perf_counter()
    result = await work
    log(f"{label}: {time.perf_counter() - start:.1f}s")
    return result


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + database))


async def loaded_spec(dsn: str) -> Spec | None:
    """The spec of the data already in the database, or None (no database, or no data)."""
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", database_name(dsn)
        )
    finally:
        await admin.close()
    if not exists:
        return None
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('bench_dataset')") is None:
            return None
        raw = await conn.fetchval("SELECT spec::text FROM bench_dataset")
    finally:
        await conn.close()
    return None if raw is None else Spec(**json.loads(raw))


async def recreate_database(dsn: str) -> None:
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        name = database_name(dsn).replace('"', '""')
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    await migrate(dsn)


async def loader_connection(dsn: str) -> asyncpg.Connection:
    """A session tuned for bulk loading: no timeouts, big sort and index-build memory, and
    foreign-key triggers off (the generated data is consistent by construction)."""
    conn: asyncpg.Connection = await asyncpg.connect(
        dsn,
        server_settings={
            "TimeZone": "UTC",
            "statement_timeout": "0",
            "work_mem": "1GB",
            "maintenance_work_mem": "2GB",
            "max_parallel_maintenance_workers": "2",
            "session_replication_role": "replica",
            "synchronous_commit": "off",
        },
    )
    return conn


async def drop_secondary_indexes(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """Drop the data tables' indexes that no constraint needs; returns (name, definition)
    to rebuild them after the load (building once is far faster than maintaining per row)."""
    rows = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
           FROM pg_index i
           WHERE i.indrelid IN ('contacts'::regclass, 'contact_list_members'::regclass,
                                'events'::regclass)
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
           ORDER BY 1"""
    )
    for row in rows:
        await conn.execute(f"DROP INDEX {row['name']}")
    return [(row["name"], row["def"]) for row in rows]


async def insert_reference_rows(conn: asyncpg.Connection, now: datetime) -> None:
    for account_id, name in ((ACCOUNT_BIG, "bench big"), (ACCOUNT_SMALL, "bench small")):
        await conn.execute(
            "INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)",
            account_id,
            name,
            now,
        )
        await conn.executemany(
            "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, $2, $3)",
            [(account_id, key, data_type) for key, data_type in CUSTOM_FIELDS.items()],
        )
        await conn.executemany(
            "INSERT INTO contact_lists (id, account_id, name, created_at) VALUES ($1, $2, $3, $4)",
            [(list_id(account_id, spec.key), account_id, spec.name, now) for spec in LISTS],
        )


async def load_account(
    conn: asyncpg.Connection, account_id: UUID, contacts: int, events: int, now: datetime
) -> None:
    label = "big" if account_id == ACCOUNT_BIG else "small"
    await conn.execute("SELECT setseed(0.42)")
    await timed(
        f"{label}: {contacts:,} contacts",
        conn.execute(
            CONTACTS_SQL,
            account_id,
            contacts,
            now,
            COUNTRIES,
            CITIES,
            LANGUAGES,
            TAGS,
            INTERESTS,
            PLANS,
            FIRST_NAMES,
            LAST_NAMES,
        ),
    )
    ids = [list_id(account_id, spec.key) for spec in LISTS]
    shares = [spec.share for spec in LISTS]
    await timed(
        f"{label}: list members",
        conn.execute(MEMBERS_SQL, account_id, ids, now, shares),
    )
    await timed(
        f"{label}: {events:,} events",
        conn.execute(
            EVENTS_SQL, account_id, contacts, now, events, EVENT_TYPES, EVENT_BOUNDS, CAMPAIGNS
        ),
    )


async def rebuild_indexes(conn: asyncpg.Connection, indexes: list[tuple[str, str]]) -> None:
    for name, definition in indexes:
        await timed(f"index {name}", conn.execute(definition))


async def vacuum_analyze(conn: asyncpg.Connection) -> None:
    # VACUUM also sets the visibility map, which index-only scans need to skip the heap.
    for table in ("contacts", "contact_list_members", "events", "contact_lists", "accounts"):
        await timed(f"VACUUM ANALYZE {table}", conn.execute(f"VACUUM (ANALYZE) {table}"))
    # Flush the load's dirty pages now, so that a benchmark started right after does not
    # compete with the checkpointer writing gigabytes.
    await timed("CHECKPOINT", conn.execute("CHECKPOINT"))


async def record_spec(conn: asyncpg.Connection, spec: Spec, now: datetime) -> None:
    await conn.execute(
        """CREATE TABLE bench_dataset (spec jsonb NOT NULL, now timestamptz NOT NULL,
                                       loaded_at timestamptz NOT NULL DEFAULT now())"""
    )
    await conn.execute(
        "INSERT INTO bench_dataset (spec, now) VALUES ($1::jsonb, $2)",
        json.dumps(asdict(spec)),
        now,
    )


async def summarise(conn: asyncpg.Connection) -> None:
    """Print the shape of what was loaded, to check the distributions at a glance."""
    queries = {
        "rows": """SELECT 'contacts', count(*) FROM contacts UNION ALL
                   SELECT 'members', count(*) FROM contact_list_members UNION ALL
                   SELECT 'events', count(*) FROM events""",
        "events by type": "SELECT type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC",
        "status": "SELECT status, count(*) FROM contacts GROUP BY 1 ORDER BY 2 DESC",
        "sizes": """SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class
                    WHERE relname IN ('contacts', 'contact_list_members', 'events')""",
    }
    for title, sql in queries.items():
        rows = await conn.fetch(sql)
        log(
            title
            + ": "
            + ", ".join(
                f"{r[0]}={r[1]:,}" if isinstance(r[1], int) else f"{r[0]}={r[1]}" for r in rows
            )
        )


async def load(dsn: str, spec: Spec) -> None:
    await timed("create and migrate database", recreate_database(dsn))
    conn = await loader_connection(dsn)
    try:
        now = await conn.fetchval("SELECT date_trunc('second', now())")
        indexes = await drop_secondary_indexes(conn)
        await insert_reference_rows(conn, now)
        await load_account(conn, ACCOUNT_BIG, spec.contacts, spec.events, now)
        await load_account(conn, ACCOUNT_SMALL, spec.small_contacts, spec.small_events, now)
        await rebuild_indexes(conn, indexes)
        await vacuum_analyze(conn)
        await record_spec(conn, spec, now)
        await summarise(conn)
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> None:
    spec = Spec(
        contacts=args.contacts,
        events=args.events,
        small_contacts=max(1, args.contacts // 10),
        small_events=max(1, args.events // 10),
    )
    if not args.force and await loaded_spec(args.dsn) == spec:
        log(f"{database_name(args.dsn)} already holds {spec}; reusing it (--force reloads)")
        return
    start = time.perf_counter()
    await load(args.dsn, spec)
    log(f"loaded {spec} in {time.perf_counter() - start:.0f}s at {datetime.now(UTC):%H:%M}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="database to (re)create and load")
    parser.add_argument("--contacts", type=int, default=1_000_000, help="big account's contacts")
    parser.add_argument("--events", type=int, default=10_000_000, help="big account's events")
    parser.add_argument("--force", action="store_true", help="reload even if already loaded")
    return parser.parse_args()


def main() -> None:
    asyncio.run(main_async(parse_args()))


if __name__ == "__main__":
    main()
