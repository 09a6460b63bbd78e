"""Operator routes, no API key: /healthz (alive), /readyz (can serve), /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api_shim.context import AppContext, app_context
from api_shim.metrics import metrics_response
from worker.deadline import within

router = APIRouter(tags=["operations"])
# Each dependency answers within this or counts as unavailable: a hung database or broker
# (a partition) turns /readyz to 503 within two of these, not after the client's timeout.
_PROBE_TIMEOUT_S = 2.0


class Health(BaseModel):
    status: Literal["ok"]


class Outbox(BaseModel):
    backlog: int | None
    oldest_age_s: float | None


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: Literal["ok", "unavailable"]
    broker: Literal["ok", "unavailable", "not_used"]
    broker_error: str | None
    outbox: Outbox


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Database or broker unreachable"}},
    summary="The database and broker are reachable; outbox backlog",
)
async def readyz(ctx: Annotated[AppContext, Depends(app_context)]) -> JSONResponse:
    # Both probes at once: each has _PROBE_TIMEOUT_S, so the answer comes within about that.
    database_row, broker = await asyncio.gather(_database(ctx), _broker(ctx))
    database: Literal["ok", "unavailable"] = "unavailable" if database_row is None else "ok"
    outbox = Outbox(backlog=None, oldest_age_s=None)
    if database_row is not None:
        outbox = Outbox(backlog=database_row["backlog"], oldest_age_s=database_row["age"])
    ready = database == "ok" and broker != "unavailable"
    body = Readiness(
        status="ready" if ready else "unavailable",
        database=database,
        broker=broker,
        broker_error=ctx.relay.last_error if ctx.relay is not None and not ready else None,
        outbox=outbox,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


async def _database(ctx: AppContext) -> Mapping[str, Any] | None:
    """The outbox backlog, or None if the database does not answer in time."""
    try:
        row = await within(
            ctx.pool.fetchrow(
                """SELECT count(*) AS backlog,
                          extract(epoch FROM now() - min(created_at))::float8 AS age
                   FROM outbox WHERE sent_at IS NULL"""
            ),
            _PROBE_TIMEOUT_S,
        )
    except Exception:  # any failure to answer means "not ready"; the reason is not needed
        return None
    return None if row is None else dict(row)


async def _broker(ctx: AppContext) -> Literal["ok", "unavailable", "not_used"]:
    if ctx.relay is None:
        return "not_used"
    return "ok" if await ctx.relay.broker_answers(_PROBE_TIMEOUT_S) else "unavailable"


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
async def metrics() -> Response:
    return metrics_response()
