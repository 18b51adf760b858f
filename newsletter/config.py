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


class WebhookSecrets(BaseModel):
    """How each ESP's webhook proves it is genuine (an empty value refuses that provider)."""

    ses_topic_arns: list[str] = Field(default_factory=list)  # SNS topics accepted; [] = refuse
    sendgrid_public_key: str = ""  # the signed event webhook's verification key (base64 DER)
    mailgun_signing_key: str = ""  # the HTTP webhook signing key
    postmark_basic_auth: str = ""  # "user:password" put in the webhook URL
    max_age_seconds: int = 900  # SendGrid and Mailgun timestamps older than this are refused


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
    # Events API: a row naming an unknown subscriber or item key is refused ("reject") or
    # creates a placeholder that is never mailed or recommended until upserted ("placeholder").
    api_unknown_keys: Literal["reject", "placeholder"] = "reject"
    api_rate_limit_per_minute: int = Field(default=600, ge=1)
    # Soft bounces (mailbox full, greylisted...) in a row before the address is suppressed.
    soft_bounce_limit: int = Field(default=3, ge=1)
    webhooks: WebhookSecrets = Field(default_factory=WebhookSecrets)
    # `newsletter serve` buffers clicks and opens and writes them every track_flush_ms or
    # track_flush_rows rows (0 rows: write each at once); a crash loses at most the buffer,
    # never more than track_buffer_max rows (README, "Tracking service").
    track_flush_rows: int = Field(default=500, ge=0)
    track_flush_ms: int = Field(default=200, ge=1)
    track_buffer_max: int = Field(default=50_000, ge=1)

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
