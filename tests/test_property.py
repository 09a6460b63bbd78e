"""The compiled SQL, run on PostgreSQL, agrees with the reference evaluator (tests/reference.py)
on generated data sets and generated rules in all three dialects, in all three query forms, and
through the two writers of membership: incremental updates and builds."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.property_support import (
    EXAMPLES,
    REGISTRY,
    Database,
    load_generated,
    load_referenced,
    sql_answers,
)
from tests.reference import Data, Evaluator
from tests.strategies import (
    ACCOUNT,
    NOW,
    data_sets,
    rules_in_any_dialect,
    segment_memberships,
    universes,
)
from worker.builds import CHECK_FROM_MEMBERS, build_segment
from worker.changes import apply_changes, apply_pending
from worker.compiler import (
    SegmentQuery,
)
from worker.locks import segment_lock_key
from worker.messages import SegmentMessage
from worker.rules import parse_rules


async def _check(
    conn: asyncpg.Connection,
    holder: asyncpg.Connection,
    data: Data,
    cases: list[tuple[str, Any, list[uuid.UUID]]],
    pick: list[bool],
    memberships: list[set[int]],
) -> None:
    transaction = conn.transaction()
    await transaction.start()
    try:
        await load_generated(conn, data)
        referenced = await load_referenced(conn, data, memberships)
        evaluator = Evaluator(data, ACCOUNT, NOW, segment_members=referenced)
        ours = [c.id for c in data.contacts if c.account_id == ACCOUNT]
        theirs = [c.id for c in data.contacts if c.account_id != ACCOUNT]
        candidates = [cid for cid, keep in zip(ours, pick, strict=False) if keep] + theirs
        for dialect, rules, universe in cases:
            tree = parse_rules(dialect, rules, REGISTRY)  # type: ignore[arg-type]
            query = SegmentQuery(ACCOUNT, tree, tuple(universe), NOW)
            expected = evaluator.members(dialect, rules, universe)
            count, members, matching = await sql_answers(conn, query, candidates)
            context = f"{dialect} rules={rules} universe={universe}"
            assert members == expected, context
            assert count == len(expected), context
            assert matching == expected & set(candidates), context
        await _check_incremental(conn, holder, evaluator, cases, candidates, stale=set(ours[::2]))
        # Stale members for the rebuild: some of ours, a contact since deleted and one of
        # another account; never empty, so the rebuild takes the difference path.
        stale = set(ours[1::3]) | {uuid.uuid4()} | set(theirs[:1])
        await _check_builds(conn, evaluator, cases, stale=stale)
    finally:
        await transaction.rollback()


async def _check_incremental(
    conn: asyncpg.Connection,
    holder: asyncpg.Connection,
    evaluator: Evaluator,
    cases: list[tuple[str, Any, list[uuid.UUID]]],
    candidates: list[uuid.UUID],
    stale: set[uuid.UUID],
) -> None:
    """worker.changes, all cases as live segments at once: starting from a stale membership,
    the candidates end up exactly where the rules put them; nobody else moves. The first
    segment is held by a "build" (its lock, from another session): it is left as it was,
    and apply_pending brings it right once the lock is free."""
    segments = []
    for dialect, rules, universe in cases:
        segment_id = await conn.fetchval(
            """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids, status,
                   total_count, built_generation)
               VALUES ($1, 'property', $2, $3, $4, 'DONE', $5, 1) RETURNING id""",
            ACCOUNT, dialect, rules, universe, len(stale),
        )  # fmt: skip
        await conn.executemany(
            "INSERT INTO segment_members (segment_id, contact_id, account_id) VALUES ($1, $2, $3)",
            [(segment_id, contact_id, ACCOUNT) for contact_id in stale],
        )
        segments.append((segment_id, evaluator.members(dialect, rules, universe)))
    held = segment_lock_key(segments[0][0])
    await holder.execute("SELECT pg_advisory_lock($1)", held)
    try:
        result = await apply_changes(
            conn, ACCOUNT, candidates, statement_timeout_ms=60_000, now=NOW
        )
        assert result.deferred == 1
        assert result.segments == (len(cases) - 1 if candidates else 0)
        rows = await conn.fetch(
            "SELECT contact_id FROM segment_members WHERE segment_id = $1", segments[0][0]
        )
        assert {r[0] for r in rows} == stale
    finally:
        await holder.execute("SELECT pg_advisory_unlock($1)", held)
    pending = await apply_pending(conn, statement_timeout_ms=60_000, now=NOW)
    assert pending.segments == (1 if candidates else 0)
    assert await conn.fetchval("SELECT count(*) FROM segment_pending_changes") == 0
    for segment_id, expected in segments:
        rows = await conn.fetch(
            "SELECT contact_id FROM segment_members WHERE segment_id = $1", segment_id
        )
        members = {r[0] for r in rows}
        assert members == (stale - set(candidates)) | (expected & set(candidates))
        total = await conn.fetchval("SELECT total_count FROM segments WHERE id = $1", segment_id)
        assert total == len(members)


async def _check_builds(
    conn: asyncpg.Connection,
    evaluator: Evaluator,
    cases: list[tuple[str, Any, list[uuid.UUID]]],
    stale: set[uuid.UUID],
) -> None:
    """worker.builds: a first build inserts exactly the rules' members; a rebuild from a
    stale membership writes exactly the difference; a rebuild of members already right is
    left at its check, and only then. Members and counts every time."""
    sent: list[str] = []  # the statements of one build

    def log_statement(logged: asyncpg.connection.LoggedQuery) -> None:
        sent.append(logged.query)

    for dialect, rules, universe in cases:
        expected = evaluator.members(dialect, rules, universe)
        context = f"{dialect} rules={rules} universe={universe}"
        segment_id = await conn.fetchval(
            """INSERT INTO segments (account_id, name, dialect, rules, contact_list_ids)
               VALUES ($1, 'property', $2, $3, $4) RETURNING id""",
            ACCOUNT, dialect, rules, universe,
        )  # fmt: skip
        message = SegmentMessage(
            schema_version=1, account_id=ACCOUNT, segment_id=segment_id, generation=1
        )
        outsider = uuid.uuid4()  # a contact since deleted
        # (trigger, members before, check_from): the check is taken by a rebuild of a
        # segment whose last total_count (len(expected) after the first build) is at least
        # check_from; refreshes never take it, nor segments below the worker's default.
        steps: tuple[tuple[str, set[uuid.UUID], int], ...] = (
            ("created", set(), 0),
            ("rebuild", stale, 0),
            ("rebuild", expected, 0),
            ("refresh", expected, 0),
            ("rebuild", expected, len(expected)),
            ("rebuild", expected, len(expected) + 1),
            ("rebuild", expected, CHECK_FROM_MEMBERS),
            # As many members as matches, one of them wrong; then one member too many.
            ("rebuild", set(sorted(expected)[1:]) | {outsider}, 0),
            ("rebuild", expected | {outsider}, 0),
        )
        for trigger, before, check_from in steps:
            await conn.execute("DELETE FROM segment_members WHERE segment_id = $1", segment_id)
            await conn.executemany(
                """INSERT INTO segment_members (segment_id, contact_id, account_id)
                   VALUES ($1, $2, $3)""",
                [(segment_id, contact_id, ACCOUNT) for contact_id in before],
            )
            counted = await conn.fetchval(
                "SELECT total_count FROM segments WHERE id = $1", segment_id
            )
            sent.clear()
            with conn.query_logger(log_statement):
                result = await build_segment(
                    conn,
                    message,
                    trigger,
                    statement_timeout_ms=60_000,
                    now=NOW,
                    check_from=check_from,
                )
            assert result.outcome == "done", context
            compared_in_full = any("CREATE TEMP TABLE build_diff" in sql for sql in sent)
            # A segment without members is built as a first build, whatever the trigger.
            checked = bool(before) and trigger == "rebuild" and (counted or 0) >= check_from
            assert compared_in_full == (not checked or before != expected), context
            if checked:
                found = "unchanged" if before == expected else "changed"
                assert result.checked == found, context
            else:
                assert result.checked is None, context
            # The build's planner setting does not outlive its statement.
            assert await conn.fetchval("SHOW enable_nestloop") == "on"
            assert (result.total_count, result.added, result.removed) == (
                len(expected),
                len(expected - before),
                len(before - expected),
            ), f"{trigger}: {context}"
            rows = await conn.fetch(
                "SELECT contact_id FROM segment_members WHERE segment_id = $1", segment_id
            )
            assert {r[0] for r in rows} == expected, f"{trigger}: {context}"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=data_sets(),
    cases=st.lists(st.tuples(rules_in_any_dialect, universes), min_size=1, max_size=3),
    pick=st.lists(st.booleans(), min_size=8, max_size=8),
    memberships=segment_memberships,
)
def test_compiled_sql_matches_reference_evaluator(
    db: Database, data: Data, cases: list[Any], pick: list[bool], memberships: list[set[int]]
) -> None:
    flat = [(dialect, rules, universe) for (dialect, rules), universe in cases]
    db.run(_check(db.conn, db.holder, data, flat, pick, memberships))
