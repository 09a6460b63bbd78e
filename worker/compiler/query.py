"""What the compiler takes and gives: one segment's query, and SQL text with its values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from worker.rules.tree import RuleTree


@dataclass(frozen=True)
class SegmentQuery:
    account_id: UUID
    rules: RuleTree
    # The universe: contacts on at least one of these lists; empty means all of the account's.
    list_ids: tuple[UUID, ...]
    now: datetime


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    params: tuple[Any, ...]
