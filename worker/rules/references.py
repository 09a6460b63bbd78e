"""Which segments a segment may reference (docs/rules.md, "segment"): the same account's,
existing, not itself, no cycle, chains of references at most MAX_SEGMENT_CHAIN long. Pure: the
caller loads the account's reference graph (worker.references.load_graph) and the parser asks
about each id, so each problem is reported at the id's own location."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from uuid import UUID

from worker.rules.limits import MAX_SEGMENT_CHAIN


@dataclass(frozen=True)
class ReferenceProblem:
    msg: str
    type: str


@dataclass(frozen=True)
class SegmentGraph:
    """The account's segments and who references whom, seen from the segment being saved
    (`saving`; None when it is being created, so nothing references it yet)."""

    known: Collection[UUID]  # the account's segment ids (at least those the rules name)
    references: Mapping[UUID, Collection[UUID]]  # segment -> the segments it references
    saving: UUID | None = None
    _referrers: dict[UUID, set[UUID]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for segment_id, referenced in self.references.items():
            if segment_id == self.saving:
                continue  # its references are the ones being replaced
            for target in referenced:
                self._referrers.setdefault(target, set()).add(segment_id)

    def problem(self, referenced: UUID) -> ReferenceProblem | None:
        """What is wrong with the segment being saved referencing `referenced`, if anything."""
        if referenced == self.saving:
            return ReferenceProblem("a segment cannot reference itself", "segment_self")
        if referenced not in self.known:
            return ReferenceProblem(
                f"segment {referenced} is not a segment of this account", "unknown_segment"
            )
        if self.saving is not None and self._reaches(referenced, self.saving):
            return ReferenceProblem(
                f"segment {referenced} references this segment (directly or through others): "
                "segments may not reference each other in a cycle",
                "segment_cycle",
            )
        chain = self._height(self.saving) + 1 + self._depth(referenced)
        if chain > MAX_SEGMENT_CHAIN:
            return ReferenceProblem(
                f"would make a chain of {chain} segment references; at most "
                f"{MAX_SEGMENT_CHAIN} are allowed",
                "segment_chain_too_long",
            )
        return None

    def _outgoing(self, segment_id: UUID) -> Collection[UUID]:
        if segment_id == self.saving:
            return ()
        return self.references.get(segment_id, ())

    def _reaches(self, start: UUID, goal: UUID) -> bool:
        seen: set[UUID] = set()
        todo = [start]
        while todo:
            current = todo.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                todo.extend(self.references.get(current, ()))
        return False

    def _depth(self, segment_id: UUID) -> int:
        """References in the longest chain down from the segment (0: it references none)."""
        return _longest(segment_id, self._outgoing)

    def _height(self, segment_id: UUID | None) -> int:
        """References in the longest chain of segments up to it (0: none references it)."""
        if segment_id is None:
            return 0
        return _longest(segment_id, lambda s: self._referrers.get(s, ()))


def _longest(start: UUID, next_of: Callable[[UUID], Collection[UUID]]) -> int:
    """The longest path from `start` along `next_of`. The stored graph has no cycle; paths
    are cut off past the limit anyway, so a damaged one cannot loop forever."""

    @cache
    def longest(node: UUID, depth: int) -> int:
        if depth > MAX_SEGMENT_CHAIN:
            return 0
        return max((1 + longest(n, depth + 1) for n in next_of(node)), default=0)

    return longest(start, 0)
