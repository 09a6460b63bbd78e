"""Operator routes, no API key: /healthz (alive), /readyz (can serve), /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api_shim.context import AppContext, app_context
from api_shim.metrics import metrics_response

router = APIRouter(tags=["operations"])
_DB_PROBE_TIMEOUT_S = 2.0


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
    outbox = Outbox(backlog=None, oldest_age_s=None)
    database: Literal["ok", "unavailable"] = "ok"
    try:
        row = await asyncio.wait_for(
            ctx.pool.fetchrow(
                """SELECT count(*) AS backlog,
                          extract(epoch FROM now() - min(created_at))::float8 AS age
                   FROM outbox WHERE sent_at IS NULL"""
            ),
            timeout=_DB_PROBE_TIMEOUT_S,
        )
        if row is not None:
            outbox = Outbox(backlog=row["backlog"], oldest_age_s=row["age"])
    except Exception:  # any failure to answer means "not ready"; the reason is not needed
        database = "unavailable"
    broker: Literal["ok", "unavailable", "not_used"] = "not_used"
    if ctx.relay is not None:
        broker = "ok" if ctx.relay.broker_connected else "unavailable"
    ready = database == "ok" and broker != "unavailable"
    body = Readiness(
        status="ready" if ready else "unavailable",
        database=database,
        broker=broker,
        broker_error=ctx.relay.last_error if ctx.relay is not None and not ready else None,
        outbox=outbox,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
async def metrics() -> Response:
    return metrics_response()
