"""Which live segments a change can move (change hints, README "Producers").

A segment's **reads** are what its compiled rules and its universe read, taken from the
canonical tree: contact fields and custom fields by name, event types (activity,
deliverability and the fields derived from events), lists (membership conditions, and the
universe whenever the segment has `contact_list_ids`), the ISP, the segments it references and
the clock. A `contact.changed` may say what changed (`changed`: fields, event types, whether
list memberships changed); a segment whose reads meet none of it cannot move for that change
and is not re-evaluated. A change without hints may have changed anything: every live segment.

What hints never carry, and why skipping is still right:
- referenced segments: their membership changes only through their own evaluation, whose
  moves are queued for the segments referencing them (worker.propagation);
- the clock: clock-dependent segments are refreshed on a schedule (worker.scheduler);
- a contact's existence: a created or deleted contact is signalled without hints (the shim
  does so), and no universe is defined by anything else than lists (docs/rules.md).

The reads of a segment depend only on its rules and lists, which change only with its
generation, so they are computed once per (segment, generation) and cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations, count
from uuid import UUID

import structlog

from worker.compiler.operators import DERIVED
from worker.db import Conn
from worker.hints import ALL_CUSTOM_FIELDS, ISP_FIELD, Hints
from worker.locks import segment_lock_key
from worker.lru import Lru
from worker.messages import EVENT_TYPES
from worker.parsed_rules import PARSED_RULES
from worker.rules import (
    ActivityCondition,
    FieldCondition,
    IspCondition,
    MembershipCondition,
    RulesInvalid,
    RuleTree,
    SegmentCondition,
)
from worker.rules.fields import FieldSource
from worker.store import SegmentRules, load_registry

log = structlog.get_logger(__name__)

# Fields whose change may change the ISP: a contact's ISP follows its address.
_ISP_FIELDS = frozenset({ISP_FIELD, "email"})


@dataclass(frozen=True)
class Reads:
    """What one segment's rules and universe read."""

    fields: frozenset[str]  # field names: columns, derived and custom
    custom: bool  # at least one custom field (contacts.attributes)
    events: frozenset[str]  # event types counted, directly or by a derived field
    lists: bool  # list memberships: a membership condition or a universe of lists
    isp: bool
    segments: frozenset[UUID]  # referenced segments (changes reach them by propagation)
    clock: bool  # membership drifts with time (refreshed on a schedule)
    any_field: bool = False  # every field, whatever its name (rules that could not be read)

    @classmethod
    def of(cls, tree: RuleTree, contact_list_ids: Sequence[UUID]) -> Reads:
        fields: set[str] = set()
        events: set[str] = set()
        custom = lists = isp = False
        for condition in tree.conditions():
            match condition:
                case FieldCondition(field=spec):
                    fields.add(spec.name)
                    custom |= spec.source is FieldSource.CUSTOM
                    if spec.source is FieldSource.DERIVED:
                        events.add(DERIVED[spec.name][0])
                case ActivityCondition(metric=metric):
                    events.add(metric)
                case MembershipCondition():
                    lists = True
                case IspCondition():
                    isp = True
                case SegmentCondition():
                    pass  # tree.segment_ids() below
        return cls(
            fields=frozenset(fields),
            custom=custom,
            events=frozenset(events),
            lists=lists or bool(contact_list_ids),
            isp=isp,
            segments=frozenset(tree.segment_ids()),
            clock=tree.depends_on_clock,
        )

    def affected_by(self, hints: Hints | None) -> bool:
        """Whether a change with these hints (None: anything) may move the segment."""
        if hints is None:
            return True
        return bool(
            (hints.lists and self.lists)
            or hints.events & self.events
            or hints.fields & self.fields
            or (self.isp and hints.fields & _ISP_FIELDS)
            or (self.custom and ALL_CUSTOM_FIELDS in hints.fields)
            or (self.any_field and hints.fields)
        )


# Rules that no longer parse (a custom field undeclared since): assume they read everything;
# the apply step leaves such a segment alone and its next build marks it FAILED.
EVERYTHING = Reads(
    fields=frozenset(),
    custom=True,
    events=frozenset(EVENT_TYPES),
    lists=True,
    isp=True,
    segments=frozenset(),
    clock=True,
    any_field=True,
)


@dataclass(frozen=True)
class Selection:
    """The live segments a batch re-evaluates (in lock order), and how many it skips."""

    segment_ids: list[UUID]
    skipped: int


@dataclass(frozen=True)
class Work:
    """Segments to re-evaluate for the same contacts (both sorted; the segments in
    PostgreSQL's order, `in_database_order`, which Plan.split relies on)."""

    segment_ids: list[UUID]
    contact_ids: list[UUID]


@dataclass(frozen=True)
class Plan:
    """What a batch re-evaluates: each segment for the contacts of just the messages whose
    hints concern it, segments with the same contacts together (one statement each), and
    groups sharing contacts merged where that costs less (`merged`)."""

    work: list[Work]
    skipped: int  # live segments no message concerns

    @property
    def evaluated(self) -> int:
        return sum(len(w.segment_ids) for w in self.work)

    @property
    def pairs(self) -> int:
        """Contact-segment pairs evaluated."""
        return sum(len(w.segment_ids) * len(w.contact_ids) for w in self.work)

    def split(self, parts: int) -> list[list[Work]]:
        """The work over `parts` connections: each segment in one part only (segments are
        locked per transaction), every part a share of every group. Each share is a run of
        consecutive ids in PostgreSQL's order of uuids: a part's lookup of a contact's
        current memberships then reads only the index entries within its run, its share of
        the contact's entries instead of all of them (worker.changes)."""
        out: list[list[Work]] = [[] for _ in range(max(1, parts))]
        for work in self.work:
            runs = split_evenly(work.segment_ids, parts)
            for part, segment_ids in zip(out, runs, strict=False):
                part.append(Work(segment_ids, work.contact_ids))
        return [part for part in out if part]


def in_database_order(ids: Iterable[UUID]) -> list[UUID]:
    """Ids as PostgreSQL orders uuids, which is Python's order too: by their bytes, most
    significant first."""
    return sorted(ids)


def split_evenly(segment_ids: Sequence[UUID], parts: int) -> list[list[UUID]]:
    """At most `parts` runs of consecutive ids, sizes within one of each other."""
    size, extra = divmod(len(segment_ids), max(1, parts))
    runs, start = [], 0
    for part in range(max(1, parts)):
        end = start + size + (1 if part < extra else 0)
        if end > start:
            runs.append(list(segment_ids[start:end]))
        start = end
    return runs


# What a statement spends on each of its contacts, in contact-segment pairs evaluated:
# reading the contact's row, lists, event times and current memberships costs as much as
# testing about 500 segments' rules on it (a change batch at 1,000 changed contacts/s with
# 1,000 live segments: about 250 µs a contact, 0.5 µs a pair; docs/benchmarks.md, "Fewer
# statements per batch").
CONTACT_COST_IN_PAIRS = 500


Group = tuple[set[UUID], set[UUID]]  # (segments, contacts)


def merged(groups: list[Group]) -> list[Work]:
    """Groups of (segments, contacts) as statements' work, two groups merged into one while
    that costs less: the merged statement evaluates some pairs no message concerns (harmless:
    re-evaluating a contact never moves it wrongly) but reads each shared contact once. Groups
    of different contacts are never merged. Runs once per batch: the saving of each pair of
    groups is computed once, and after a merge only against the merged group."""
    live = dict(enumerate(groups))
    fresh_ids = count(len(groups))
    savings = {(i, j): _saving(live[i], live[j]) for i, j in combinations(live, 2)}
    while savings:
        (i, j), best = max(savings.items(), key=lambda item: item[1])
        if best <= 0:
            break
        (segments_i, contacts_i), (segments_j, contacts_j) = live.pop(i), live.pop(j)
        savings = {pair: v for pair, v in savings.items() if i not in pair and j not in pair}
        new, union = next(fresh_ids), (segments_i | segments_j, contacts_i | contacts_j)
        savings.update({(k, new): _saving(other, union) for k, other in live.items()})
        live[new] = union
    return [Work(in_database_order(s), sorted(c)) for s, c in live.values()]


def _saving(a: Group, b: Group) -> int:
    """What merging two groups saves (0 without shared contacts: nothing to read once)."""
    shared = len(a[1] & b[1])
    if not shared:
        return 0
    # A segment is in one group only.
    together = _cost(len(a[0]) + len(b[0]), len(a[1]) + len(b[1]) - shared)
    return _cost(len(a[0]), len(a[1])) + _cost(len(b[0]), len(b[1])) - together


def _cost(segments: int, contacts: int) -> int:
    return contacts * (CONTACT_COST_IN_PAIRS + segments)


class SegmentReads:
    """The reads of segments by (id, generation), computed at first sight; bounded (least
    recently used dropped first), one per worker process."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._cache: Lru[tuple[UUID, int], Reads] = Lru(max_entries)

    def __len__(self) -> int:
        return len(self._cache)

    async def select(self, conn: Conn, account_id: UUID, hints: Hints | None) -> Selection:
        """The account's live segments (DONE or RUNNING, as worker.changes.live_segment_ids)
        that a change with `hints` may move."""
        live = await _live(conn, account_id)
        if hints is None:
            chosen = [segment_id for segment_id, _ in live]
        else:
            reads = await self.reads_of(conn, account_id, live)
            chosen = [key[0] for key in live if reads[key].affected_by(hints)]
        return Selection(sorted(chosen, key=segment_lock_key), len(live) - len(chosen))

    async def plan(
        self, conn: Conn, account_id: UUID, changes: Sequence[tuple[Hints | None, Sequence[UUID]]]
    ) -> Plan:
        """What to re-evaluate for a batch of changes, each (hints, contact ids): a segment
        for the contacts of the changes whose hints concern it, rather than for every contact
        of the batch as soon as one change does (a batch mixing list changes, which concern
        every segment with a universe, and field updates, which concern few, re-evaluated
        every segment for every contact)."""
        contacts_by_hints: dict[Hints | None, set[UUID]] = {}
        for hints, contact_ids in changes:
            contacts_by_hints.setdefault(hints, set()).update(contact_ids)
        live = await _live(conn, account_id)
        hinted = [hints for hints in contacts_by_hints if hints is not None]
        reads = await self.reads_of(conn, account_id, live) if hinted else {}
        # Segments grouped by which hints concern them: one set of contacts per group, not
        # per segment (a thousand segments each with a copy of thousands of ids took
        # hundreds of MiB).
        kinds = list(contacts_by_hints.items())
        concerned: dict[frozenset[int], list[UUID]] = {}
        for key in live:
            which = frozenset(
                i
                for i, (hints, _) in enumerate(kinds)
                if hints is None or reads[key].affected_by(hints)
            )
            if which:
                concerned.setdefault(which, []).append(key[0])
        work = merged(
            [
                (set(segment_ids), set().union(*(kinds[i][1] for i in which)))
                for which, segment_ids in concerned.items()
            ]
        )
        # Largest first: the parts start with the work that takes longest.
        work.sort(key=lambda w: -len(w.segment_ids) * len(w.contact_ids))
        return Plan(work, len(live) - sum(len(w.segment_ids) for w in work))

    async def reads_of(
        self, conn: Conn, account_id: UUID, keys: Sequence[tuple[UUID, int]]
    ) -> dict[tuple[UUID, int], Reads]:
        """Reads by (segment id, generation); the ones not cached are read and parsed."""
        missing = [key for key in keys if key not in self._cache]
        if missing:
            await self._load(conn, account_id, missing)
        # A generation that moved on between the two reads: assume everything (its segment
        # is not DONE for this generation anyway, and is rebuilt).
        found = {key: self._cache.get(key) for key in keys}
        return {key: EVERYTHING if reads is None else reads for key, reads in found.items()}

    async def _load(self, conn: Conn, account_id: UUID, keys: list[tuple[UUID, int]]) -> None:
        rows = await conn.fetch(
            """SELECT id, account_id, generation, dialect, rules, contact_list_ids, timezone
               FROM segments WHERE account_id = $1 AND id = ANY($2::uuid[])""",
            account_id,
            [segment_id for segment_id, _ in keys],
        )
        registry = await load_registry(conn, account_id)
        for row in rows:
            segment = SegmentRules.from_row(row)
            try:
                reads = Reads.of(PARSED_RULES.tree(segment, registry), segment.contact_list_ids)
            except RulesInvalid as exc:
                log.info("dependencies.rules_invalid", segment_id=str(row["id"]), error=str(exc))
                reads = EVERYTHING
            self._cache.put((segment.segment_id, segment.generation), reads)


async def _live(conn: Conn, account_id: UUID) -> list[tuple[UUID, int]]:
    """The account's live segments (DONE or RUNNING, as worker.changes.live_segment_ids), as
    (id, generation)."""
    rows = await conn.fetch(
        """SELECT id, generation FROM segments
           WHERE account_id = $1 AND status IN ('DONE', 'RUNNING')""",
        account_id,
    )
    return [(r["id"], r["generation"]) for r in rows]
