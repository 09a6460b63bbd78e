"""Time in a segment's timezone (docs/rules.md): the compiled SQL agrees with the reference
evaluator (tests/reference.py, which reads local days with zoneinfo and shares no code with
the compiler) for calendar periods, anniversaries and calendar activity windows, with `now`
drawn near DST changes, period ends, year ends and 29 February in zones with odd offsets;
and a build reads the segment's timezone from its row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.calendar_strategies import calendar_data, calendar_rules, zones_and_nows
from tests.property_support import EXAMPLES, REGISTRY, Database, load_generated, sql_answers
from tests.reference import Data, Evaluator
from tests.strategies import ACCOUNT
from worker.builds import build_segment
from worker.compiler import SegmentQuery
from worker.messages import SegmentMessage
from worker.rules import parse_rules


async def _check(
    db: Database, data: Data, zone: str, now: datetime, rules_list: list[dict[str, Any]]
) -> None:
    conn = db.conn
    transaction = conn.transaction()
    await transaction.start()
    try:
        await load_generated(conn, data)
        evaluator = Evaluator(data, ACCOUNT, now, timezone=zone)
        candidates = [c.id for c in data.contacts]
        for rules in rules_list:
            tree = parse_rules("v2", rules, REGISTRY)
            query = SegmentQuery(ACCOUNT, tree, (), now, zone)
            expected = evaluator.members("v2", rules, ())
            count, members, matching = await sql_answers(conn, query, candidates)
            context = f"zone={zone} now={now.isoformat()} rules={rules}"
            assert members == expected, context
            assert count == len(expected), context
            assert matching == expected, context
            segment_id = await conn.fetchval(
                """INSERT INTO segments (account_id, name, dialect, rules, timezone)
                   VALUES ($1, 'calendar', 'v2', $2, $3) RETURNING id""",
                ACCOUNT, rules, zone,
            )  # fmt: skip
            message = SegmentMessage(
                schema_version=1, account_id=ACCOUNT, segment_id=segment_id, generation=1
            )
            result = await build_segment(
                conn, message, "created", statement_timeout_ms=60_000, now=now
            )
            assert result.total_count == len(expected), context
    finally:
        await transaction.rollback()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_calendar_rules_match_reference_evaluator(db: Database, data: st.DataObject) -> None:
    zone, now = data.draw(zones_and_nows(), "zone and now")
    dataset = data.draw(calendar_data(zone, now), "data")
    rules_list = data.draw(st.lists(calendar_rules(), min_size=1, max_size=3), "rules")
    db.run(_check(db, dataset, zone, now, rules_list))
