"""Segments' parsed rules, kept per worker process.

A change batch re-evaluates up to every live segment of an account, and parsing the rules of
a thousand segments again for each statement took 10 to 66 ms of Python per statement
(docs/benchmarks.md, "Tests computed once per candidate"). Trees are immutable, so one serves
every statement. A tree depends only on the segment's rules and the account's field
declarations, and the rules of a segment change only with its generation: trees are kept by
both, and checked against the rules read, so a tree never stands for rules other than its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from worker.compiler import SegmentQuery
from worker.lru import Lru
from worker.rules import FieldRegistry, RuleTree
from worker.store import SegmentRules

_Key = tuple[UUID, int, str, tuple[tuple[str, str], ...]]


class ParsedRules:
    """Trees by (segment, generation, dialect, declarations); least recently used dropped
    first beyond `max_entries`. Rules that do not parse raise as ever and are not kept."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._trees: Lru[_Key, tuple[Any, RuleTree]] = Lru(max_entries)

    def __len__(self) -> int:
        return len(self._trees)

    def tree(self, segment: SegmentRules, registry: FieldRegistry) -> RuleTree:
        """As `segment.tree(registry)`, parsed once."""
        key = (segment.segment_id, segment.generation, segment.dialect, registry.declared)
        kept = self._trees.get(key)
        if kept is not None and kept[0] == segment.rules:
            return kept[1]
        tree = segment.tree(registry)
        self._trees.put(key, (segment.rules, tree))
        return tree

    def query(self, segment: SegmentRules, registry: FieldRegistry, now: datetime) -> SegmentQuery:
        """As `segment.query(registry, now)`, the rules parsed once."""
        return segment.query_of(self.tree(segment, registry), now)


# One per worker process: every change statement of every account reads it, and so does
# worker.dependencies for what segments read.
PARSED_RULES = ParsedRules()
