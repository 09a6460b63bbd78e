"""The reference evaluator itself, on data small enough to check by eye: the tree's nodes and
the `segment` condition mean what the rule reference says."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tests.reference import Contact, Data, Evaluator, Member

ACCOUNT = uuid.uuid4()
NOW = datetime(2026, 12, 1, tzinfo=UTC)
LIST = uuid.uuid4()
NL, DE, NONE = (
    Contact(uuid.uuid4(), ACCOUNT, "a@x.io", "subscribed", country="nl"),
    Contact(uuid.uuid4(), ACCOUNT, "b@x.io", "bounced", country="de"),
    Contact(uuid.uuid4(), ACCOUNT, "c@x.io", "subscribed"),
)
DATA = Data(
    contacts=[NL, DE, NONE],
    events=[],
    members=[Member(LIST, c.id, ACCOUNT) for c in (NL, DE)],
    custom_fields={},
)


def field(name: str, operator: str, value: object = None) -> dict[str, object]:
    return {"kind": "field", "field": name, "operator": operator, "value": value}


IN_NL = field("country", "equals", "nl")
SUBSCRIBED = field("status", "equals", "subscribed")


def members(
    rules: dict[str, object],
    lists: list[uuid.UUID] | None = None,
    of: dict[uuid.UUID, set[uuid.UUID]] | None = None,
) -> set[uuid.UUID]:
    return Evaluator(DATA, ACCOUNT, NOW, segment_members=of).members("v2", rules, lists or [])


def test_not_matches_the_complement_within_the_universe_null_included() -> None:
    assert members({"all": [IN_NL]}) == {NL.id}
    assert members({"all": [{"not": IN_NL}]}) == {DE.id, NONE.id}
    assert members({"all": [{"not": IN_NL}]}, [LIST]) == {DE.id}


def test_nested_groups() -> None:
    rules = {"any": [{"all": [SUBSCRIBED, {"not": IN_NL}]}, {"not": {"any": [SUBSCRIBED]}}]}
    assert members(rules) == {NONE.id, DE.id}


def test_the_first_release_form_is_one_case_of_the_tree() -> None:
    assert members({"any": [{"all": [SUBSCRIBED, IN_NL]}]}) == {NL.id}


def test_segment_conditions_read_the_referenced_membership() -> None:
    other = uuid.uuid4()
    inside = {"kind": "segment", "operator": "in", "segment_ids": [str(other)]}
    outside = {"kind": "segment", "operator": "not_in", "segment_ids": [str(other)]}
    assert members({"all": [inside]}, of={other: {DE.id}}) == {DE.id}
    assert members({"all": [outside]}, of={other: {DE.id}}) == {NL.id, NONE.id}
