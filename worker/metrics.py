"""Every Prometheus metric of the worker, in one place, named by Prometheus conventions."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# 10 ms .. 10 min: a small segment builds in milliseconds, a large one in minutes.
_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# Contact changes: lags of tens of milliseconds against a goal of 1 s, so both the lag and a
# batch's apply time are resolved finely from 10 ms to 10 s (a p99 of 0.18 s must not read as
# 0.25 s), around the goal for the lag (the alert's threshold), with a coarse tail for backlogs.
_UP_TO_1S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1)
_LAG_BUCKETS = (*_UP_TO_1S, 1.5, 2, 3, 5, 10, 30, 60, 300)
_APPLY_BUCKETS = (*_UP_TO_1S, 2.5, 5, 10, 30, 60, 120, 300)

BUILD_DURATION = Histogram(
    "segments_build_duration_seconds",
    "Time to build one segment: claim, query, materialise the difference, finish.",
    ["trigger", "outcome"],
    buckets=_DURATION_BUCKETS,
)
BUILD_STEP_DURATION = Histogram(
    "segments_build_step_duration_seconds",
    "Time of the two database steps of a finished build: `query` runs the rules and pairs the"
    " matches with the members, `write` writes the difference.",
    ["step"],
    buckets=_DURATION_BUCKETS,
)
REBUILD_CHECKS = Counter(
    "segments_rebuild_checks",
    "Rebuilds that first compared fingerprints of the matches and the members (segments of"
    " SEGMENTS_REBUILD_CHECK_FROM_MEMBERS members or more), by result: unchanged (the check"
    " settled the rebuild) or changed (the full comparison followed, so the check cost one"
    " more pass of the query).",
    ["result"],
)
for _result in ("unchanged", "changed"):  # both series from the start, at 0
    REBUILD_CHECKS.labels(_result)
BUILD_START_DELAY = Histogram(
    "segments_build_start_delay_seconds",
    "Time from a segment message's publication to the start of its build.",
    ["trigger"],
    buckets=_DURATION_BUCKETS,
)
BUILDS_IN_PROGRESS = Gauge(
    "segments_builds_in_progress", "Builds running in this worker process now."
)
SEGMENTS_BY_STATUS = Gauge(
    "segments_segments", "Segments by status (all accounts), refreshed periodically.", ["status"]
)
INCREMENTAL_BATCH_CONTACTS = Histogram(
    "segments_incremental_batch_contacts",
    "Distinct contacts re-evaluated per incremental update batch.",
    buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000),
)
INCREMENTAL_DURATION = Histogram(
    "segments_incremental_duration_seconds",
    "Time to apply one incremental update batch to all affected segments of an account.",
    buckets=_APPLY_BUCKETS,
)
CHANGE_BATCH_SEGMENTS = Histogram(
    "segments_change_batch_segments",
    "Live segments per change batch (per account) by decision: evaluated, or skipped because"
    " their rules read nothing the batch's change hints name.",
    ["decision"],
    buckets=(0, 1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
MEMBER_ANALYSES = Counter(
    "segments_member_statistics_analyses",
    "ANALYZE segment_members run by this worker before a change batch, because much of the"
    " table changed since its last analyse (first builds); a steady rate under an ordinary"
    " change workload means the trigger is wrong.",
)
INCREMENTAL_DEFERRED = Counter(
    "segments_incremental_deferred_segments",
    "Segment updates a change batch queued (segment_pending_changes) because a build held the"
    " segment; a sweep applies them once the build is done.",
)
PENDING_CHANGES_OLDEST = Gauge(
    "segments_pending_changes_oldest_age_seconds",
    "Age of the oldest contact change queued for a segment that was being built (0: none).",
)
CHANGE_LAG = Histogram(
    "segments_change_lag_seconds",
    "Time from a contact change (changed_at) to the membership update that reflects it.",
    buckets=_LAG_BUCKETS,
)
MESSAGES = Counter(
    "segments_messages",
    "Messages settled, by queue, outcome (acked, retried, dead_lettered) and reason.",
    ["queue", "outcome", "reason"],
)
SCHEDULER_LEADER = Gauge(
    "segments_scheduler_leader", "1 while this process holds the refresh scheduler's lock."
)
REFRESHES_PUBLISHED = Counter(
    "segments_refreshes_published", "segment.refresh messages published by the scheduler."
)
STUCK_BUILDS_REQUEUED = Counter(
    "segments_stuck_builds_requeued",
    "Segments found PENDING or RUNNING with no build holding them, published again.",
)
OUTBOX_BACKLOG = Gauge(
    "segments_outbox_backlog", "Outbox rows not yet confirmed by the broker (last relay pass)."
)
OUTBOX_OLDEST_AGE = Gauge(
    "segments_outbox_oldest_age_seconds", "Age of the oldest unsent outbox row (0 if none)."
)
OUTBOX_PUBLISHED = Counter(
    "segments_outbox_published", "Outbox rows published and confirmed, by routing key.", ["key"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "segments_outbox_publish_failures",
    "Relay failures to reach the broker or get a publish confirmed.",
)

# Freshness (worker/freshness.py, docs/freshness.md)
FRESHNESS_STALENESS = Gauge(
    "segments_freshness_staleness_seconds",
    "Per account: now minus the oldest `fresh_as_of` of its built segments, leaving out the"
    " clock of time-relative rules (+Inf while no time can be vouched for), computed every"
    " SEGMENTS_FRESHNESS_METRICS_INTERVAL_S.",
    ["account_id"],
)
FRESHNESS_WATERMARK_LAG = Gauge(
    "segments_freshness_watermark_lag_seconds",
    "Now minus the freshness watermark of all accounts (what every segment's `fresh_as_of` is"
    " capped by), computed every tick by each worker.",
)
FRESHNESS_LATE_CHANGES = Counter(
    "segments_freshness_late_changes_total",
    "contact.changed read after a tick newer than its changed_at: a producer published it"
    " later than SEGMENTS_FRESHNESS_PRODUCER_DELAY_MS allows, so `fresh_as_of` was early for it.",
)
# Membership changes (docs/changes.md).
MEMBERSHIP_OUTBOX_BACKLOG = Gauge(
    "segments_membership_outbox_backlog",
    "membership.changed outbox rows not yet confirmed by the broker (last relay pass).",
)
MEMBERSHIP_OUTBOX_OLDEST_AGE = Gauge(
    "segments_membership_outbox_oldest_age_seconds",
    "Age of the oldest unsent membership.changed outbox row (0 if none).",
)
CHANGE_LOG_ROWS = Gauge(
    "segments_change_log_rows",
    "Rows of the membership changes feed, all segments (each row: one transaction's changes of"
    " one segment, up to 1,000 contacts; planner estimate, refreshed by the scheduler's leader).",
)
CHANGE_LOG_BYTES = Gauge(
    "segments_change_log_bytes",
    "On-disk size of the membership changes feed with its indexes (scheduler's leader).",
)
CHANGE_LOG_PURGED = Counter(
    "segments_change_log_purged",
    "Feed rows and history points deleted by retention (SEGMENTS_CHANGES_RETENTION_DAYS).",
)
