"""The forms of a segment's query (docs/rules.md is the meaning of every piece): `count`,
`member_ids` (materialisation) and `matching_among` (incremental updates), the first two over
all the account's contacts, the third over candidates (worker.compiler.sources); and
`explain`, the verdict of every node of the rules for one contact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from worker.compiler.plan import event_filters, plan
from worker.compiler.query import CompiledQuery, SegmentQuery
from worker.compiler.sources import CHANGED_CONTACTS, AllContacts, Candidates, Source
from worker.compiler.translate import Translator
from worker.rules.tree import ActivityCondition, AllNode, AnyNode, RuleTree
from worker.rules.tree import Node as TreeNode


def compile_count(query: SegmentQuery) -> CompiledQuery:
    """SELECT count(*) of the matching contacts."""
    return _compile(query, count=True)


def compile_member_ids(query: SegmentQuery) -> CompiledQuery:
    """SELECT of the matching contact ids (one row each)."""
    return _compile(query, count=False)


def _compile(query: SegmentQuery, count: bool) -> CompiledQuery:
    source = AllContacts.of(query.account_id)
    sql = _select(query, source, count)
    return CompiledQuery(sql, tuple(source.params.values))


def _select(query: SegmentQuery, source: Source, count: bool) -> str:
    """The two passes: the planner's rewrites, then translation, binding into the source's
    parameters."""
    planned = plan(query.rules, query.now)
    return Translator(query, source).select(planned, count)


def compile_matching_among(query: SegmentQuery, candidates: Sequence[UUID]) -> CompiledQuery:
    """SELECT of those of `candidates` that match (the form previews and estimates run on a
    sample): the candidates' rows read once into the CTE, then the query's branches over
    them."""
    source = Candidates.of(query.account_id, candidates)
    select = _select(query, source, count=False)
    return CompiledQuery(f"WITH {source.with_clause()}\n{select}", tuple(source.params.values))


@dataclass(frozen=True)
class CompiledAmong:
    """`matching_among` of several segments of one account over one parameter list: $1 is
    the account, $2 the candidate ids; `verdicts[i]` is whether the row `c` of the
    CHANGED_CONTACTS CTE matches `queries[i]` (a boolean expression, true, false or null),
    and `with_clause` is that CTE (text to put after WITH)."""

    with_clause: str
    verdicts: tuple[str, ...]
    params: tuple[Any, ...]
    candidates: str


def compile_matching_among_each(
    queries: Sequence[SegmentQuery], candidates: Sequence[UUID]
) -> CompiledAmong:
    """Which of `candidates` match, for each query: one statement can run them all, reading
    the candidates once and testing every query on each candidate's row in one pass
    (incremental updates)."""
    accounts = {q.account_id for q in queries}
    if len(accounts) != 1:
        raise ValueError("the queries of one statement must share one account")
    source = Candidates.of(accounts.pop(), candidates)
    verdicts = tuple(Translator(q, source).verdict(plan(q.rules, q.now)) for q in queries)
    return CompiledAmong(source.with_clause(), verdicts, tuple(source.params.values), source.ids)


def compile_explain(
    query: SegmentQuery,
    nodes: Sequence[TreeNode],
    counted: Sequence[ActivityCondition],
    contact_id: UUID,
) -> CompiledQuery:
    """One statement answering, for one contact of the query's account, one row (none when
    the account has no such contact) of booleans then counts:
    - the segment's verdict: the query as incremental updates run it (matching_among);
    - whether the contact is in the universe (on one of the lists; true when there are none);
    - the verdict of each of `nodes` (any nodes of the rules), each compiled as rules of
      their own, without the universe;
    - for each of `counted`, the number of the contact's events it counts (its window and
      campaigns applied, docs/rules.md).
    """
    source = Candidates.of(query.account_id, [contact_id])
    alone = replace(query, list_ids=())  # a node's verdict ignores the universe
    verdicts = [_select(query, source, count=False)]
    verdicts += [_select(replace(alone, rules=_as_rules(n)), source, False) for n in nodes]
    universe = source.in_lists(query.list_ids) if query.list_ids else "TRUE"
    translator = Translator(alone, source)
    counts = [translator.event_count(c.metric, event_filters(c, query.now)) for c in counted]
    columns = [
        f"EXISTS (\n{verdicts[0]}\n)",
        universe,
        *(f"EXISTS (\n{v}\n)" for v in verdicts[1:]),
        *counts,
    ]
    sql = f"WITH {source.with_clause()}\nSELECT " + ",\n".join(columns)
    return CompiledQuery(f"{sql}\nFROM {CHANGED_CONTACTS} c", tuple(source.params.values))


def _as_rules(node: TreeNode) -> RuleTree:
    return RuleTree(node if isinstance(node, AnyNode | AllNode) else AllNode((node,)))
