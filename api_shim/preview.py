"""`POST /api/v2/segments/preview/`: what a rule would match before it is saved (README:
HTTP API, Preview; docs/preview.md). The body is validated as a create body is; the counting
is worker.preview's."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Depends
from pydantic import BaseModel, Field

from api_shim.auth import READ, Principal, require
from api_shim.context import AppContext, app_context
from api_shim.errors import ERROR_RESPONSES, ApiError
from api_shim.models import SegmentRules
from api_shim.routing import SlashOptionalRouter
from api_shim.validation import check_segment_rules
from worker.compiler import SegmentQuery
from worker.estimate import CONFIDENCE, SAMPLE_LIMIT, SAMPLE_SIZE
from worker.preview import (
    GRACE_MS,
    TOO_SLOW,
    Preview,
    PreviewTooSlow,
    latest_answer,
    preview,
)
from worker.rules import RuleTree

router = SlashOptionalRouter(
    prefix="/api/v2/segments", tags=["v2 segments"], responses={**ERROR_RESPONSES}
)


class SegmentPreview(SegmentRules):
    """The rules to try: `contact_list_ids`, `rules_json` and `timezone`, exactly as a
    create body has them (and checked the same way)."""


class SampleContact(BaseModel):
    id: UUID
    email: str


class Estimate(BaseModel):
    value: int | None = Field(
        description="The estimated count; null only when not one sampled contact could be "
        "tested in time (then low..high is the whole account)."
    )
    low: int = Field(description="Lower bound of the interval (included).")
    high: int = Field(description="Upper bound of the interval (included).")
    confidence: float = Field(description=f"Always {CONFIDENCE}: a {CONFIDENCE:.0%} interval.")


class ExactPreview(BaseModel):
    exact: Literal[True]
    total_count: int = Field(description="The contacts the rules match now.")
    sample: list[SampleContact] = Field(
        description=f"The first {SAMPLE_LIMIT} of them by id (fewer if fewer match)."
    )
    took_ms: int = Field(description="Milliseconds the preview took.")


class EstimatedPreview(BaseModel):
    exact: Literal[False]
    total_count: None = Field(description="Null: the exact count did not finish in time.")
    estimate: Estimate
    sample: list[SampleContact] = Field(
        description=f"Up to {SAMPLE_LIMIT} matching contacts of the random sample, by id."
    )
    took_ms: int = Field(description="Milliseconds the preview took.")


_EXAMPLE_ID = "0b5c8f8e-3a43-4c9e-9a57-2f0c1d7e6a10"
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The exact count, or past the timeout an estimate",
        "content": {
            "application/json": {
                "examples": {
                    "exact": {
                        "summary": "Counted within the timeout",
                        "value": {
                            "exact": True,
                            "total_count": 1284,
                            "sample": [{"id": _EXAMPLE_ID, "email": "ada@example.com"}],
                            "took_ms": 37,
                        },
                    },
                    "estimate": {
                        "summary": "Estimated: the count did not finish in time",
                        "value": {
                            "exact": False,
                            "total_count": None,
                            "estimate": {
                                "value": 128889,
                                "low": 115687,
                                "high": 143353,
                                "confidence": CONFIDENCE,
                            },
                            "sample": [{"id": _EXAMPLE_ID, "email": "ada@example.com"}],
                            "took_ms": 3143,
                        },
                    },
                }
            }
        },
    },
    503: ERROR_RESPONSES[503]
    | {"description": "Neither the count nor the sample finished in time; retry later"},
}

_DESCRIPTION = f"""Counts the contacts that `rules_json` would match in the universe of
`contact_list_ids` now, without saving anything (it only reads). The body is a create body's
`contact_list_ids`, `rules_json` and optional `timezone`, validated exactly as create
validates them: the same invalid body gets the same 400 with the same locations.

Within `SEGMENTS_PREVIEW_TIMEOUT_MS` (default 3000) the answer is exact, with the first
{SAMPLE_LIMIT} matching contacts by id. Past it, the answer is an estimate from a random
sample of up to {SAMPLE_SIZE} of the account's contacts, with a {CONFIDENCE:.0%} interval
(`exact: false`, `total_count: null`), at most {GRACE_MS} ms after the timeout.

Example body:

```json
{{"contact_list_ids": ["9d7c0d52-5f4e-4b8e-8f3e-1c2b3a4d5e6f"],
 "rules_json": {{"all": [
   {{"kind": "field", "field": "status", "operator": "equals", "value": "subscribed"}},
   {{"kind": "activity", "metric": "open", "operator": "ever",
    "days_window": {{"mode": "last", "days": 30}}}}]}}}}
```
"""


def arrival() -> float:
    """When the request arrived (resolved before the key is checked): the timeout counts
    from here, so that everything the request does is within it."""
    return time.monotonic()


@router.post(
    "/preview/",
    response_model=ExactPreview | EstimatedPreview,
    responses=_ANSWERS,
    summary="Preview: how many contacts these rules would match (nothing is saved)",
    description=_DESCRIPTION,
)
async def preview_segment(
    started: Annotated[float, Depends(arrival)],
    ctx: Annotated[AppContext, Depends(app_context)],
    who: Annotated[Principal, Depends(require(READ))],
    body: SegmentPreview,
) -> ExactPreview | EstimatedPreview:
    timeout_ms = ctx.settings.preview_timeout_ms
    try:
        # Bounded too: the answer never comes later than the preview's own deadline.
        async with asyncio.timeout_at(_loop_time(latest_answer(timeout_ms, started))):
            tree = await _checked(ctx, who, body)
    except TimeoutError:
        raise _too_slow(TOO_SLOW) from None
    universe = tuple(dict.fromkeys(body.contact_list_ids))
    query = SegmentQuery(who.account_id, tree, universe, datetime.now(UTC), body.timezone)
    try:
        found = await preview(ctx.pool, query, timeout_ms=timeout_ms, started=started)
    except PreviewTooSlow as exc:
        raise _too_slow(str(exc)) from None
    return answer(found)


async def _checked(ctx: AppContext, who: Principal, body: SegmentPreview) -> RuleTree:
    async with ctx.pool.acquire() as conn, conn.transaction(readonly=True):
        return await check_segment_rules(conn, who.account_id, body)


def _loop_time(monotonic: float) -> float:
    """A time.monotonic() value on the event loop's clock."""
    return asyncio.get_running_loop().time() + monotonic - time.monotonic()


def _too_slow(msg: str) -> ApiError:
    return ApiError.one(503, msg, "unavailable", headers={"Retry-After": "5"})


def answer(found: Preview) -> ExactPreview | EstimatedPreview:
    sample = [SampleContact(id=c.id, email=c.email) for c in found.sample]
    if found.exact:
        assert found.total_count is not None
        return ExactPreview(
            exact=True, total_count=found.total_count, sample=sample, took_ms=found.took_ms
        )
    assert found.estimate is not None
    interval = found.estimate
    return EstimatedPreview(
        exact=False,
        total_count=None,
        estimate=Estimate(
            value=interval.value,
            low=interval.low,
            high=interval.high,
            confidence=interval.confidence,
        ),
        sample=sample,
        took_ms=found.took_ms,
    )
