"""Every PostgreSQL advisory lock the service takes, in one place, so no two uses collide.

Service-wide locks use the two-int4 form (class, id); per-segment locks use the bigint form.
PostgreSQL keeps the two key spaces apart, so a segment's key can never equal a service lock.
"""

from __future__ import annotations

from uuid import UUID

SERVICE_LOCK_CLASS = 0x5E6  # "segments"
MIGRATIONS = 1  # `segments migrate`: one migrator at a time
SCHEDULER = 2  # the refresh scheduler's leader (held for as long as it leads)
OUTBOX_RELAY = 3  # one outbox relay claims rows at a time (keeps outbox order)
# Held shared by every transaction writing a contact.changed to the outbox, from the write to
# its commit: a freshness tick reads who holds it (worker.freshness).
OUTBOX_WRITERS = 4
MEMBER_STATISTICS = 17  # one worker analyses segment_members at a time


def segment_lock_key(segment_id: UUID) -> int:
    """The advisory lock of one segment's membership (builds and incremental updates)."""
    return int.from_bytes(segment_id.bytes[:8], "big", signed=True)


SEGMENT_REFERENCES_CLASS = 0x5E7  # per account: saves of segment references, one at a time


def account_references_key(account_id: UUID) -> tuple[int, int]:
    """The (class, id) of the lock under which an account's segment references are checked
    and saved, so two concurrent saves cannot together make a cycle (worker.references)."""
    return SEGMENT_REFERENCES_CLASS, int.from_bytes(account_id.bytes[:4], "big", signed=True)
