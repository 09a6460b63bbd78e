"""Logs stay structured when the broker connection is lost: a worker's every line is one JSON
object, and a lost connection is one `amqp.connection_lost` warning (with its cause) and one
`amqp.reconnected` info, not a stream of library lines (worker/amqp.py, worker/logs.py).

The connection runs through a TCP proxy the test cuts; the shared broker is never touched.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.tcp_proxy import TcpProxy, through
from tests.waiting import wait_for


def _lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the log, each of which must be one JSON object."""
    lines = []
    for number, text in enumerate(path.read_text().splitlines(), 1):
        try:
            entry = json.loads(text)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {text!r}") from None
        assert isinstance(entry, dict), text
        lines.append(entry)
    return lines


def _events(path: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in _lines(path) if e.get("event") == name]


async def test_a_cut_broker_connection_is_one_warning_and_one_info_all_json(
    database_url: str, amqp_url: str, tmp_path: Path
) -> None:
    broker = urlsplit(amqp_url)
    proxy = TcpProxy(broker.hostname or "127.0.0.1", broker.port or 5672)
    port = await proxy.start()
    proxied = through(amqp_url, port)
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "SEGMENTS_DATABASE_URL": database_url,
        "SEGMENTS_AMQP_URL": proxied,
        "SEGMENTS_WORKER_METRICS_PORT": "0",
        "SEGMENTS_OUTBOX_RELAY_ENABLED": "false",
        "SEGMENTS_LOG_FORMAT": "json",
        "SEGMENTS_AMQP_RECONNECT_INTERVAL_S": "0.5",
    }
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "segments.cli", "worker", env=env, stdout=out, stderr=out
        )
    try:

        async def logged(name: str) -> bool:
            return bool(_events(log, name))

        await wait_for(lambda: logged("worker.started"), timeout=60)
        await proxy.stop()  # every connection reset, new ones refused
        await wait_for(lambda: logged("amqp.connection_lost"), timeout=30)
        await wait_for(lambda: _retried(log), timeout=30)
        await proxy.start()
        await wait_for(lambda: logged("amqp.reconnected"), timeout=30)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 60)
        await proxy.stop()
    [lost] = _events(log, "amqp.connection_lost")
    assert lost["level"] == "warning" and "ConnectionError" in lost["cause"], lost
    [back] = _events(log, "amqp.reconnected")
    assert back["level"] == "info" and back["down_s"] >= 0, back
    library = [
        e for e in _lines(log) if str(e.get("logger", "")).startswith(("aio_pika", "aiormq"))
    ]
    assert library == [], library


async def _retried(log: Path) -> bool:
    """Time has passed with the broker away (reconnection attempts failed meanwhile)."""
    [lost] = _events(log, "amqp.connection_lost")
    at = datetime.fromisoformat(lost["timestamp"].replace("Z", "+00:00")).timestamp()
    return time.time() - at > 1.5
