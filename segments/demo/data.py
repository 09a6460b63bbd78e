"""Generated data sets: contacts, lists, events and custom fields of one account, made
server-side (INSERT ... SELECT FROM generate_series) under a fixed seed, so that two runs of
the same size hold the same data (only the ids and the clock differ). `segments demo` loads
one; the benchmarks (bench/gen_data.py) load theirs with the same generator.

Distributions: skewed countries, cities and tags, mixed-case values, empty strings and nulls
where real imports have them, a few custom field values of the wrong type (bad data that must
read as null), 70% of the events from an engaged 30% of the contacts, 90% of them in 50
weekly campaigns.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from worker.accounts import create_account
from worker.db import Conn

SEED = 0.42  # setseed(): the same data on every run of a size
CAMPAIGNS = 50  # weekly; campaign 1 is the most recent

CUSTOM_FIELDS = {
    "plan": "text",
    "score": "number",
    "vip": "boolean",
    "birthday": "datetime",
    "interests": "list",
}


@dataclass(frozen=True)
class ListSpec:
    key: str
    name: str
    share: float  # fraction of the contacts on it, drawn independently per contact


LISTS = (
    ListSpec("all", "All subscribers", 0.80),
    ListSpec("newsletter", "Newsletter", 0.35),
    ListSpec("customers", "Customers", 0.15),
    ListSpec("webinar", "Webinar 2024", 0.10),
    ListSpec("blocklist", "Do not mail", 0.02),
)

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
COMPANY_NAMES = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Tyrell",
    "Wonka", "Stark", "Wayne", "Cyberdyne", "Aperture", "Massive Dynamic", "Oceanic",
    "Nakatomi", "Gringotts", "Monarch", "Pied Piper", "Dunder Mifflin",
]  # fmt: skip
COMPANY_SUFFIXES = ["Inc", "GmbH", "Ltd", "SA", "BV", "LLC"]
INTERESTS = ["Sports", "music", "travel", "Tech", "food", "fashion", "books", "gaming"]
PLANS = ["free", "free", "free", "free", "pro", "pro", "Pro", "enterprise", "Enterprise", ""]
# Event types and where each one's share starts in [0, 1) (for width_bucket): delivered 60%,
# open 28%, click 8.5%, bounce 2%, unsubscribe 1.3%, complaint 0.2%.
EVENT_TYPES = ["delivered", "open", "click", "bounce", "unsubscribe", "complaint"]
EVENT_BOUNDS = [0.0, 0.600, 0.880, 0.965, 0.985, 0.998]

# Contacts n in [$2, $3]. One random draw per decision per row (OFFSET 0 keeps the planner
# from inlining the subquery, which would re-evaluate random() at every use of a draw).
# Emails are at the contact's mailbox provider when it has one (isp_aliases), so that the
# data reads true; they are ASCII, lower case and unique (the number n is in them).
CONTACTS_SQL = """
INSERT INTO contacts (id, account_id, email, name, first_name, last_name, company, status,
                      country, city, language, tags, isp_id, attributes, created_at, updated_at)
SELECT md5($1::uuid::text || ':contact:' || d.n)::uuid,
       $1,
       translate(lower(d.first || '.' || d.last), 'éüíó ', 'euio') || d.n || '@'
           || coalesce(isp.domains[1], 'example' || (d.n % 97) || '.com'),
       d.first || ' ' || d.last,
       d.first,
       d.last,
       CASE WHEN d.r_company < 0.40 THEN NULL WHEN d.r_company < 0.45 THEN ''
            ELSE ($13::text[])[1 + floor(cardinality($13::text[])
                                         * (d.r_company - 0.45) / 0.55)::int]
                 || ' ' || ($14::text[])[1 + floor(cardinality($14::text[]) * d.r_value)::int]
       END,
       CASE WHEN d.r_status < 0.85 THEN 'subscribed' WHEN d.r_status < 0.92 THEN 'unsubscribed'
            WHEN d.r_status < 0.95 THEN 'bounced' WHEN d.r_status < 0.955 THEN 'complained'
            ELSE 'pending' END,
       CASE WHEN d.r_country < 0.03 THEN NULL WHEN d.r_country < 0.04 THEN ''
            WHEN d.r_case < 0.03 THEN lower(d.country) ELSE d.country END,
       CASE WHEN d.r_city < 0.08 THEN NULL WHEN d.r_city < 0.10 THEN ''
            ELSE ($6::text[])[1 + floor(cardinality($6::text[])
                                        * power((d.r_city - 0.10) / 0.90, 1.8))::int] END,
       CASE WHEN d.r_lang < 0.05 THEN NULL
            ELSE ($7::text[])[1 + floor(cardinality($7::text[])
                                        * power((d.r_lang - 0.05) / 0.95, 2.0))::int] END,
       ARRAY(SELECT DISTINCT CASE WHEN random() < 0.1 THEN lower(t.tag) ELSE t.tag END
             FROM (SELECT ($8::text[])[1 + floor(cardinality($8::text[])
                                                 * power(random(), 1.4))::int] AS tag
                   FROM generate_series(1, d.tag_count)) t),
       d.isp_id,
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
                SELECT ($9::text[])[1 + floor(cardinality($9::text[]) * random())::int]
                FROM generate_series(0, floor(d.r_interests * 5)::int))) END,
           'plan', CASE WHEN d.r_plan < 0.9
                        THEN to_jsonb(($10::text[])[1 + floor(cardinality($10::text[])
                                                              * d.r_plan / 0.9)::int]) END)),
       d.created_at,
       d.created_at + random() * ($4::timestamptz - d.created_at)
FROM (
    SELECT n,
           ($11::text[])[1 + floor(cardinality($11::text[]) * random())::int] AS first,
           ($12::text[])[1 + floor(cardinality($12::text[]) * random())::int] AS last,
           ($5::text[])[1 + floor(cardinality($5::text[]) * power(random(), 2.2))::int]
               AS country,
           floor(5 * power(random(), 1.3))::int AS tag_count,
           CASE WHEN random() < 0.15 THEN NULL
                ELSE 1 + floor(38 * power(random(), 2.5))::int END AS isp_id,
           $4::timestamptz - random() * interval '1095 days' AS created_at,
           random() AS r_company, random() AS r_status, random() AS r_country,
           random() AS r_case, random() AS r_city, random() AS r_lang,
           random() AS r_score, random() AS r_value, random() AS r_vip,
           random() AS r_birthday, random() AS r_interests, random() AS r_plan
    FROM generate_series($2::bigint, $3::bigint) AS n
    OFFSET 0
) d
LEFT JOIN isp_aliases isp ON isp.id = d.isp_id
"""

# The list memberships of contacts n in [$2, $3], each list drawn independently: the lateral
# subquery mentions c (and OFFSET 0 keeps it one) so random() runs once per (contact, list).
MEMBERS_SQL = """
INSERT INTO contact_list_members (list_id, contact_id, account_id, added_at)
SELECT l.id, c.id, c.account_id, c.created_at + l.r * ($4::timestamptz - c.created_at)
FROM generate_series($2::bigint, $3::bigint) AS g(n)
JOIN contacts c ON c.account_id = $1 AND c.id = md5($1::uuid::text || ':contact:' || g.n)::uuid
CROSS JOIN LATERAL (
    SELECT u.id, u.share, random() AS r
    FROM unnest($5::uuid[], $6::float8[]) AS u(id, share)
    WHERE c.id IS NOT NULL
    OFFSET 0
) l
WHERE l.r < l.share
ORDER BY g.n
"""

# $4 events over contacts 1..$2. 70% of them go to an "engaged" 30% of the contacts (spread
# over the range by a multiplicative permutation): many contacts never open, a few open a
# lot. 90% belong to one of $7 weekly campaigns (more events for recent ones) and happen in
# the days after its send; the rest (no campaign) spread over the year, skewed to recent.
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


def stable_uuid(*parts: object) -> UUID:
    """md5 of the ':'-joined parts; equals PostgreSQL's `md5(a || ':' || b ...)::uuid`."""
    text = ":".join(str(p) for p in parts)
    return UUID(hashlib.md5(text.encode(), usedforsecurity=False).hexdigest())


@dataclass(frozen=True)
class DemoData:
    """What was loaded, and what the scenario needs to write rules about it."""

    account_id: UUID
    api_key: str
    contacts: int
    events: int
    members: int
    lists: dict[str, UUID]  # ListSpec.key -> id
    now: datetime  # the data's "now": events and dates are spread back from it
    seconds: float

    def campaign(self, number: int) -> UUID:
        """Campaign `number` (1 is the most recent, sent half a day before `now`)."""
        return stable_uuid(self.account_id, "campaign", number)


@dataclass(frozen=True)
class LoadProgress:
    contacts_done: int
    contacts: int
    events_done: int
    events: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        """Share of the work done; a contact (with its list draws) costs about 4 events."""
        total = 4 * self.contacts + self.events
        return 1.0 if total == 0 else (4 * self.contacts_done + self.events_done) / total


def _chunk(total: int, parts: int, low: int, high: int) -> int:
    return max(low, min(high, -(-total // parts)))


ProgressReport = Callable[[int, int], None]  # (contacts done, events done)


async def generate_rows(
    conn: Conn,
    account_id: UUID,
    contacts: int,
    events: int,
    now: datetime,
    *,
    report: ProgressReport = lambda _c, _e: None,
    event_chunks: int = 20,
) -> tuple[int, int]:
    """Contacts 1..`contacts` of an account whose LISTS and CUSTOM_FIELDS exist, their list
    memberships and `events` events, in chunks (for progress). Events of one chunk are
    written in time order; `event_chunks=1` keeps the whole log in time order, as an
    append-only event log is on disk. Returns (memberships, events) written."""
    await conn.execute("SELECT setseed($1)", SEED)
    lists = [stable_uuid(account_id, "list", spec.key) for spec in LISTS]
    report(0, 0)
    members = 0
    step = _chunk(contacts, 20, 1_000, 50_000)
    for low in range(1, contacts + 1, step):
        high = min(contacts, low + step - 1)
        await conn.execute(
            CONTACTS_SQL, account_id, low, high, now, COUNTRIES, CITIES, LANGUAGES, TAGS,
            INTERESTS, PLANS, FIRST_NAMES, LAST_NAMES, COMPANY_NAMES, COMPANY_SUFFIXES,
        )  # fmt: skip
        status = await conn.execute(
            MEMBERS_SQL, account_id, low, high, now, lists, [spec.share for spec in LISTS]
        )
        members += int(status.rsplit(" ", 1)[1])
        report(high, 0)
    step = _chunk(events, event_chunks, 10_000, 250_000 if event_chunks > 1 else events)
    done = 0
    while contacts and done < events:
        size = min(step, events - done)
        await conn.execute(
            EVENTS_SQL, account_id, contacts, now, size, EVENT_TYPES, EVENT_BOUNDS, CAMPAIGNS
        )
        done += size
        report(contacts, done)
    return members, done


async def insert_account_setup(conn: Conn, account_id: UUID, now: datetime) -> dict[str, UUID]:
    """The account's CUSTOM_FIELDS and LISTS (ids: stable_uuid(account, "list", key))."""
    await conn.executemany(
        "INSERT INTO contact_fields (account_id, key, data_type) VALUES ($1, $2, $3)",
        [(account_id, key, data_type) for key, data_type in CUSTOM_FIELDS.items()],
    )
    lists = {spec.key: stable_uuid(account_id, "list", spec.key) for spec in LISTS}
    await conn.executemany(
        "INSERT INTO contact_lists (id, account_id, name, created_at) VALUES ($1, $2, $3, $4)",
        [(lists[spec.key], account_id, spec.name, now) for spec in LISTS],
    )
    return lists


async def load_demo_data(
    conn: Conn,
    contacts: int,
    events: int,
    on_progress: Callable[[LoadProgress], None] = lambda _: None,
) -> DemoData:
    """Create a demo account (with an API key of every scope) and load it. One transaction:
    an interrupted load leaves nothing behind. Then ANALYZE, so that the planner knows the
    new rows."""
    started = time.monotonic()
    async with conn.transaction():
        await conn.execute("SET LOCAL work_mem = '256MB'")
        await conn.execute("SET LOCAL statement_timeout = 0")
        now: datetime = await conn.fetchval("SELECT date_trunc('second', now())")
        account = await create_account(conn, f"demo {datetime.now(UTC):%Y-%m-%d %H:%M:%S}")
        account_id = account.account_id
        lists = await insert_account_setup(conn, account_id, now)

        def report(contacts_done: int, events_done: int) -> None:
            elapsed = time.monotonic() - started
            on_progress(LoadProgress(contacts_done, contacts, events_done, events, elapsed))

        members, done = await generate_rows(conn, account_id, contacts, events, now, report=report)
    # Statistics now, for the builds about to plan their queries (autovacuum comes later).
    for table in ("contacts", "contact_list_members", "events"):
        await conn.execute(f"ANALYZE {table}")
    return DemoData(
        account_id=account_id,
        api_key=account.api_key,
        contacts=contacts,
        events=done,
        members=members,
        lists=lists,
        now=now,
        seconds=time.monotonic() - started,
    )
