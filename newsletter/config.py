"""One validated Settings object, from NEWSLETTER_* variables and an optional newsletter.toml."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "change-me-insecure-default-key"
DEFAULT_DATABASE_FILE = "newsletter.db"


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names it and the fix."""


class SourceQueries(BaseModel):
    """An external database to sync from: a SQLAlchemy URL and one SELECT per entity."""

    url: str
    subscribers: str | None = None
    items: str | None = None
    interactions: str | None = None


class Settings(BaseSettings):
    """Everything configurable, validated once and passed in (never read from globals)."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite file")
    secret_key: str = DEFAULT_SECRET_KEY
    base_url: str = "http://localhost:8000"
    smtp_url: str = "smtp://localhost:25"
    default_timezone: str = "UTC"
    sender: str = "Newsletter <newsletter@example.com>"
    postal_address: str = "Example Publishing, 1 Example Street, Example City"
    interaction_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "purchase": 5.0,
            "cart": 3.0,
            "like": 3.0,
            "click": 2.0,
            "read": 1.5,
            "rating": 1.0,
            "view": 1.0,
        }
    )
    half_life_days: float = 60.0
    # After a crash, a message caught mid-send is re-sent (at-least-once; receivers can drop
    # the copy by its stable Message-ID) or marked failed for an operator (at-most-once).
    delivery_on_unknown: Literal["resend", "fail"] = "resend"
    # Salt of the experiment arm hash: changing it reshuffles every subscriber's arm.
    experiment_salt: str = "newsletter-arms-v1"
    sources: dict[str, SourceQueries] = Field(default_factory=dict)
    # Where a run's shard tasks run: "in-process" (the default, no broker), "process" (a local
    # process pool, see --workers) or "celery" (workers started with `newsletter worker`).
    executor: Literal["in-process", "process", "celery"] = "in-process"
    # Celery: the broker (RabbitMQ amqp://... or Redis redis://...) and the result backend
    # (empty: the broker itself when it is Redis, else the database as db+URL). The process
    # that sends a run and its workers must agree on both.
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = ""
    celery_queue: str = "newsletter"  # the queue workers consume and runs send their shards to
    # Redis broker only: a task not acknowledged within this many seconds (its worker died)
    # is handed to another worker. Keep it above the time one shard takes.
    broker_visibility_timeout: float = Field(default=3600.0, gt=0)
    # Messages per second across every worker (a token bucket in Redis); 0 = no global limit.
    global_rate_limit: float = Field(default=0.0, ge=0)
    rate_limit_url: str = Field(default="", description="Redis for the global bucket")

    @field_validator("default_timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r} (e.g. 'Europe/Berlin')") from exc
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL to use: the configured one, else a SQLite file in the working dir."""
        if not self.database_url:
            return f"sqlite:///{Path.cwd() / DEFAULT_DATABASE_FILE}"
        return normalize_database_url(self.database_url)

    @property
    def resolved_result_backend(self) -> str:
        """The Celery result backend: the configured one, else Redis or the database."""
        if self.result_backend:
            return self.result_backend
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return "db+" + self.resolved_database_url

    @property
    def resolved_rate_limit_url(self) -> str:
        """The Redis holding the global rate limit: the configured one, else a Redis broker."""
        if self.rate_limit_url:
            return self.rate_limit_url
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return "redis://127.0.0.1:6379/0"

    @property
    def uses_default_secret(self) -> bool:
        return self.secret_key == DEFAULT_SECRET_KEY


def normalize_database_url(url: str) -> str:
    """Map plain postgres URLs onto the psycopg 3 driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read newsletter.toml (if present) under NEWSLETTER_* environment variables."""
    path = config_file or Path(os.environ.get("NEWSLETTER_CONFIG", "newsletter.toml"))
    file_values: dict[str, Any] = {}
    if path.exists():
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    elif config_file is not None:
        raise ConfigError(f"config file {path} does not exist")
    env_names = {k[len("NEWSLETTER_") :].lower() for k in os.environ if k.startswith("NEWSLETTER_")}
    merged = {k: v for k, v in file_values.items() if k not in env_names}
    merged.update(overrides)
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration ({path}): {problems}") from exc
