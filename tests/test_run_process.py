"""`segments run` as a real process: one /metrics for the whole process (nothing served twice
to a Prometheus that scrapes both ports), and one structured access line per request."""

from __future__ import annotations

import json
import socket
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api_fixtures import ApiProcess, api_process, make_tenant
from tests.waiting import wait_for


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _events(server: ApiProcess, name: str) -> list[dict[str, Any]]:
    lines = (line for line in server.log().splitlines() if line.startswith("{"))
    return [event for event in map(json.loads, lines) if event.get("event") == name]


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_run_serves_one_metrics_endpoint_and_logs_each_request(
    database_url: str, amqp_url: str, conn: asyncpg.Connection
) -> None:
    tenant = await make_tenant(conn)
    worker_port = _free_port()
    with api_process(
        database_url, amqp_url, "run", SEGMENTS_WORKER_METRICS_PORT=str(worker_port)
    ) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            await wait_for(lambda: _has_worker(server))
            listed = await http.get(
                "/api/v2/segments/?search=secret-in-query", headers=tenant.headers
            )
            assert listed.status_code == 200, listed.text
            scrape = (await http.get("/metrics")).text

            async def logged() -> list[dict[str, Any]]:
                return [
                    e for e in _events(server, "http.request") if e["path"] == "/api/v2/segments/"
                ]

            (line,) = await wait_for(logged)
        families = {family.name for family in text_string_to_metric_families(scrape)}
        # The API's and the worker's series, at the API's /metrics ...
        assert {"segments_http_request_duration_seconds", "segments_builds_in_progress"} <= (
            families
        )
        # ... and nowhere else: the worker opened no second endpoint serving the same series.
        assert not _answers(worker_port)
        assert _events(server, "worker.metrics") == []
        (starting,) = _events(server, "run.starting")
        assert starting["metrics"] == f"{server.url}/metrics"

        assert line["method"] == "GET" and line["status"] == 200
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        log = server.log()
        assert tenant.key not in log and "secret-in-query" not in log


async def _has_worker(server: ApiProcess) -> bool:
    return bool(_events(server, "worker.started"))
