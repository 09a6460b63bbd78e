"""Per-key rate limit: a token bucket per API key, in this process's memory.

Each key may burst up to `per_minute` requests and refills at `per_minute / 60` per second.
The buckets live in one process: with N API processes behind a balancer a key can make up to
N times the limit (README: HTTP API, Authentication and limits). Good enough to stop a runaway
client; a shared limit would need the database or a cache on every request.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

# Bounds memory: buckets of keys idle long enough to be full again are the ones dropped.
_MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # seconds until one request is allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = per_minute
        self._rate = per_minute / 60.0  # tokens per second
        self._clock = clock
        self._buckets: OrderedDict[UUID, _Bucket] = OrderedDict()

    def take(self, key_id: UUID) -> RateDecision:
        now = self._clock()
        bucket = self._buckets.pop(key_id, None) or _Bucket(float(self.limit), now)
        bucket.tokens = min(self.limit, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        self._buckets[key_id] = bucket  # most recently used last
        if len(self._buckets) > _MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return RateDecision(
            allowed=allowed,
            limit=self.limit,
            remaining=math.floor(bucket.tokens),
            reset_s=math.ceil((self.limit - bucket.tokens) / self._rate),
            retry_after_s=0 if allowed else max(1, math.ceil((1.0 - bucket.tokens) / self._rate)),
        )
