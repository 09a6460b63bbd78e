"""Configuration: one typed object read from SEGMENTS_* environment variables, once, at start."""

from __future__ import annotations

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

    # --- worker -----------------------------------------------------------------------------


def load_settings() -> Settings:
    return Settings()
