"""Hypothesis strategies: small data sets and rule trees that overlap, so rules really match.

Values come from small pools shared by the data and the rules (mixed case, '%', '_', '\\',
accents, '' and missing values), so every operator sees hits, misses and nulls.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tests.reference import Contact, Data, Event, Member

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
ACCOUNT = uuid.UUID("00000000-0000-4000-8000-00000000000a")
OTHER_ACCOUNT = uuid.UUID("00000000-0000-4000-8000-00000000000b")
LISTS = [uuid.UUID(f"00000000-0000-4000-8000-0000000001{i:02d}") for i in range(3)]
# Segments of ACCOUNT that `segment` conditions reference; tests give them drawn members
# (segment_memberships).
REFERENCED = [uuid.UUID(f"00000000-0000-4000-8000-0000000002{i:02d}") for i in range(3)]
CAMPAIGNS = [uuid.UUID(f"00000000-0000-4000-8000-0000000002{i:02d}") for i in range(3)]
CUSTOM_FIELDS = {
    "c_text": "text",
    "c_num": "number",
    "c_bool": "boolean",
    "c_date": "datetime",
    "c_list": "list",
    "country": "number",  # shadowed by the built-in text column: must be ignored
}
TEXT_FIELDS = ["email", "name", "company", "status", "country", "city", "c_text"]
EVENT_TYPES = ["open", "click", "bounce", "complaint", "delivered", "unsubscribe"]

# Lower-casing agrees between Python and PostgreSQL (C.UTF-8) on this alphabet.
_ALPHABET = "aAbB%_\\ éÉß"
rule_text = st.text(_ALPHABET, min_size=1, max_size=2)
stored_text = st.one_of(st.none(), st.just(""), st.text(_ALPHABET, max_size=3))
numbers = st.sampled_from([-2, 0, 1, 2, 3, 1.5, -0.5])
days_offsets = st.floats(min_value=-3, max_value=45, allow_nan=False).map(lambda d: round(d, 3))


def _iso(moment: datetime, style: int) -> str:
    """One instant written in one of the accepted ISO 8601 styles."""
    if style == 0:
        return moment.date().isoformat()
    if style == 1:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 2:
        shifted = moment + timedelta(hours=2)
        return shifted.strftime("%Y-%m-%d %H:%M+02:00")
    if style == 3:
        shifted = moment - timedelta(hours=5, minutes=30)
        return shifted.strftime("%Y-%m-%dT%H:%M:%S.%f-0530")
    return moment.strftime("%Y-%m-%dT%H:%M:%S")  # no offset: UTC


def iso_near_now() -> st.SearchStrategy[str]:
    return st.builds(
        lambda d, style: _iso(NOW - timedelta(days=d), style), days_offsets, st.integers(0, 4)
    )


stored_datetime_text = st.one_of(
    iso_near_now(),
    st.sampled_from(["2026-02-30", "2026-06-10T25:00:00", "yesterday", "", "2026-6-1"]),
)


@st.composite
def attributes(draw: st.DrawFn) -> dict[str, Any]:
    candidates: dict[str, st.SearchStrategy[Any]] = {
        "c_text": st.one_of(stored_text, numbers),
        "c_num": st.one_of(numbers, st.sampled_from(["1", True, None])),
        "c_bool": st.sampled_from([True, False, "true", 1, None]),
        "c_date": st.one_of(stored_datetime_text, st.just(20260610)),
        "c_list": st.one_of(
            st.lists(st.one_of(rule_text, st.just(1), st.none()), max_size=3), st.just("a")
        ),
    }
    keys = draw(st.lists(st.sampled_from(list(candidates)), unique=True))
    return {k: draw(candidates[k]) for k in keys}


@st.composite
def contacts(draw: st.DrawFn, account_id: uuid.UUID, index: int) -> Contact:
    moment = st.one_of(st.none(), days_offsets.map(lambda d: NOW - timedelta(days=d)))
    return Contact(
        id=draw(st.uuids(version=4)),
        account_id=account_id,
        email=draw(st.text(_ALPHABET, max_size=2)) + f"@{index}",  # unique per account
        status=draw(st.sampled_from(["subscribed", "unsubscribed", "bounced", "Subscribed"])),
        name=draw(stored_text),
        company=draw(stored_text),
        country=draw(st.one_of(st.none(), st.sampled_from(["DE", "de", "FR", "", "a%"]))),
        city=draw(stored_text),
        tags=draw(st.lists(st.one_of(rule_text, st.just("VIP"), st.just("")), max_size=3)),
        isp_id=draw(st.sampled_from([None, 1, 2, 3])),
        attributes=draw(attributes()),
        created_at=draw(moment),
        updated_at=draw(moment),
    )


@st.composite
def data_sets(draw: st.DrawFn) -> Data:
    ours = [draw(contacts(ACCOUNT, i)) for i in range(draw(st.integers(1, 8)))]
    theirs = [draw(contacts(OTHER_ACCOUNT, i)) for i in range(draw(st.integers(0, 2)))]
    members = []
    for contact in ours:
        for list_id in draw(st.lists(st.sampled_from(LISTS), unique=True, max_size=3)):
            members.append(Member(list_id, contact.id, ACCOUNT))
    # Rows another account wrote that point at our lists and contacts must change nothing.
    for contact in theirs:
        members.append(Member(LISTS[0], contact.id, OTHER_ACCOUNT))
    events = []
    for contact in ours + theirs:
        for _ in range(draw(st.integers(0, 5))):
            events.append(
                Event(
                    account_id=draw(st.sampled_from([contact.account_id] * 5 + [OTHER_ACCOUNT])),
                    contact_id=contact.id,
                    type=draw(st.sampled_from(EVENT_TYPES[:3] * 2 + EVENT_TYPES[3:])),
                    campaign_id=draw(st.sampled_from([*CAMPAIGNS, None])),
                    occurred_at=NOW - timedelta(days=draw(days_offsets)),
                )
            )
    return Data(ours + theirs, events, members, CUSTOM_FIELDS)


# -- rules ----------------------------------------------------------------------------------
FIELD_TYPES = {
    **dict.fromkeys(TEXT_FIELDS, "text"),
    "tags": "list",
    "c_list": "list",
    "created_at": "datetime",
    "updated_at": "datetime",
    "last_open_at": "datetime",
    "last_click_at": "datetime",
    "c_date": "datetime",
    "opens_count": "number",
    "clicks_count": "number",
    "c_num": "number",
    "c_bool": "boolean",
}
OPERATORS = {
    "text": ["equals", "not_equals", "contains", "not_contains", "starts_with", "in", "not_in"],
    "number": ["equals", "not_equals", "gt", "gte", "lt", "lte", "in", "not_in"],
    "datetime": ["gt", "gte", "lt", "lte", "within_days"],
    "boolean": ["equals", "not_equals"],
    "list": ["has_any", "has_all", "has_none"],
}
_NULL_OPERATORS = ["is_null", "is_not_null"]


def field_values(data_type: str, operator: str) -> st.SearchStrategy[Any]:
    if operator in _NULL_OPERATORS:
        return st.none()
    if operator == "within_days":
        return st.integers(1, 40)
    if operator in ("in", "not_in", "has_any", "has_all", "has_none"):
        item = numbers if data_type == "number" else rule_text
        return st.lists(item, min_size=1, max_size=3)
    return {
        "text": rule_text,
        "number": numbers,
        "datetime": iso_near_now(),
        "boolean": st.booleans(),
    }[data_type]


@st.composite
def field_conditions(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(FIELD_TYPES)))
    data_type = FIELD_TYPES[name]
    operator = draw(st.sampled_from(OPERATORS[data_type] + _NULL_OPERATORS))
    condition = {"kind": "field", "field": name, "operator": operator}
    value = draw(field_values(data_type, operator))
    if value is not None or draw(st.booleans()):
        condition["value"] = value
    return condition


@st.composite
def event_conditions(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["activity", "deliverability"]))
    if kind == "activity":
        metric = draw(st.sampled_from(["open", "click"]))
        operators = ["ever", "never", "count_gte", "count_lte", "count_eq"]
    else:
        metric = draw(st.sampled_from(["bounce", "complaint", "delivered", "unsubscribe"]))
        operators = ["ever", "count_gte", "count_lte", "count_eq"]
    operator = draw(st.sampled_from(operators))
    condition: dict[str, Any] = {"kind": kind, "metric": metric, "operator": operator}
    if operator.startswith("count_"):
        condition["value"] = draw(st.integers(0, 3))
    if draw(st.booleans()):
        condition["days_window"] = {
            "mode": draw(st.sampled_from(["last", "more_than"])),
            "days": draw(st.integers(1, 40)),
        }
    if kind == "activity":
        campaigns = draw(st.lists(st.sampled_from([str(c) for c in CAMPAIGNS]), max_size=2))
        which = draw(st.sampled_from(["include_campaign_ids", "exclude_campaign_ids", None]))
        if which and campaigns:
            condition[which] = campaigns
    return condition


def membership_conditions() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda op, ids: {"kind": "membership", "operator": op, "list_ids": ids},
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from([str(x) for x in LISTS]), min_size=1, max_size=2, unique=True),
    )


def isp_conditions() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda op, values: {"kind": "isp", "operator": op, "values": values},
        st.sampled_from(["in", "not_in"]),
        st.lists(st.integers(1, 4), min_size=1, max_size=2),
    )


def segment_conditions() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda op, ids: {"kind": "segment", "operator": op, "segment_ids": ids},
        st.sampled_from(["in", "not_in"]),
        st.lists(
            st.sampled_from([str(x) for x in REFERENCED]), min_size=1, max_size=2, unique=True
        ),
    )


# The members of each REFERENCED segment, as indexes into a data set's contacts (of either
# account; indexes past the end are contacts since deleted).
segment_memberships = st.lists(
    st.sets(st.integers(0, 15), max_size=8), min_size=len(REFERENCED), max_size=len(REFERENCED)
)

conditions = st.one_of(
    field_conditions(),
    event_conditions(),
    membership_conditions(),
    isp_conditions(),
    segment_conditions(),
)


def v2_rules() -> st.SearchStrategy[dict[str, Any]]:
    """The first release's shape: an OR of AND-groups."""
    groups = st.lists(conditions, min_size=1, max_size=3).map(lambda cs: {"all": cs})
    return st.lists(groups, min_size=1, max_size=3).map(lambda gs: {"any": gs})


def tree_nodes(levels: int) -> st.SearchStrategy[dict[str, Any]]:
    """A node of a nested tree (docs/rules.md) at most `levels` any/all/not deep: a
    condition, or an `any`, `all` or `not` of such nodes, with `not` possible at every level."""
    if levels == 0:
        return conditions
    inner = tree_nodes(levels - 1)
    negated = inner.map(lambda n: {"not": n})
    return st.one_of(
        conditions,
        negated,  # twice: `not` is where two-valued logic matters
        st.lists(inner, min_size=1, max_size=3).map(lambda ns: {"any": ns}),
        negated,
        st.lists(inner, min_size=1, max_size=3).map(lambda ns: {"all": ns}),
    )


def nested_v2_rules(levels: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    """A top-level `any` or `all` of nodes `levels` deep below it."""
    return st.builds(
        lambda key, nodes: {key: nodes},
        st.sampled_from(["any", "all"]),
        st.lists(tree_nodes(levels), min_size=1, max_size=3),
    )


_V1_NAMES = {
    "equals": "eq",
    "not_equals": "neq",
    "gt": "gt",
    "gte": "gte",
    "lt": "lt",
    "lte": "lte",
    "contains": "contains",
    "within_days": "within_days",
    "is_not_null": "exists",
    "is_null": "not_exists",
}
_SIMPLE_NAMES = {
    "equals": "equals",
    "not_equals": "not_equals",
    "contains": "contains",
    "not_contains": "not_contains",
    "starts_with": "starts_with",
    "lt": "before",
    "gt": "after",
}


def _dialect_filters(names: dict[str, str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Field conditions whose operator the dialect can say, renamed into the dialect."""

    def rename(c: dict[str, Any]) -> dict[str, Any]:
        return {"field": c["field"], "operator": names[c["operator"]], "value": c.get("value")}

    usable = field_conditions().filter(lambda c: c["operator"] in names)
    return st.lists(usable.map(rename), min_size=1, max_size=3)


def v1_rules() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda match, filters: {"matchType": match, "filters": filters},
        st.sampled_from(["all", "any"]),
        _dialect_filters(_V1_NAMES),
    )


def simple_rules() -> st.SearchStrategy[list[dict[str, Any]]]:
    return _dialect_filters(_SIMPLE_NAMES)


rules_in_any_dialect = st.one_of(
    v2_rules().map(lambda r: ("v2", r)),
    nested_v2_rules().map(lambda r: ("v2", r)),
    nested_v2_rules().map(lambda r: ("v2", r)),
    v1_rules().map(lambda r: ("v1", r)),
    simple_rules().map(lambda r: ("simple", r)),
)
universes = st.lists(st.sampled_from(LISTS), unique=True, max_size=2)
