"""The chaos suite's workload (bench/chaos.py): one account with contacts, lists, custom fields
and segments of every kind, then a seeded stream of writes through every door the service
has, each recorded in the History with whether it was acknowledged.

Doors: contact upserts, events and list changes over HTTP; direct database writes announced
by `POST /api/v2/contacts/changes` or by a `contact.changed` an outside producer publishes;
rule changes and rebuilds. Each driver owns a disjoint share of the contacts, so every
register has one writer (chaos_history.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import aio_pika
import asyncpg
import httpx

from bench.chaos_history import History, Write
from worker.messages import ContactChanged, contract_message

COUNTRIES = ["DE", "FR", "US", None]
STATUSES = ["subscribed", "unsubscribed", "bounced"]
TAGS = ["vip", "new", "churn"]
FIELDS = {"c_num": "number", "c_flag": "boolean", "c_date": "datetime"}
REQUEST_TIMEOUT_S = 10.0
# The fields a driver writes, by door. `status` and `country` take both doors.
API_FIELDS = ("status", "country", "tags", "isp_id", "c_num", "c_flag", "c_date")
DIRECT_FIELDS = ("status", "country", "city")
CONTACT_FIELDS = tuple(dict.fromkeys(API_FIELDS + DIRECT_FIELDS))  # every register of a contact
# What became of a direct write: committed, never sent (no connection), or unknown.
DirectOutcome = Literal["committed", "not_sent", "unknown"]


@dataclass
class Account:
    account_id: uuid.UUID
    key: str
    lists: list[uuid.UUID]  # lists[0] holds every contact: the segments' universe
    emails: list[str]
    contact_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    segments: dict[str, uuid.UUID] = field(default_factory=dict)
    variants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


def segment_specs(lists: list[uuid.UUID], refs: dict[str, uuid.UUID]) -> list[dict[str, Any]]:
    """The segments, in creation order (a referenced segment before its referrers). Each has
    `variants`: the rules a rule change alternates between (the first is the initial)."""
    universe = [str(lists[0])]

    def field_(name: str, op: str, value: Any = None) -> dict[str, Any]:
        cond = {"kind": "field", "field": name, "operator": op}
        return cond if value is None else {**cond, "value": value}

    def seg(op: str, *names: str) -> dict[str, Any]:
        return {"kind": "segment", "operator": op, "segment_ids": [str(refs[n]) for n in names]}

    member_of = {"kind": "membership", "operator": "in", "list_ids": [str(lists[1])]}
    opened = {"kind": "activity", "metric": "open", "operator": "ever"}
    specs: list[dict[str, Any]] = [
        {"name": "subscribed", "variants": [{"all": [field_("status", "equals", "subscribed")]}]},
        {
            "name": "de_fr_isp",
            "variants": [
                {
                    "all": [
                        field_("country", "in", ["DE", "FR"]),
                        {"kind": "isp", "operator": "in", "values": [1, 2]},
                    ]
                },
                {"all": [field_("country", "in", ["DE", "US"])]},
            ],
        },
        {
            "name": "tree_not",
            "variants": [
                {
                    "any": [
                        {"all": [field_("country", "equals", "DE"), {"not": member_of}]},
                        {
                            "not": {
                                "any": [
                                    field_("tags", "has_any", ["vip"]),
                                    field_("c_num", "gt", 50),
                                ]
                            }
                        },
                    ]
                },
                {"all": [{"not": field_("c_flag", "equals", True)}, member_of]},
            ],
        },
        {
            "name": "active_30d",
            "variants": [
                {
                    "all": [
                        {**opened, "days_window": {"mode": "last", "days": 30}},
                        {
                            "kind": "deliverability",
                            "metric": "bounce",
                            "operator": "count_lte",
                            "value": 0,
                        },
                    ]
                }
            ],
        },
        {
            "name": "clicks",
            "variants": [
                {
                    "all": [
                        {"kind": "activity", "metric": "click", "operator": "count_gte", "value": 2}
                    ]
                },
                {
                    "all": [
                        {"kind": "activity", "metric": "click", "operator": "count_gte", "value": 1}
                    ]
                },
            ],
        },
        {
            "name": "month_kiritimati",
            "timezone": "Pacific/Kiritimati",
            "variants": [
                {"all": [field_("c_date", "in_calendar", {"unit": "month", "offset": 0})]}
            ],
        },
        {
            "name": "last_week_la",
            "timezone": "America/Los_Angeles",
            "variants": [
                {"all": [field_("c_date", "in_calendar", {"unit": "week", "offset": -1})]}
            ],
        },
    ]
    # Segments that reference others, once those exist (the workload creates them in turn).
    if {"de_fr_isp", "active_30d"} <= refs.keys():
        specs.append({
            "name": "ref_de_not_active",
            "variants": [{"all": [seg("in", "de_fr_isp"), seg("not_in", "active_30d")]}],
        })  # fmt: skip
    if "ref_de_not_active" in refs:
        in_l2 = {"kind": "membership", "operator": "in", "list_ids": [str(lists[2])]}
        specs.append(
            {"name": "ref_chain", "variants": [{"any": [seg("in", "ref_de_not_active"), in_l2]}]}
        )
    for spec in specs:
        spec["contact_list_ids"] = universe
    return specs


SIMPLE_RULES = [
    {"field": "status", "operator": "equals", "value": "subscribed"},
    {"field": "country", "operator": "equals", "value": "de"},
]


def contact_values(rng: random.Random, now: datetime) -> dict[str, Any]:
    """Random values for the API_FIELDS (their API spelling)."""
    day = now - timedelta(days=rng.uniform(-5, 40))
    return {
        "status": rng.choice(STATUSES),
        "country": rng.choice(COUNTRIES),
        "tags": sorted(rng.sample(TAGS, rng.randint(0, 2))),
        "isp_id": rng.randint(1, 4),
        "c_num": rng.randint(0, 100),
        "c_flag": rng.random() < 0.5,
        "c_date": day.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _upsert_body(email: str, values: dict[str, Any]) -> dict[str, Any]:
    attributes = {k: values[k] for k in FIELDS if k in values}
    plain = {k: v for k, v in values.items() if k not in FIELDS}
    return {"email": email, **plain, **({"attributes": attributes} if attributes else {})}


class Api:
    """The HTTP API as the workload uses it: one call, acknowledged or not."""

    def __init__(self, base_url: str, account: Account | None = None) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S)
        self.account = account

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response | None:
        """The answer, or None when there was none (the write is then uncertain)."""
        headers = self.account.headers if self.account else {}
        try:
            return await self.http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError:
            return None

    async def must(self, method: str, path: str, body: Any = None, wait_s: float = 120) -> Any:
        """Call until it succeeds (setup, before any fault)."""
        deadline = time.monotonic() + wait_s
        while True:
            answer = await self.call(method, path, body)
            if answer is not None and answer.is_success:
                return answer.json() if answer.content else None
            if answer is not None and answer.status_code < 500:
                raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path} did not succeed in {wait_s} s")
            await asyncio.sleep(0.5)


async def set_up(api: Api, conn: asyncpg.Connection, contacts: int, history: History) -> Account:
    from worker.accounts import ALL_SCOPES, create_account

    made = await create_account(conn, f"chaos_{uuid.uuid4().hex[:8]}", ALL_SCOPES)
    account = Account(
        made.account_id, made.api_key, [], [f"c{i}@chaos.test" for i in range(contacts)]
    )
    api.account = account
    for i in range(3):
        account.lists.append(
            uuid.UUID((await api.must("POST", "/api/v2/lists", {"name": f"L{i}"}))["id"])
        )
    for key, data_type in FIELDS.items():
        await api.must("PUT", f"/api/v2/fields/{key}", {"data_type": data_type})
    rng = random.Random(0)
    now = datetime.now(UTC)
    for start in range(0, contacts, 500):
        batch = account.emails[start : start + 500]
        values = {email: contact_values(rng, now) for email in batch}
        body = {"contacts": [_upsert_body(e, v) for e, v in values.items()]}
        answer = await api.must("POST", "/api/v2/contacts", body)
        for item in answer["items"]:
            account.contact_ids[item["email"]] = uuid.UUID(item["id"])
        for email, vals in values.items():
            # Every register starts with the value the creating upsert left: a field it did not
            # send (`city`) is NULL. Without that start, a contact whose only city writes were
            # uncertain and did not happen would be reported as a lost write, its NULL unexplained.
            initial = [history.write(("contact", email, n), vals.get(n)) for n in CONTACT_FIELDS]
            history.settle(initial, acked=True)
        await api.must(
            "POST", f"/api/v2/lists/{account.lists[0]}/members", {"add": batch, "remove": []}
        )
    for email in account.emails:
        for list_id in account.lists[1:]:
            history.settle([history.write(("member", email, list_id), False)], acked=True)
    await _create_segments(api, account, history)
    return account


async def _create_segments(api: Api, account: Account, history: History) -> None:
    while pending := [
        spec
        for spec in segment_specs(account.lists, account.segments)
        if spec["name"] not in account.segments
    ]:
        spec = pending[0]
        body = {
            "name": spec["name"],
            "color": "#7cb7de",
            "contact_list_ids": spec["contact_list_ids"],
            "rules_json": spec["variants"][0],
            "timezone": spec.get("timezone", "UTC"),
        }
        made = await api.must("POST", "/api/v2/segments", body)
        account.segments[spec["name"]] = uuid.UUID(made["id"])
        account.variants[spec["name"]] = spec["variants"]
        history.settle([history.write(("rules", spec["name"]), spec["variants"][0])], acked=True)
    simple = await api.must("POST", "/api/segments", {"name": "simple_de", "rules": SIMPLE_RULES})
    account.segments["simple_de"] = await _segment_id_by_number(api, account, simple["id"])


async def _segment_id_by_number(api: Api, account: Account, number: int) -> uuid.UUID:
    listing = await api.must("GET", "/api/v2/segments?limit=100")
    for item in listing["items"]:
        if item["name"] == "simple_de":
            return uuid.UUID(item["id"])
    raise RuntimeError(f"simple segment {number} not listed")


class Producer:
    """An outside producer: publishes contact.changed straight to the broker (not through the
    service's proxy), with publisher confirms."""

    def __init__(self, amqp_url: str) -> None:
        self.url = amqp_url
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def publish(self, account_id: uuid.UUID, ids: list[uuid.UUID]) -> bool:
        body = ContactChanged(
            schema_version=1, account_id=account_id, contact_ids=ids, changed_at=datetime.now(UTC)
        )
        try:
            if self._exchange is None or self._connection is None or self._connection.is_closed:
                self._connection = await aio_pika.connect(self.url, timeout=5)
                channel = await self._connection.channel(publisher_confirms=True)
                self._exchange = await channel.get_exchange("segments")
            await self._exchange.publish(
                contract_message(body), routing_key="contact.changed", timeout=5
            )
            return True
        except Exception:  # any failure: not confirmed, the caller tries again
            await self.close()
            return False

    async def close(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to close cleanly
                await asyncio.wait_for(connection.close(), 5)


@dataclass
class Driver:
    """One writer: its share of the contacts, its random stream, the doors it uses."""

    index: int
    api: Api
    account: Account
    history: History
    database_url: str
    producer: Producer
    rng: random.Random
    owns_segments: bool
    drivers: int = 1
    unannounced: list[uuid.UUID] = field(default_factory=list)  # written, not yet announced

    @property
    def emails(self) -> list[str]:
        return self.account.emails[self.index :: self.drivers]

    async def run(self, until: float) -> None:
        doors = [self.upsert, self.upsert, self.events, self.lists, self.direct, self.direct]
        if self.owns_segments:
            doors += [self.rules]
        while time.monotonic() < until:
            await self.rng.choice(doors)()
            await self.announce_pending()
            await asyncio.sleep(self.rng.uniform(0.0, 0.05))

    async def finish(self, wait_s: float) -> None:
        """Announce every direct write still unannounced (a producer retries until it may
        stop: the write is not done until its notification is acknowledged)."""
        deadline = time.monotonic() + wait_s
        while self.unannounced and time.monotonic() < deadline:
            await self.announce_pending()
            if self.unannounced:
                await asyncio.sleep(1)

    async def _answered(self, writes: list[Write], method: str, path: str, body: Any) -> None:
        answer = await self.api.call(method, path, body)
        ok = answer is not None and answer.is_success
        if answer is not None and 400 <= answer.status_code < 500 and answer.status_code != 429:
            self.history.rejected.append(f"{method} {path}: {answer.status_code} {answer.text}")
        self.history.settle(writes, acked=ok)

    async def upsert(self) -> None:
        emails = self.rng.sample(self.emails, min(len(self.emails), self.rng.randint(1, 5)))
        now = datetime.now(UTC)
        values = {}
        for email in emails:
            all_values = contact_values(self.rng, now)
            values[email] = {k: all_values[k] for k in self.rng.sample(API_FIELDS, 3)}
        writes = [
            self.history.write(("contact", e, k), v)
            for e, vs in values.items()
            for k, v in vs.items()
        ]
        body = {"contacts": [_upsert_body(e, v) for e, v in values.items()]}
        await self._answered(writes, "POST", "/api/v2/contacts", body)

    async def events(self) -> None:
        batch = []
        writes = []
        for _ in range(self.rng.randint(1, 5)):
            email = self.rng.choice(self.emails)
            kind = self.rng.choice(["open", "click", "click", "bounce"])
            # Unique instants (microseconds from the clock) identify the events; all lie
            # inside the rules' windows, away from their edges.
            at = datetime.now(UTC) - timedelta(days=self.rng.uniform(1, 20))
            writes.append(self.history.event(email, kind, at))
            batch.append({"email": email, "type": kind, "occurred_at": at.isoformat()})
        await self._answered(writes, "POST", "/api/v2/events", {"events": batch})

    async def lists(self) -> None:
        list_id = self.rng.choice(self.account.lists[1:])
        emails = self.rng.sample(self.emails, min(len(self.emails), 4))
        add, remove = emails[:2], emails[2:]
        writes = [self.history.write(("member", e, list_id), True) for e in add]
        writes += [self.history.write(("member", e, list_id), False) for e in remove]
        body = {"add": add, "remove": remove}
        await self._answered(writes, "POST", f"/api/v2/lists/{list_id}/members", body)

    async def rules(self) -> None:
        name = self.rng.choice(sorted(self.account.segments))
        variants = self.account.variants.get(name, [])
        segment_id = self.account.segments[name]
        if len(variants) < 2 or self.rng.random() < 0.5:
            await self._answered([], "POST", f"/api/v2/segments/{segment_id}/rebuild", None)
            return
        rules = self.rng.choice(variants)
        writes = [self.history.write(("rules", name), rules)]
        path = f"/api/v2/segments/{segment_id}"
        await self._answered(writes, "PATCH", path, {"rules_json": rules})

    async def direct(self) -> None:
        """A write to the contacts table behind the service's back, then its announcement."""
        email = self.rng.choice(self.emails)
        name = self.rng.choice(DIRECT_FIELDS)
        value = self.rng.choice(COUNTRIES[:-1] if name == "country" else STATUSES)
        if name == "city":
            value = self.rng.choice(["Berlin", "Paris", None])
        key = ("contact", email, name)
        write = self.history.write(key, value)
        outcome = await write_directly(self.database_url, self.account, email, name, value)
        if outcome == "not_sent":
            self.history.withdraw(key, write)  # no connection, no UPDATE: no write at all
            return
        self.history.settle([write], acked=outcome == "committed")
        self.unannounced.append(self.account.contact_ids[email])  # unknown: it may have committed

    async def announce_pending(self) -> None:
        if not self.unannounced:
            return
        ids = list(dict.fromkeys(self.unannounced))
        if self.rng.random() < 0.5:
            answer = await self.api.call(
                "POST", "/api/v2/contacts/changes", {"contact_ids": [str(i) for i in ids]}
            )
            done = answer is not None and answer.status_code == 202
        else:
            done = await self.producer.publish(self.account.account_id, ids)
        if done:
            self.unannounced.clear()


async def write_directly(
    database_url: str, account: Account, email: str, name: str, value: Any
) -> DirectOutcome:
    """Whether the update committed, was never sent, or may or may not have committed."""
    assert name in DIRECT_FIELDS  # the column name comes from this whitelist only
    try:
        conn = await asyncpg.connect(database_url, timeout=5)
    except Exception:  # the server restarting, say: the UPDATE never left
        return "not_sent"
    try:
        await conn.execute(
            f"UPDATE contacts SET {name} = $3, updated_at = now()"
            " WHERE account_id = $1 AND id = $2",
            account.account_id,
            account.contact_ids[email],
            value,
            timeout=5,
        )
        return "committed"
    except Exception:  # asyncpg has client errors outside its two bases too
        return "unknown"  # sent, then whatever failed: it may have committed (uncertain)
    finally:
        conn.terminate()
