"""Startup failures a user can fix end with one log line that says what to do, and nothing
else: no traceback, no line that is not JSON (SEGMENTS_LOG_FORMAT=json)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from segments import hints


def _segments(*args: str, **env: str) -> tuple[int, list[dict[str, Any]]]:
    """Run `segments ARGS`; its exit code and its log lines (each must be JSON)."""
    script = Path(sys.executable).parent / "segments"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "segments.cli"]
    result = subprocess.run(
        [*command, *args],
        env={**os.environ, "SEGMENTS_LOG_FORMAT": "json", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "Future exception" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    return result.returncode, [json.loads(line) for line in lines]


def _failure(events: list[dict[str, Any]]) -> dict[str, Any]:
    (failed,) = [e for e in events if e["event"] in {"process.failed", "cli.connection_failed"}]
    return failed


def _with_vhost(amqp_url: str, vhost: str) -> str:
    parts = urlsplit(amqp_url)
    return urlunsplit(parts._replace(path=f"/{vhost}"))


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


def test_worker_with_the_broker_down(database_url: str) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/"
    code, events = _segments("worker", SEGMENTS_DATABASE_URL=database_url, SEGMENTS_AMQP_URL=url)
    assert code == 1
    assert _failure(events)["hint"] == hints.BROKER_DOWN


def test_worker_with_an_unknown_vhost(database_url: str, amqp_url: str) -> None:
    code, events = _segments(
        "worker",
        SEGMENTS_DATABASE_URL=database_url,
        SEGMENTS_AMQP_URL=_with_vhost(amqp_url, "no-such-vhost"),
    )
    assert code == 1
    assert _failure(events)["hint"] == hints.BROKER_VHOST


def test_worker_with_a_wrong_password(database_url: str, amqp_url: str) -> None:
    parts = urlsplit(amqp_url)
    wrong = urlunsplit(parts._replace(netloc=f"guest:wrong@{parts.hostname}:{parts.port}"))
    code, events = _segments("worker", SEGMENTS_DATABASE_URL=database_url, SEGMENTS_AMQP_URL=wrong)
    assert code == 1
    assert _failure(events)["hint"] == hints.BROKER_LOGIN


def test_api_on_a_port_in_use(database_url: str, amqp_url: str, busy_port: int) -> None:
    code, events = _segments(
        "api",
        SEGMENTS_DATABASE_URL=database_url,
        SEGMENTS_AMQP_URL=amqp_url,
        SEGMENTS_API_PORT=str(busy_port),
    )
    assert code == 1
    error = _failure(events)["error"]
    assert f"cannot listen on 127.0.0.1:{busy_port}" in error
    assert "SEGMENTS_API_PORT" in error
    # It stopped before starting anything: no relay, no broker connection to tear down.
    assert not any(e["event"].startswith("outbox.") for e in events)


def test_worker_metrics_on_a_port_in_use(database_url: str, amqp_url: str, busy_port: int) -> None:
    code, events = _segments(
        "worker",
        SEGMENTS_DATABASE_URL=database_url,
        SEGMENTS_AMQP_URL=amqp_url,
        SEGMENTS_WORKER_METRICS_PORT=str(busy_port),
    )
    assert code == 1
    assert _failure(events)["hint"] == hints.METRICS_PORT


def test_database_down() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/segments"
    code, events = _segments("migrate", SEGMENTS_DATABASE_URL=url)
    assert code == 2
    assert _failure(events)["hint"] == hints.DATABASE


def test_database_refusing_the_user(database_url: str) -> None:
    parts = urlsplit(database_url)
    url = urlunsplit(parts._replace(netloc=f"no_such_role@{parts.hostname}:{parts.port}"))
    code, events = _segments("migrate", SEGMENTS_DATABASE_URL=url)
    assert code == 2
    assert _failure(events)["hint"] == hints.DATABASE_LOGIN
