"""`segments demo`: load a demo data set, build segments through the API, change contacts,
watch the counts follow. See segments/demo/__init__.py for the story and README "Demo"."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import structlog

from segments.demo.client import ApiClient, DemoError, api_answers
from segments.demo.data import DemoData, load_demo_data
from segments.demo.display import Display
from segments.demo.scenario import Segment, run_scenario
from segments.demo.services import InProcessServices, ServeApi, api_settings
from worker.db import connect
from worker.logs import configure_logging
from worker.migrations import migrate
from worker.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DemoOptions:
    contacts: int = 100_000
    events_per_contact: int = 10
    api_url: str | None = None
    build_timeout_s: float = 600.0
    change_timeout_s: float = 60.0


@dataclass(frozen=True)
class DemoResult:
    data: DemoData
    api_url: str
    in_process: bool  # the demo ran the API and the worker itself (they are stopped now)
    segments: list[Segment]
    settled: bool  # every count reached what the compiled SQL says after the changes

    @property
    def ok(self) -> bool:
        return self.settled and all(s.status == "DONE" for s in self.segments)


class Interrupted(Exception):
    pass


async def run_command(
    settings: Settings, args: argparse.Namespace, stop: asyncio.Event, serve_api: ServeApi
) -> int:
    display = Display()
    if display.live and settings.log_level == "info":
        # The service's own info lines would tear through the live tables; warnings still show.
        configure_logging(settings.log_format, "warning")
    options = DemoOptions(args.contacts, args.events_per_contact, args.api_url)
    try:
        result = await run_demo(settings, options, stop, serve_api, display)
    except DemoError as exc:
        display.write(f"demo stopped: {exc}")
        return 2
    except Interrupted:
        display.write("demo interrupted; the API and worker it started are stopped")
        return 130
    return 0 if result.ok else 1


async def run_demo(
    settings: Settings,
    options: DemoOptions,
    stop: asyncio.Event,
    serve_api: ServeApi,
    display: Display,
) -> DemoResult:
    """The whole demo; Ctrl-C (`stop`) or a failing in-process part ends it cleanly."""
    api_url = (options.api_url or f"http://{settings.api_host}:{settings.api_port}").rstrip("/")
    services: InProcessServices | None = None
    try:
        await _guarded(migrate(settings.database_url), stop, None)
        if not await api_answers(api_url):
            services = InProcessServices(api_settings(settings, api_url), serve_api)
            await _guarded(services.start(api_url), stop, services)
            display.write(
                f"No API answered at {api_url}: the demo runs the API and a worker in this "
                "process until it ends."
            )
        else:
            display.write(
                f"Using the API at {api_url} (its worker and database must be this "
                "SEGMENTS_DATABASE_URL's)."
            )
        return await _guarded(_story(settings, options, api_url, display, services), stop, services)
    finally:
        if services is not None:
            await services.stop()


async def _story(
    settings: Settings,
    options: DemoOptions,
    api_url: str,
    display: Display,
    services: InProcessServices | None,
) -> DemoResult:
    events = options.contacts * options.events_per_contact
    conn = await connect(settings.database_url)
    try:
        display.heading(
            f"Loading {options.contacts:,} contacts and {events:,} events into a new account"
        )
        data = await load_demo_data(conn, options.contacts, events, display.progress)
        display.write(
            f"  {data.contacts:,} contacts, {data.members:,} list memberships in "
            f"{len(data.lists)} lists, {data.events:,} events, 5 custom fields in "
            f"{data.seconds:.1f}s (account {data.account_id})"
        )
        client = ApiClient(api_url, data.api_key)
        try:
            outcome = await run_scenario(
                client,
                conn,
                data,
                display,
                build_timeout_s=options.build_timeout_s,
                change_timeout_s=options.change_timeout_s,
            )
        finally:
            await client.aclose()
    finally:
        await conn.close()
    result = DemoResult(data, api_url, services is not None, outcome.segments, outcome.settled)
    display.heading("Try it")
    display.write(next_steps(result, settings))
    return result


async def _guarded(
    work: Coroutine[Any, Any, T], stop: asyncio.Event, services: InProcessServices | None
) -> T:
    """`work`, unless Ctrl-C (`stop`) or the end of an in-process part comes first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while True:
            await asyncio.wait({task, stopped}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            if stop.is_set():
                raise Interrupted
            if services is not None:
                services.raise_if_ended()
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def start_command(settings: Settings, api_url: str) -> str:
    """The command that serves the API at `api_url` again: `segments run` listens where the
    SEGMENTS_API_* settings say, which is not where --api-url pointed the demo's own API."""
    parts = urlsplit(api_url)
    env = []
    if parts.hostname and parts.hostname != settings.api_host:
        env.append(f"SEGMENTS_API_HOST={parts.hostname}")
    if (parts.port or 80) != settings.api_port:
        env.append(f"SEGMENTS_API_PORT={parts.port or 80}")
    return " ".join([*env, "segments run"])


def next_steps(result: DemoResult, settings: Settings) -> str:
    first = next((s for s in result.segments if s.id is not None), None)
    segment = str(first.id) if first is not None else "SEGMENT_ID"
    simple = (
        '{"name": "Pro plan in France", "rules": ['
        '{"field": "plan", "operator": "equals", "value": "pro"}, '
        '{"field": "country", "operator": "equals", "value": "FR"}]}'
    )
    lines = [
        f"  API key:  {result.data.api_key}   (account {result.data.account_id})",
        f"  base URL: {result.api_url}",
    ]
    if result.in_process:
        lines.append(
            "  The demo's API and worker have stopped: start the service with "
            f"`{start_command(settings, result.api_url)}` (same SEGMENTS_* settings otherwise)"
            " to try these."
        )
    lines += [
        "",
        f"  KEY={result.data.api_key}",
        f"  API={result.api_url}",
        "  # list segments (v2), largest first",
        '  curl -s "$API/api/v2/segments/?order_by=total_count" -H "X-API-Key: $KEY"',
        "  # one segment, then its contacts",
        f'  curl -s "$API/api/v2/segments/{segment}/" -H "X-API-Key: $KEY"',
        f'  curl -s "$API/api/v2/segments/{segment}/contacts/?page_size=5" -H "X-API-Key: $KEY"',
        "  # the read-only v1 API",
        '  curl -s "$API/api/v1/segments?limit=10" -H "Authorization: Bearer $KEY"',
        "  # create a segment with the simple API (answers with contacts_count when built)",
        '  curl -s -X POST "$API/api/segments" -H "X-API-Key: $KEY" '
        f"-H 'Content-Type: application/json' -d '{simple}'",
    ]
    return "\n".join(lines)
