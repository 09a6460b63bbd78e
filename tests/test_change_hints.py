"""Change hints (README "Producers", change hints): what each segment reads, which segments a
batch's hints select, and the worker skipping the others, against the real RabbitMQ and
PostgreSQL; a malformed `changed` is a poison message."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from tests.waiting import wait_for
from tests.worker_support import (
    dumps,
    members,
    publish_changes,
    publish_segment,
    save_segment,
    seed_contacts,
    take_dead_letter,
    wait_status,
)
from worker.dependencies import (
    CONTACT_COST_IN_PAIRS,
    EVERYTHING,
    Plan,
    Reads,
    SegmentReads,
    Work,
    in_database_order,
    merged,
)
from worker.hints import Hints, fields_changed
from worker.messages import ChangeHints, amqp_message
from worker.rules import FieldRegistry, parse_rules
from worker.settle import REASON_HEADER
from worker.topology import CONTACT_CHANGES_QUEUE

REGISTRY = FieldRegistry.from_declarations({"plan": "text"})
LIST = uuid.UUID("00000000-0000-4000-8000-000000000001")


def _field(name: str, operator: str = "is_null") -> dict[str, Any]:
    return {"kind": "field", "field": name, "operator": operator}


def _reads(*conditions: dict[str, Any], lists: tuple[uuid.UUID, ...] = ()) -> Reads:
    return Reads.of(parse_rules("v2", {"all": list(conditions)}, REGISTRY), lists)


OPENED = {"kind": "activity", "metric": "open", "operator": "ever"}
ISP = {"kind": "isp", "operator": "in", "values": [1]}
IN_LIST = {"kind": "membership", "operator": "in", "list_ids": [str(LIST)]}


def test_reads_name_fields_events_lists_isp_references_and_the_clock() -> None:
    reads = _reads(
        _field("country"),
        _field("plan"),
        _field("last_click_at"),
        {**OPENED, "days_window": {"mode": "last", "days": 3}},
        ISP,
        {"kind": "segment", "operator": "in", "segment_ids": [str(LIST)]},
    )
    assert reads.fields == {"country", "plan", "last_click_at"}
    assert reads.custom
    assert reads.events == {"open", "click"}  # last_click_at is read from click events
    assert reads.isp and reads.clock and not reads.lists
    assert reads.segments == {LIST}


@pytest.mark.parametrize(
    ("conditions", "lists", "hints", "affected"),
    [
        ([_field("country")], (), Hints(fields=frozenset({"country"})), True),
        ([_field("country")], (), Hints(fields=frozenset({"city", "updated_at"})), False),
        ([_field("country")], (), None, True),  # no hints: anything may have changed
        ([_field("country")], (), Hints(), False),  # said: nothing changed
        ([_field("opens_count")], (), Hints(events=frozenset({"open"})), True),
        ([_field("opens_count")], (), Hints(events=frozenset({"click"})), False),
        ([OPENED], (), Hints(fields=frozenset({"opens_count"})), False),
        ([OPENED], (), Hints(events=frozenset({"open", "bounce"})), True),
        # The universe reads lists, whatever the rules read.
        ([_field("country")], (LIST,), Hints(lists=True), True),
        ([_field("country")], (), Hints(lists=True), False),
        ([IN_LIST], (), Hints(lists=True), True),
        # The ISP follows the address.
        ([ISP], (), Hints(fields=frozenset({"email"})), True),
        ([ISP], (), Hints(fields=frozenset({"isp_id"})), True),
        ([_field("country")], (), Hints(fields=frozenset({"isp_id"})), False),
        # `attributes`: any custom field.
        ([_field("plan")], (), Hints(fields=frozenset({"attributes"})), True),
        ([_field("plan")], (), Hints(fields=frozenset({"plan"})), True),
        ([_field("country")], (), Hints(fields=frozenset({"attributes"})), False),
        # A referenced segment's moves reach the referring segment by propagation.
        (
            [{"kind": "segment", "operator": "in", "segment_ids": [str(LIST)]}],
            (),
            Hints(fields=frozenset({"country"}), events=frozenset({"open"}), lists=True),
            False,
        ),
    ],
)
def test_a_segment_is_affected_when_its_reads_meet_the_hints(
    conditions: list[dict[str, Any]],
    lists: tuple[uuid.UUID, ...],
    hints: Hints | None,
    affected: bool,
) -> None:
    assert _reads(*conditions, lists=lists).affected_by(hints) is affected


def test_rules_that_cannot_be_read_count_as_reading_everything() -> None:
    for hints in (
        Hints(fields=frozenset({"country"})),
        Hints(events=frozenset({"delivered"})),
        Hints(lists=True),
    ):
        assert EVERYTHING.affected_by(hints)


async def test_each_segment_is_planned_for_the_contacts_of_the_messages_concerning_it(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    country = await save_segment(conn, account_id, {"all": [_field("country")]})
    opened = await save_segment(conn, account_id, {"all": [OPENED]})
    await conn.execute(
        "UPDATE segments SET status = 'DONE' WHERE id = ANY($1::uuid[])",
        [country["id"], opened["id"]],
    )
    ann, bob, cid = sorted(uuid.uuid4() for _ in range(3))
    by_country = Hints(fields=frozenset({"country"}))
    reads = SegmentReads()
    plan = await reads.plan(
        conn,
        account_id,
        [(by_country, [ann]), (Hints(events=frozenset({"open"})), [bob]), (by_country, [cid])],
    )
    planned = {tuple(w.segment_ids): w.contact_ids for w in plan.work}
    assert planned == {(country["id"],): [ann, cid], (opened["id"],): [bob]}
    assert (plan.evaluated, plan.skipped, plan.pairs) == (2, 0, 3)
    # A message without hints concerns every segment; segments of the same contacts share
    # one statement, and so do groups sharing contacts when reading them once costs less
    # than the pairs added (bob's segments and ann's: one statement of both for both).
    plan = await reads.plan(conn, account_id, [(by_country, [ann]), (None, [bob])])
    assert [(sorted(w.segment_ids), w.contact_ids) for w in plan.work] == [
        (sorted([country["id"], opened["id"]]), [ann, bob])
    ]
    plan = await reads.plan(conn, account_id, [(None, [ann, bob])])
    assert [w.contact_ids for w in plan.work] == [[ann, bob]]
    assert sorted(plan.work[0].segment_ids) == sorted([country["id"], opened["id"]])
    nothing = await reads.plan(conn, account_id, [(Hints(fields=frozenset({"city"})), [ann])])
    assert (nothing.work, nothing.skipped) == ([], 2)


def test_groups_sharing_contacts_merge_only_when_one_statement_costs_less() -> None:
    s = [uuid.uuid4() for _ in range(4)]
    shared = {uuid.uuid4() for _ in range(50)}
    own = [{uuid.uuid4() for _ in range(50)} for _ in range(3)]
    # Half of each group's contacts in common: reading them once saves more than the pairs
    # the merge adds.
    work = merged([({s[0]}, shared | own[0]), ({s[1]}, shared | own[1])])
    assert [(set(w.segment_ids), set(w.contact_ids)) for w in work] == [
        ({s[0], s[1]}, shared | own[0] | own[1])
    ]
    # Groups of different contacts stay apart, whatever their size.
    work = merged([({s[0]}, own[0]), (set(s[1:]), own[1])])
    assert sorted(len(w.contact_ids) for w in work) == [50, 50]
    # One contact in common with a group of many segments: the pairs added cost more.
    many = {uuid.uuid4() for _ in range(CONTACT_COST_IN_PAIRS * 2)}
    lone = next(iter(shared))
    work = merged([(many, own[0] | {lone}), ({s[0]}, own[1] | {lone})])
    assert len(work) == 2
    # Each segment still in exactly one statement, in PostgreSQL's uuid order.
    work = merged([({s[0]}, shared), ({s[1], s[2]}, shared | own[0]), ({s[3]}, own[2])])
    assert sorted(x for w in work for x in w.segment_ids) == sorted(s)
    assert all(w.segment_ids == in_database_order(w.segment_ids) for w in work)


def test_a_plan_splits_every_group_and_keeps_each_segment_in_one_part() -> None:
    segments = in_database_order(uuid.uuid4() for _ in range(5))
    plan = Plan(
        [Work(segments[:3], [uuid.uuid4()]), Work(segments[3:], [uuid.uuid4(), uuid.uuid4()])],
        skipped=0,
    )
    parts = plan.split(2)
    assert len(parts) == 2
    placed = [s for part in parts for work in part for s in work.segment_ids]
    assert sorted(placed) == sorted(segments)  # each once
    assert [len(w.segment_ids) for w in parts[0]] == [2, 1]
    assert [len(w.segment_ids) for w in parts[1]] == [1, 1]
    assert plan.split(1) == [plan.work]
    assert Plan([], skipped=0).split(1) == []  # nothing to apply takes no connection


async def test_each_part_is_a_run_of_ids_in_the_databases_order(
    conn: asyncpg.Connection,
) -> None:
    # A part's membership lookups are bounded by its lowest and highest id (worker.changes):
    # the runs must not overlap in PostgreSQL's order, which Python's must therefore match.
    segments = [uuid.uuid4() for _ in range(40)]
    in_database = await conn.fetchval(
        "SELECT array_agg(s ORDER BY s) FROM unnest($1::uuid[]) s", segments
    )
    assert in_database == in_database_order(segments)
    plan = Plan([Work(in_database_order(segments), [uuid.uuid4()])], skipped=0)
    first, second = (part[0].segment_ids for part in plan.split(2))
    assert max(first) < min(second)
    assert sorted(first + second) == sorted(segments)


def test_an_update_hints_the_keys_sent_and_too_many_custom_keys_become_attributes() -> None:
    hints = fields_changed({"status", "attributes"}, {"plan"})
    assert hints.fields == ["plan", "status", "updated_at"]
    many = fields_changed({"attributes"}, {f"k{i}" for i in range(200)})
    assert many.fields == ["attributes", "updated_at"]


async def test_the_selection_keeps_the_live_segments_whose_reads_meet_the_hints(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    country = await save_segment(conn, account_id, {"all": [_field("country")]})
    opened = await save_segment(conn, account_id, {"all": [OPENED]})
    pending = await save_segment(conn, account_id, {"all": [_field("country")]})
    await conn.execute(
        "UPDATE segments SET status = 'DONE' WHERE id = ANY($1::uuid[])",
        [country["id"], opened["id"]],
    )
    reads = SegmentReads()
    by_country = await reads.select(conn, account_id, Hints(fields=frozenset({"country"})))
    assert (by_country.segment_ids, by_country.skipped) == ([country["id"]], 1)
    everything = await reads.select(conn, account_id, None)
    assert set(everything.segment_ids) == {country["id"], opened["id"]}
    assert pending["id"] not in everything.segment_ids  # not live: its build reads the data
    # New rules are a new generation: read again, never from the cache.
    await conn.execute(
        """UPDATE segments SET rules = $2, generation = generation + 1 WHERE id = $1""",
        country["id"],
        {"all": [OPENED]},
    )
    by_open = await reads.select(conn, account_id, Hints(events=frozenset({"open"})))
    assert set(by_open.segment_ids) == {country["id"], opened["id"]}
    assert len(reads) == 3


async def test_a_segment_whose_rules_no_longer_parse_is_selected_by_any_hint(
    conn: asyncpg.Connection, account_id: uuid.UUID
) -> None:
    undeclared = await save_segment(conn, account_id, {"all": [_field("score")]})
    await conn.execute("UPDATE segments SET status = 'DONE' WHERE id = $1", undeclared["id"])
    selection = await SegmentReads().select(conn, account_id, Hints(fields=frozenset({"city"})))
    assert selection.segment_ids == [undeclared["id"]]


async def test_the_worker_skips_segments_that_read_nothing_the_hints_name(
    conn: asyncpg.Connection, account_id: uuid.UUID, exchange: Any, worker: None
) -> None:
    ann, bob, cid = await seed_contacts(
        conn, account_id, [{"country": "DE"}, {"country": "FR"}, {"country": "FR"}]
    )
    in_de = {"all": [{**_field("country", "equals"), "value": "de"}]}
    by_country = await save_segment(conn, account_id, in_de)
    by_opens = await save_segment(conn, account_id, {"all": [OPENED]})
    for segment in (by_country, by_opens):
        await publish_segment(exchange, "segment.created", segment)
        await wait_status(conn, segment["id"], "DONE")
    # Bob moves to Germany; Ann also opened, but the message only says "country": the
    # segment of openers is not re-evaluated, so Ann does not join it (yet).
    await conn.execute("UPDATE contacts SET country = 'de' WHERE id = $1", bob)
    await conn.execute(
        """INSERT INTO events (account_id, contact_id, type, occurred_at)
           VALUES ($1, $2, 'open', now()), ($1, $3, 'open', now())""",
        account_id,
        ann,
        cid,
    )
    await publish_changes(exchange, account_id, [ann, bob], ChangeHints(fields=["country"]))

    async def moved(segment_id: uuid.UUID, contact_id: uuid.UUID) -> bool:
        return contact_id in await members(conn, segment_id)

    await wait_for(lambda: moved(by_country["id"], bob))
    # A later batch, without hints: once it shows, the first batch is wholly applied.
    await publish_changes(exchange, account_id, [cid])
    await wait_for(lambda: moved(by_opens["id"], cid))
    assert await members(conn, by_opens["id"]) == {cid}
    assert await members(conn, by_country["id"]) == {ann, bob}


async def test_a_malformed_changed_is_dead_lettered_with_its_reason(
    conn: asyncpg.Connection,
    account_id: uuid.UUID,
    exchange: Any,
    worker: None,
    amqp_url: str,
) -> None:
    body = {
        "schema": 1,
        "account_id": str(account_id),
        "contact_ids": [str(uuid.uuid4())],
        "changed_at": "2024-05-01T10:00:00Z",
        "changed": {"fields": ["country"], "events": ["opened"]},
    }
    message = amqp_message(dumps(body))
    await exchange.publish(message, routing_key="contact.changed")
    queue = CONTACT_CHANGES_QUEUE.dead_letter_queue

    async def dead() -> Any:
        try:
            return await take_dead_letter(amqp_url, queue, str(message.message_id))
        except AssertionError:
            return None

    letter = await wait_for(dead)
    assert letter.headers[REASON_HEADER] == "bad_message"
    assert "changed.events.0" in letter.headers["x-segments-detail"]
