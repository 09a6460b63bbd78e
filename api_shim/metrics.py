"""Every Prometheus metric of the API, in one place, and the middleware that times requests.

The metrics live in prometheus_client's default registry beside the worker's
(worker/metrics.py), so /metrics serves every series of its process: under `segments run` the
worker's too (and the worker then opens no metrics port of its own, so nothing is scraped
twice).
"""

from __future__ import annotations

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import Scope

from api_shim.middleware import ObservedMiddleware

REQUEST_DURATION = Histogram(
    "segments_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RATE_LIMITED = Counter("segments_http_rate_limited", "Requests refused with 429.")
PREVIEWS = Counter(
    "segments_previews",
    "Previews answered, by answer: exact (counted within SEGMENTS_PREVIEW_TIMEOUT_MS), "
    "estimate (sampled past it) or too_slow (503: not even the sample drawn in time).",
    ["answer"],
)
# Label values must stay few: any other method a client invents is counted as "other".
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def route_label(scope: Scope) -> str:
    """The route template (`/api/v2/segments/{segment_id}`), never the raw path: bounded."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "unmatched"
    return path.rstrip("/") or "/"


class RequestMetrics(ObservedMiddleware):
    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        if status == 429:
            RATE_LIMITED.inc()
        method = scope["method"] if scope["method"] in _METHODS else "other"
        REQUEST_DURATION.labels(method, route_label(scope), str(status)).observe(seconds)


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
