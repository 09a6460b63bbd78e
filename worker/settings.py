"""Configuration: one typed object read from SEGMENTS_* environment variables, once, at start."""

from __future__ import annotations

import argparse
import sys

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEGMENTS_", extra="ignore")

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/segments",
        description="PostgreSQL DSN; `segments migrate` creates the database if it is missing.",
    )
    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/", description="RabbitMQ URL.")
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
    change_batch_window_ms: int = Field(
        100, ge=0, le=10_000, description="contact.changed messages coalesce for this long."
    )
    change_batch_max_contacts: int = Field(
        5000,
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
    refresh_interval_s: int = Field(
        300, ge=1, description="Clock-dependent segments are refreshed this often."
    )
    stuck_after_s: int = Field(
        600, ge=1, description="A PENDING/RUNNING segment no build holds is requeued after this."
    )
    shutdown_grace_s: float = Field(
        30, ge=0, description="On SIGTERM, in-flight work gets this long to finish."
    )
    worker_metrics_port: int = Field(
        9100,
        ge=0,
        le=65535,
        description="Port of `segments worker`'s /metrics (0: any free port); `segments run`"
        " serves all its metrics at the API's /metrics instead.",
    )
    worker_metrics_host: str = Field("127.0.0.1", description="Address /metrics listens on.")


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
