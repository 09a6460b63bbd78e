"""Every SQL statement the service sends during the test run, checked for Citus routing.

The service's connections all come from `worker.db` (`connect`, `create_pool`), whose
`_init_connection` runs on each new connection; wrapping it adds asyncpg's query logger to the
service's connections, not to the tests' own (named `TESTS_APPLICATION`) nor to migrations'.
At the end of the session every distinct statement goes through `tests.routing.unroutable`;
one that is not pinned to one account fails the run, unless `MULTI_SHARD` gives the reason it
may span accounts. Statements of `segments` subprocesses and server-side cursors are not seen
here; the compiler's forms are checked directly in tests/test_routing.py.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from pglast import ast, parse_sql

import worker.db
from tests.routing import unroutable
from worker.migrations import MIGRATE_APPLICATION

TESTS_APPLICATION = "segments-tests"
# Connections whose statements are not the service's requests: the tests' own, and migrations.
_UNCHECKED_APPLICATIONS = frozenset({TESTS_APPLICATION, MIGRATE_APPLICATION})

# Tables replicated to every node instead of distributed, although they have an account_id:
# an API key is looked up by its hash before its account is known.
REFERENCE_TABLES = frozenset({"api_keys"})

# Statements that span accounts on purpose (Citus runs them on every shard), each with why.
# Keyed by a fragment of the statement's text.
MULTI_SHARD: dict[str, str] = {
    "WHERE time_relative": "scheduler: clock-dependent segments due for a refresh, all accounts",
    "WHERE local_calendar": "scheduler: calendar segments past a local midnight, all accounts",
    "WHERE status IN ('PENDING', 'RUNNING')": "scheduler: builds nobody is running, all accounts",
    "SELECT EXISTS (SELECT 1 FROM segment_pending_changes)": "worker: is any change queued?",
    "min(queued_at)": "metrics: the age of the oldest queued change, all accounts",
    "FROM segments GROUP BY status": "metrics: segments per status, all accounts",
    "($2::uuid IS NULL OR account_id = $2::uuid)": "command line: a segment by id, any account",
    "SELECT DISTINCT account_id, segment_id": "scheduler: segments past retention, all accounts",
}
# Statements being pinned while the branches that rewrite them land; this list must be empty.
NOT_YET_PINNED: dict[str, str] = {
    "SELECT DISTINCT segment_id, account_id FROM segment_pending_changes": "changes.py sweep",
    "DELETE FROM segment_pending_changes WHERE segment_id = $1": "changes.py sweep",
    "matched (segment_id, contact_id) AS MATERIALIZED": "changes.py apply",
    "USING build_diff d": "builds.py write_difference",
    "WHERE id = $1 AND generation = $2": "builds.py status updates",
    "SELECT EXISTS (SELECT 1 FROM segment_members WHERE segment_id = $1)": "builds.py",
    "contact_list_ids, timezone FROM segments WHERE id = $1": "store.load_segment_rules",
}


def distribution(sql_dir: Path) -> dict[str, str]:
    """Each distributed table and its distribution column, read from the migrations: every
    table with an account_id column, and accounts by its id (co-located with them)."""
    tables: dict[str, str] = {"accounts": "id"}
    for path in sorted(sql_dir.glob("*.sql")):
        for raw in parse_sql(path.read_text()):
            statement = raw.stmt
            if isinstance(statement, ast.CreateStmt):
                elements = statement.tableElts or ()
                columns = {e.colname for e in elements if isinstance(e, ast.ColumnDef)}
                if "account_id" in columns:
                    tables[statement.relation.relname] = "account_id"
            elif isinstance(statement, ast.AlterTableStmt):
                for command in statement.cmds:
                    definition = getattr(command, "def_", None)
                    if isinstance(definition, ast.ColumnDef) and definition.colname == "account_id":
                        tables[statement.relation.relname] = "account_id"
    return {t: c for t, c in tables.items() if t not in REFERENCE_TABLES}


class StatementLog:
    def __init__(self) -> None:
        self.statements: set[str] = set()

    def record(self, query: asyncpg.connection.LoggedQuery) -> None:
        self.statements.add(query.query)

    def install(self) -> None:
        original: Callable[[asyncpg.Connection], Awaitable[None]] = worker.db._init_connection

        async def init_and_log(conn: asyncpg.Connection) -> None:
            await original(conn)
            if conn.get_settings().application_name not in _UNCHECKED_APPLICATIONS:
                conn.add_query_logger(self.record)

        worker.db._init_connection = init_and_log  # type: ignore[assignment]

    def violations(self, sql_dir: Path) -> dict[str, list[str]]:
        tables = distribution(sql_dir)
        found: dict[str, list[str]] = {}
        for statement in sorted(self.statements):
            text = re.sub(r"\s+", " ", statement).strip()
            if any(fragment in text for fragment in (*MULTI_SHARD, *NOT_YET_PINNED)):
                continue
            problems = unroutable(statement, tables)
            if problems:
                found[text] = problems
        return found
