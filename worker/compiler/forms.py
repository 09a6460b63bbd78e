"""The three forms of a segment's query (docs/rules.md is the meaning of every piece):
`count`, `member_ids` (materialisation) and `matching_among` (incremental updates), the
first two over all the account's contacts, the third over candidates (worker.compiler.sources).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from worker.compiler.plan import plan
from worker.compiler.query import CompiledQuery, SegmentQuery
from worker.compiler.sources import AllContacts, Candidates, Source
from worker.compiler.translate import Translator


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
    """SELECT of those of `candidates` that match: compile_matching_among_each of one query
    (the form incremental updates run), as one statement."""
    among = compile_matching_among_each([query], candidates)
    return CompiledQuery(f"WITH {among.with_clause}\n{among.selects[0]}", among.params)


@dataclass(frozen=True)
class CompiledAmong:
    """`matching_among` of several segments of one account over one parameter list: $1 is
    the account, $2 the candidate ids; `selects[i]` is the SELECT of `queries[i]`, and they
    all read the CTE `with_clause` (text to put after WITH)."""

    with_clause: str
    selects: tuple[str, ...]
    params: tuple[Any, ...]
    candidates: str


def compile_matching_among_each(
    queries: Sequence[SegmentQuery], candidates: Sequence[UUID]
) -> CompiledAmong:
    """Which of `candidates` match, for each query; one statement can run them all, reading
    the candidates once."""
    accounts = {q.account_id for q in queries}
    if len(accounts) != 1:
        raise ValueError("the queries of one statement must share one account")
    source = Candidates.of(accounts.pop(), candidates)
    selects = tuple(_select(q, source, count=False) for q in queries)
    return CompiledAmong(source.with_clause(), selects, tuple(source.params.values), source.ids)
