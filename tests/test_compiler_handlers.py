"""Every rule kind and operator has a handler in the compiler: a row of an operator table, a
planner rewrite, and a translation of each node kind the planner produces.

Conditions are built as canonical tree nodes (worker.rules.tree), so a kind or operator added
to the tree without a handler fails here, whatever the dialects accept. Whether the SQL means
the right thing is test_compiler_operators' and test_property's job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, get_args, get_type_hints
from uuid import UUID

from worker.compiler import SegmentQuery, compile_count, compile_matching_among, compile_member_ids
from worker.compiler.nodes import AllOf, AnyEvent, AnyOf, EventFilter, EventTest, Node, Not
from worker.compiler.operators import (
    AGGREGATE_OPS,
    COLUMNS,
    COUNT_OPERATORS,
    COUNT_TESTS,
    CUSTOM_READERS,
    DERIVED,
    LATEST,
    PG_TYPES,
    ROW_OPERATORS,
)
from worker.compiler.plan import plan
from worker.rules.fields import (
    BUILTIN_FIELDS,
    OPERATORS_BY_TYPE,
    FieldSource,
    FieldSpec,
    FieldType,
)
from worker.rules.tree import (
    CALENDAR_OPERATORS,
    ActivityCondition,
    AllNode,
    AnyNode,
    CalendarPeriod,
    Condition,
    DaysWindow,
    FieldCondition,
    FieldValue,
    IspCondition,
    MembershipCondition,
    NotNode,
    RuleTree,
    SegmentCondition,
)

ACCOUNT = UUID("00000000-0000-4000-8000-00000000000a")
LIST = UUID("00000000-0000-4000-8000-0000000000b1")
CAMPAIGN = UUID("00000000-0000-4000-8000-0000000000c1")
SEGMENTS = (
    UUID("00000000-0000-4000-8000-0000000000e1"),
    UUID("00000000-0000-4000-8000-0000000000e2"),
)
NOW = datetime(2026, 5, 21, 12, 0, tzinfo=UTC)
NULL_OPERATORS = {"is_null", "is_not_null"}


def literal(cls: type, attribute: str) -> tuple[Any, ...]:
    """The values of a Literal-typed attribute of a tree node."""
    return get_args(get_type_hints(cls)[attribute])


def sample_value(field_type: FieldType, operator: str) -> FieldValue:
    if operator in NULL_OPERATORS:
        return None
    if operator in ("within_days", "anniversary_within_days"):
        return 30
    if operator == "in_calendar":
        return CalendarPeriod("month", -1)
    scalar: FieldValue = {
        FieldType.TEXT: "x",
        FieldType.NUMBER: Decimal(2),
        FieldType.DATETIME: NOW,
        FieldType.BOOLEAN: True,
        FieldType.LIST: ("x",),
    }[field_type]
    if operator in ("in", "not_in"):
        return ("x", "y") if field_type is FieldType.TEXT else (Decimal(1), Decimal(2))
    return scalar


def field_conditions() -> list[Condition]:
    custom = [FieldSpec(f"custom_{t}", t, FieldSource.CUSTOM) for t in FieldType]
    return [
        FieldCondition(spec, operator, sample_value(spec.type, operator))
        for spec in [*BUILTIN_FIELDS.values(), *custom]
        for operator in sorted(OPERATORS_BY_TYPE[spec.type])
        # The rules refuse the anniversary of a latest event (worker.rules.conditions).
        if not (operator == "anniversary_within_days" and spec.source is FieldSource.DERIVED)
    ]


def activity_conditions() -> list[Condition]:
    out: list[Condition] = []
    for kind in literal(ActivityCondition, "kind"):
        for operator in literal(ActivityCondition, "operator"):
            values = [None] if operator in ("ever", "never") else [0, 1, 2]
            for value in values:
                windows = (
                    None,
                    DaysWindow("last", 30),
                    DaysWindow("more_than", 30),
                    CalendarPeriod("week", 0),
                )
                for window in windows:
                    for include, exclude in (((), ()), ((CAMPAIGN,), ()), ((), (CAMPAIGN,))):
                        out.append(
                            ActivityCondition(
                                kind, "open", operator, value, window, include, exclude
                            )
                        )
    return out


def every_condition() -> list[Condition]:
    return [
        *field_conditions(),
        *activity_conditions(),
        *(MembershipCondition(op, (LIST,)) for op in literal(MembershipCondition, "operator")),
        *(IspCondition(op, (1, 2)) for op in literal(IspCondition, "operator")),
        *(
            SegmentCondition(op, segments)
            for op in literal(SegmentCondition, "operator")
            for segments in (SEGMENTS[:1], SEGMENTS)
        ),
    ]


def query(*groups: tuple[Condition, ...], lists: tuple[UUID, ...] = ()) -> SegmentQuery:
    return SegmentQuery(ACCOUNT, RuleTree.of_groups(groups), lists, NOW)


def test_the_samples_cover_every_condition_kind_and_field_source() -> None:
    conditions = every_condition()
    assert {type(c) for c in conditions} == set(get_args(Condition))
    fields = [c for c in conditions if isinstance(c, FieldCondition)]
    assert {c.field.source for c in fields} == set(FieldSource)


def test_every_condition_and_operator_compiles_in_every_form() -> None:
    for c in every_condition():
        for lists in ((), (LIST,)):
            q = query((c,), lists=lists)
            assert compile_member_ids(q).sql.startswith("SELECT"), c
            assert compile_count(q).sql.startswith("SELECT"), c
            assert compile_matching_among(q, [ACCOUNT]).sql.startswith("WITH"), c


def _reached(node: Node) -> set[type]:
    if isinstance(node, AllOf | AnyOf):
        return {type(node)}.union(*(_reached(n) for n in node.nodes))
    if isinstance(node, Not):
        return {Not} | _reached(node.node)
    if isinstance(node, EventTest):
        return {EventTest, *(type(f) for f in node.filters)}
    if isinstance(node, AnyEvent):
        return {AnyEvent}.union(*(_reached(t) for t in node.tests))
    return {type(node)}


def test_the_planner_reaches_every_node_kind_translation_handles() -> None:
    """Translation dispatches on the plan's node kinds (mypy checks the match is exhaustive);
    every kind must also be something the planner produces, or the handler is dead code."""
    reached: set[type] = set()
    for c in every_condition():
        # Alone, negated and inside a nested `any`.
        nested = AllNode((NotNode(c), AnyNode((c, NotNode(c)))))
        for tree in (RuleTree.of_groups(((c,),)), RuleTree(nested)):
            for group in plan(tree, NOW).groups:
                reached = reached.union(*(_reached(n) for n in group.nodes))
    merged = plan(
        RuleTree.of_groups(
            tuple(
                (ActivityCondition("deliverability", metric, "ever", None, None, (), ()),)
                for metric in ("bounce", "complaint")
            )
        ),
        NOW,
    )
    assert [type(n) for g in merged.groups for n in g.nodes] == [EventTest]
    # Alternatives with different windows: one scan, a test per window.
    window = ActivityCondition("activity", "open", "ever", None, DaysWindow("last", 30), (), ())
    bounce = ActivityCondition("deliverability", "bounce", "ever", None, None, (), ())
    alternatives = plan(RuleTree.of_groups(((window,), (bounce,))), NOW)
    nodes = [n for g in alternatives.groups for n in g.nodes]
    assert [type(n) for n in nodes] == [AnyEvent]
    reached |= _reached(nodes[0])
    assert reached == set(get_args(Node)) | set(get_args(EventFilter))


def test_every_field_has_a_reader_and_every_type_a_placeholder_type() -> None:
    columns = {name for name, spec in BUILTIN_FIELDS.items() if spec.source is FieldSource.COLUMN}
    assert set(COLUMNS) | {"tags"} == columns  # tags has a reader of its own
    assert set(CUSTOM_READERS) == set(PG_TYPES) == set(FieldType)


def test_every_operator_of_every_type_has_a_row_handler() -> None:
    """Calendar operators have a translation of their own (Translator.calendar_field)."""
    for field_type, operators in OPERATORS_BY_TYPE.items():
        assert set(ROW_OPERATORS[field_type]) == set(operators) - CALENDAR_OPERATORS, field_type


def test_every_operator_of_a_derived_field_has_an_aggregate_handler() -> None:
    derived = {name for name, spec in BUILTIN_FIELDS.items() if spec.source is FieldSource.DERIVED}
    assert set(DERIVED) == derived
    for name in DERIVED:
        operators = OPERATORS_BY_TYPE[BUILTIN_FIELDS[name].type] - NULL_OPERATORS
        if name in LATEST:  # lower bounds and periods become filters on occurred_at
            operators -= {"gt", "gte", "within_days", "in_calendar"}
            operators -= {"anniversary_within_days"}  # refused by the rules
        else:  # whether contacts without events match is decided by a count of 0
            assert operators <= set(COUNT_TESTS), name
        assert operators <= set(AGGREGATE_OPS), name


def test_every_counting_activity_operator_has_an_aggregate_handler() -> None:
    counting = {op for op in literal(ActivityCondition, "operator") if op.startswith("count_")}
    assert set(COUNT_OPERATORS) == counting
    assert set(COUNT_OPERATORS.values()) <= set(AGGREGATE_OPS)
