"""`explain` of a contact (worker.explain_contact) agrees with the compiler and the reference
evaluator (tests/reference.py) on generated data and rules of every kind, in all three
dialects, nested, with segment references and in timezones: for every contact, `matches` is
the compiled query's verdict (member ids) and the reference's; every node's `result` is the
reference's for that node; every condition's `observed` is what the reference reads; and
nothing of another account can be explained."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.calendar_strategies import calendar_data, calendar_rules, zones_and_nows
from tests.property_support import EXAMPLES as ALL_EXAMPLES
from tests.property_support import REGISTRY, Database, load_generated, load_referenced
from tests.reference import Contact, Data, Evaluator
from tests.strategies import (
    ACCOUNT,
    NOW,
    OTHER_ACCOUNT,
    data_sets,
    rules_in_any_dialect,
    segment_memberships,
    universes,
)
from worker.compiler import SegmentQuery, compile_member_ids
from worker.db import Conn
from worker.explain_contact import ContactExplanation, ContactNotFound, explain_contact
from worker.observed import jsonable
from worker.rules import parse_rules
from worker.store import SegmentNotFound

EXAMPLES = ALL_EXAMPLES // 2
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for key in ("any", "all"):
        for child in node.get(key, ()):
            yield from nodes(child)
    if "not" in node:
        yield from nodes(node["not"])


class Case:
    """One segment of ACCOUNT, explained for each contact of the data."""

    def __init__(self, evaluator: Evaluator, dialect: str, rules: Any, universe: list[uuid.UUID]):
        self.evaluator = evaluator
        self.dialect, self.rules, self.universe = dialect, rules, universe

    async def check(self, conn: Conn, now: datetime, zone: str = "UTC") -> None:
        segment_id = await conn.fetchval(
            """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids, timezone)
               VALUES ($1, 'explained', $2, $3, $4, $5) RETURNING id""",
            ACCOUNT, self.dialect, self.rules, self.universe, zone,
        )  # fmt: skip
        tree = parse_rules(self.dialect, self.rules, REGISTRY)  # type: ignore[arg-type]
        compiled = compile_member_ids(SegmentQuery(ACCOUNT, tree, tuple(self.universe), now, zone))
        verdicts = {r[0] for r in await conn.fetch(compiled.sql, *compiled.params)}
        expected = self.evaluator.members(self.dialect, self.rules, self.universe)
        for contact in self.evaluator.data.contacts:
            if contact.account_id != ACCOUNT:
                with pytest.raises(ContactNotFound):
                    await explain_contact(conn, ACCOUNT, segment_id, str(contact.id), now)
                continue
            got = await explain_contact(conn, ACCOUNT, segment_id, str(contact.id), now)
            context = f"{self.dialect} rules={self.rules} universe={self.universe} {contact}"
            assert got.matches == (contact.id in verdicts), context
            assert got.matches == (contact.id in expected), context
            lists = self.evaluator.lists_of(contact)
            assert got.in_universe == (not self.universe or bool(lists & set(self.universe)))
            self.check_nodes(got, contact, context)
        with pytest.raises(SegmentNotFound):  # another account cannot ask about it
            await explain_contact(conn, OTHER_ACCOUNT, segment_id, str(contact.id), now)

    def check_nodes(self, got: ContactExplanation, contact: Contact, context: str) -> None:
        for node in nodes(got.tree):
            where = f"{context} node={node}"
            assert node["result"] == self.evaluator.node(node, contact), where
            if "kind" in node:
                assert node["observed"] == self.observed(node, contact), where

    def observed(self, c: dict[str, Any], contact: Contact) -> Any:
        """What the reference reads for the condition, in explain's shape."""
        ev = self.evaluator
        if c["kind"] == "field":
            _, read = ev.field_type_and_value(c["field"], contact)
            stored = self.stored(c["field"], contact, read)
            return {"stored": jsonable(stored), "read": jsonable(read)}
        if c["kind"] in ("activity", "deliverability"):
            start, end = self.window(c)
            return {"count": ev.activity_count(c, contact), "from": start, "to": end}
        if c["kind"] == "membership":
            ids = set(c["list_ids"]) & {str(x) for x in ev.lists_of(contact)}
            return {"lists": [{"id": x, "name": "list"} for x in sorted(ids)]}
        if c["kind"] == "isp":
            return {"isp_id": contact.isp_id, "name": c["observed"]["name"]}
        inside = [x for x in c["segment_ids"] if contact.id in ev.segment_members[uuid.UUID(x)]]
        return {"segments": [{"id": x, "name": "referenced"} for x in sorted(inside)]}

    def window(self, c: dict[str, Any]) -> tuple[str | None, str | None]:
        """[from, to) of the condition's window: rolling windows from now; a calendar
        period's bounds are those of explain's answer, checked to be the first instant in the
        period and the first after it, as the reference reads local days."""
        window, now = c.get("days_window"), self.evaluator.now
        if not window:
            return None, None
        if window["mode"] != "calendar":
            cutoff = jsonable(now - timedelta(days=window["days"]))
            return (cutoff, None) if window["mode"] == "last" else (None, cutoff)
        start, end = (datetime.fromisoformat(c["observed"][k]) for k in ("from", "to"))
        if start == end:  # a period before the first representable day: empty
            return c["observed"]["from"], c["observed"]["to"]
        inside = [start, end - timedelta(microseconds=1)]
        outside = [start - timedelta(microseconds=1), end]
        ev = self.evaluator
        assert all(ev.in_period(ev.local_date(t), window) for t in inside), (start, end)
        assert not any(ev.in_period(ev.local_date(t), window) for t in outside), (start, end)
        return c["observed"]["from"], c["observed"]["to"]

    def stored(self, field: str, contact: Contact, read: Any) -> Any:
        if field in self.evaluator.data.custom_fields and not hasattr(contact, field):
            return contact.attributes.get(field)
        return getattr(contact, field, read)  # derived fields: the derived value


@_SETTINGS
@given(
    data=data_sets(),
    cases=st.lists(st.tuples(rules_in_any_dialect, universes), min_size=1, max_size=2),
    memberships=segment_memberships,
)
def test_explain_agrees_with_compiler_and_reference(
    db: Database, data: Data, cases: list[Any], memberships: list[set[int]]
) -> None:
    async def check() -> None:
        async with db.conn.transaction():
            await load_generated(db.conn, data)
            referenced = await load_referenced(db.conn, data, memberships)
            evaluator = Evaluator(data, ACCOUNT, NOW, segment_members=referenced)
            for (dialect, rules), universe in cases:
                await Case(evaluator, dialect, rules, universe).check(db.conn, NOW)
            raise _Rollback

    with pytest.raises(_Rollback):
        db.run(check())


@_SETTINGS
@given(st.data())
def test_explain_in_a_timezone_agrees_with_reference(db: Database, data: st.DataObject) -> None:
    zone, now = data.draw(zones_and_nows(), "zone and now")
    dataset = data.draw(calendar_data(zone, now), "data")
    rules = data.draw(calendar_rules(), "rules")

    async def check() -> None:
        async with db.conn.transaction():
            await load_generated(db.conn, dataset)
            evaluator = Evaluator(dataset, ACCOUNT, now, timezone=zone)
            await Case(evaluator, "v2", rules, []).check(db.conn, now, zone)
            raise _Rollback

    with pytest.raises(_Rollback):
        db.run(check())


class _Rollback(Exception):
    """Leaves the example's transaction without a trace."""
