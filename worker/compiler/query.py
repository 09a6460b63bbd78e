"""What the compiler takes and gives: one segment's query, and SQL text with its values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from worker.rules.tree import RuleTree


@dataclass(frozen=True)
class SegmentQuery:
    account_id: UUID
    rules: RuleTree
    # The universe: contacts on at least one of these lists; empty means all of the account's.
    list_ids: tuple[UUID, ...]
    now: datetime
    # The segment's IANA timezone: calendar periods and anniversaries are local to it
    # (docs/rules.md, timezones); rolling windows ignore it.
    timezone: str = "UTC"

    @property
    def local_now(self) -> datetime:
        """`now` in the segment's timezone: the planner reads local dates from it."""
        return self.now.astimezone(ZoneInfo(self.timezone))


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    params: tuple[Any, ...]
