"""Configuration: one typed object read from SEGMENTS_* environment variables, once, at start."""

from __future__ import annotations

import argparse
import sys
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Rebuilds of segments of at least this many members (their last total_count) check first
# whether anything changed: where the check was measured to pay (worker.builds,
# CHECK_FROM_MEMBERS; docs/benchmarks.md, "A rebuild that finds nothing to do").
REBUILD_CHECK_FROM_MEMBERS = 100_000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEGMENTS_", extra="ignore")

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/segments",
        description="PostgreSQL DSN; `segments migrate` creates the database if it is missing.",
    )
    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        description=(
            "RabbitMQ URL, or the URLs of a cluster's nodes separated by commas: connections "
            "try them in turn and move to the next node when one is lost."
        ),
    )
    amqp_heartbeat_s: int = Field(
        5,
        ge=1,
        le=600,
        description="AMQP heartbeat: a broker silent for about three of these is taken as gone"
        " and the connection replaced (a hung broker or a partition, not only a closed socket).",
    )
    amqp_timeout_s: float = Field(
        10.0, gt=0, description="Upper bound on opening a broker connection (and reconnecting)."
    )
    amqp_reconnect_interval_s: float = Field(
        2.0, gt=0, description="Consumers retry a lost broker connection this often."
    )
    log_format: str = Field(
        "auto", description="'json', 'console', or 'auto' (console on a TTY, JSON otherwise)."
    )
    log_level: str = Field("info", description="debug, info, warning or error.")
    statement_timeout_ms: int = Field(
        300_000, ge=100, description="Upper bound on any single query a build runs."
    )

    # --- API (api_shim) ---------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="Address `segments api` listens on.")
    api_port: int = Field(8000, ge=0, le=65535, description="Port `segments api` listens on.")
    api_rate_limit_per_minute: int = Field(
        60, ge=1, description="Requests per minute per API key (token bucket, per process)."
    )
    api_max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Request bodies larger than this get 413 unread."
    )
    api_simple_wait_s: float = Field(
        3.0, ge=0, le=60, description="How long POST /api/segments waits for the first build."
    )
    api_pool_min_size: int = Field(
        1, ge=1, description="PostgreSQL connections the API keeps open at least."
    )
    api_pool_max_size: int = Field(
        10, ge=1, description="PostgreSQL connections the API opens at most."
    )
    api_statement_timeout_ms: int = Field(
        10_000, ge=100, description="Upper bound on any single query an API request runs."
    )
    api_access_log: bool = Field(
        True,
        description="Log one `http.request` line per request (method, path, status,"
        " duration_ms; never the query string or the key).",
    )
    preview_timeout_ms: int = Field(
        3000,
        ge=0,
        le=60_000,
        description="POST /api/v2/segments/preview/ counts exactly for this long; past it, it"
        " answers an estimate from a random sample instead, at most 200 ms later (0: always"
        " estimate).",
    )
    outbox_relay_enabled: bool = Field(
        True,
        description="Run the outbox relay (publishes outbox rows) here; safe in several.",
    )
    outbox_poll_interval_s: float = Field(
        2.0, gt=0, description="Relay polls the outbox this often when no NOTIFY arrives."
    )
    outbox_batch_size: int = Field(200, ge=1, le=10_000, description="Rows per relay claim.")
    outbox_publish_timeout_s: float = Field(
        10.0, gt=0, description="Wait this long for a broker confirm before reconnecting."
    )

    # --- worker -----------------------------------------------------------------------------
    build_concurrency: int = Field(
        2, ge=1, le=64, description="Builds of different segments run at once per worker."
    )
    rebuild_check_from_members: int = Field(
        REBUILD_CHECK_FROM_MEMBERS,
        ge=0,
        description="A segment.rebuild of a segment whose last total_count is at least this"
        " first compares fingerprints of its matches and members and stops there when they"
        " agree (0: every rebuild checks; see segments_rebuild_checks_total before changing"
        " it).",
    )
    change_batch_window_ms: int = Field(
        0,
        ge=0,
        le=10_000,
        description="Extra wait for more contact.changed before a batch starts (0: group commit"
        " alone: at once when idle, else when the batch being applied is done).",
    )
    # Smaller batches cost less per contact when many segments are live: with 1,000 segments
    # and a backlog, 429 contacts/s at 1,000 against 344/s at 5,000 (docs/benchmarks.md,
    # "Event times read once per candidate").
    change_batch_max_contacts: int = Field(
        1000,
        ge=1,
        description="Contacts per change batch: a batch this big is applied at once, and a"
        " backlog is applied in batches of this size.",
    )
    change_parallelism: int = Field(
        2,
        ge=1,
        le=16,
        description="A change batch's segments are split over this many database connections.",
    )
    change_prefetch: int = Field(
        500, ge=1, description="Unacknowledged contact.changed messages per worker."
    )
    change_plan_cache_mode: Literal["auto", "force_custom_plan", "force_generic_plan"] = Field(
        "auto",
        description=(
            "PostgreSQL plan_cache_mode of the change statement: auto reuses one plan per"
            " connection once it is estimated as good as planning each batch."
        ),
    )
    refresh_interval_s: int = Field(
        300, ge=1, description="Clock-dependent segments are refreshed this often."
    )
    stuck_after_s: int = Field(
        600, ge=1, description="A PENDING/RUNNING segment no build holds is requeued after this."
    )
    retry_delays_s: Annotated[tuple[int, ...], NoDecode] = Field(
        (5, 30, 120),
        min_length=1,
        description="Backoff before each retry of a message that failed on a temporary error,"
        " comma-separated seconds; the last repeats. One delay queue per value"
        " (`<queue>.retry.<N>s`): new values declare new queues.",
    )
    max_attempts: int = Field(
        5,
        ge=1,
        le=100,
        description="Attempts per message before it is dead-lettered (a build then ends FAILED).",
    )
    freshness_tick_s: float = Field(
        0.25,
        gt=0,
        le=60,
        description="Each worker publishes a freshness watermark tick through the contact-changes"
        " queue and reports what it holds this often: `fresh_as_of` trails by about this much.",
    )
    freshness_producer_delay_ms: int = Field(
        100,
        ge=0,
        description="How long after its `changed_at` a producer's contact.changed may reach the"
        " broker (publish delay and clock skew): a tick covers only changes older than this.",
    )
    freshness_worker_expiry_s: float = Field(
        60,
        ge=5,
        description="A worker that has not reported for this long is taken as gone (its"
        " deliveries went back to the queue); freshness waits for them to be read again. Keep"
        " it above the AMQP heartbeat (`heartbeat` in SEGMENTS_AMQP_URL, 15 s if absent).",
    )
    freshness_metrics_interval_s: float = Field(
        15, gt=0, description="How often a worker computes every account's staleness gauge."
    )
    shutdown_grace_s: float = Field(
        30, ge=0, description="On SIGTERM, in-flight work gets this long to finish."
    )
    record_membership_changes: bool = Field(
        True,
        description="Record every membership change: the changes feed, membership.changed"
        " messages, the count history. Off only to measure what recording costs (the feed then"
        " misses changes until a segment's next build).",
    )
    changes_retention_days: int = Field(
        7, ge=1, le=3650, description="Items of the changes feed are kept this many days."
    )
    worker_metrics_port: int = Field(
        9100,
        ge=0,
        le=65535,
        description="Port of `segments worker`'s /metrics (0: any free port); `segments run`"
        " serves all its metrics at the API's /metrics instead.",
    )
    worker_metrics_host: str = Field("127.0.0.1", description="Address /metrics listens on.")

    @field_validator("retry_delays_s", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # SEGMENTS_RETRY_DELAYS_S=5,30,120 (or [5,30,120]) from the environment.
        if isinstance(value, str):
            return [part.strip() for part in value.strip("[] ").split(",") if part.strip()]
        return value

    @field_validator("retry_delays_s")
    @classmethod
    def _whole_seconds_up_to_a_day(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= delay <= 86_400 for delay in value):
            raise ValueError("each retry delay must be between 1 and 86400 seconds")
        return value


def load_settings() -> Settings:
    return Settings()


# Read outside Settings (worker/migrations.py needs it before any settings): variable ->
# (default, meaning), as they appear in the table.
OTHER_VARIABLES = {
    "SEGMENTS_SQL_DIR": (
        "`sql/` of the source tree",
        "Directory of the numbered migrations `segments migrate` applies.",
    ),
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(value: object) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, tuple):
        return f"`{','.join(map(str, value))}`"
    return f"`{value}`"


def markdown_table() -> str:
    """The README's configuration table: every SEGMENTS_ variable, its default and meaning."""
    rows = {}
    for name, field in Settings.model_fields.items():
        if not field.description:
            raise ValueError(f"Settings.{name} needs a description: it goes into the README")
        rows[f"SEGMENTS_{name.upper()}"] = (_default(field.default), field.description)
    rows.update(OTHER_VARIABLES)
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for variable, (default, meaning) in rows.items():
        lines.append(f"| `{variable}` | {_cell(default)} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m worker.settings")
    parser.add_argument(
        "--markdown", action="store_true", help="print the README's configuration table"
    )
    if not parser.parse_args().markdown:
        parser.error("say what to print: --markdown")
    sys.stdout.write(markdown_table())
