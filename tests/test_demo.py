"""`segments demo` end to end on the test database and vhost, small: the API and a worker
start in-process, every segment is built, every count equals its compiled SQL, the contact
changes move counts, and everything stops cleanly (also on Ctrl-C)."""

from __future__ import annotations

import asyncio
import io
import socket
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import pytest

from api_shim.server import serve
from segments.cli import _parser
from segments.demo.command import DemoOptions, Interrupted, run_demo
from segments.demo.data import LoadProgress
from segments.demo.display import Display
from tests.statement_capture import TESTS_APPLICATION
from worker.compiler import compile_count
from worker.db import connect
from worker.settings import Settings
from worker.store import load_registry, load_segment_rules


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(database_url: str, amqp_url: str) -> Settings:
    # The API's default rate limit (60/min) on purpose: the demo must pace itself within it.
    return Settings(
        database_url=database_url,
        amqp_url=amqp_url,
        worker_metrics_port=0,
        outbox_poll_interval_s=0.5,
        api_pool_max_size=4,
    )


def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


async def _compiled_count(conn: asyncpg.Connection, segment_id: UUID | None) -> int:
    assert segment_id is not None
    rules = await load_segment_rules(conn, segment_id)
    assert rules is not None
    registry = await load_registry(conn, rules.account_id)
    compiled = compile_count(rules.query(registry, datetime.now(UTC)))
    count: int = await conn.fetchval(compiled.sql, *compiled.params)
    return count


async def test_demo_end_to_end(database_url: str, amqp_url: str) -> None:
    port = _free_port()
    out = io.StringIO()
    result = await asyncio.wait_for(
        run_demo(
            _settings(database_url, amqp_url),
            DemoOptions(contacts=2000, events_per_contact=10, api_url=f"http://127.0.0.1:{port}"),
            asyncio.Event(),
            serve,
            Display(out, live=False),
        ),
        timeout=90,
    )
    text = out.getvalue()

    assert result.in_process and _port_closed(port)  # started, then stopped
    assert result.data.contacts == 2000 and result.data.events == 20_000
    dialects = {s.dialect for s in result.segments}
    assert dialects == {"v2", "simple"} and len(result.segments) == 6
    assert all(s.status == "DONE" for s in result.segments), [
        (s.spec.name, s.statuses) for s in result.segments
    ]
    assert result.settled and result.ok

    conn = await connect(database_url, application_name=TESTS_APPLICATION)  # JSON codecs
    try:
        for s in result.segments:
            expected = await _compiled_count(conn, s.id)
            stored = await conn.fetchval("SELECT total_count FROM segments WHERE id = $1", s.id)
            assert s.after == stored == expected, s.spec.name
            assert s.sql_count == s.before  # the first builds were right too
        accounts = await conn.fetchval(
            "SELECT count(DISTINCT account_id) FROM segments WHERE id = ANY($1::uuid[])",
            [s.id for s in result.segments],
        )
        assert accounts == 1
    finally:
        await conn.close()
    moved = [s for s in result.segments if s.before != s.after]
    assert moved, "the contact changes moved no count"

    # Every rule kind was used, through the v2 and simple APIs; v1 showed one of them.
    bodies = str([s.spec.body for s in result.segments])
    for kind in ("field", "activity", "membership", "deliverability", "isp"):
        assert f"'kind': '{kind}'" in bodies
    for fragment in ("matchType", "cachedCount", "contact.changed", result.data.api_key):
        assert fragment in text
    assert text.count("curl -s") == 5
    # The closing "try it" starts the service where its URLs point (not the default port).
    assert f"API=http://127.0.0.1:{port}" in text
    assert f"`SEGMENTS_API_PORT={port} segments run`" in text


async def test_demo_stops_cleanly_when_interrupted(database_url: str, amqp_url: str) -> None:
    """Ctrl-C during the load: the demo stops, the in-process API and worker with it, and the
    half-loaded account is rolled back."""
    port = _free_port()
    stop = asyncio.Event()

    class StopDuringLoad(Display):
        def progress(self, p: LoadProgress) -> None:
            if p.contacts_done > 0:
                stop.set()

    before = await _demo_accounts(database_url)
    with pytest.raises(Interrupted):
        await asyncio.wait_for(
            run_demo(
                _settings(database_url, amqp_url),
                DemoOptions(contacts=50_000, api_url=f"http://127.0.0.1:{port}"),
                stop,
                serve,
                StopDuringLoad(io.StringIO(), live=False),
            ),
            timeout=60,
        )
    assert _port_closed(port)
    assert await _demo_accounts(database_url) == before


async def _demo_accounts(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM accounts WHERE name LIKE 'demo %'")
        return count
    finally:
        await conn.close()


def test_demo_arguments() -> None:
    args = _parser().parse_args(["demo", "--contacts", "500", "--events-per-contact", "0"])
    assert (args.contacts, args.events_per_contact, args.api_url) == (500, 0, None)
    with pytest.raises(SystemExit):
        _parser().parse_args(["demo", "--contacts", "0"])
