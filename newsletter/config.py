"""One validated Settings object, from NEWSLETTER_* variables over an optional newsletter.toml.

Sources, highest priority first: keyword arguments (``load_settings(**overrides)``),
``NEWSLETTER_*`` environment variables (nested keys with ``__``: ``NEWSLETTER_SOURCES__CRM__URL``
overrides ``url`` under ``[sources.crm]`` and keeps the rest of that table), then the TOML file
(pydantic-settings' own ``TomlConfigSettingsSource``; the file named by ``--config``, else
``NEWSLETTER_CONFIG``, else ``newsletter.toml`` in the working directory). Every mistake a user
can make becomes a :class:`ConfigError` whose lines each name the key, where it came from and
the fix; an unknown key is an error with a suggestion.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

DEFAULT_SECRET_KEY = "change-me-insecure-default-key"
# The key `newsletter demo` signs with and `newsletter serve --demo` verifies with (only there).
DEMO_SECRET_KEY = "demo-only-secret-key-do-not-use-in-production"
DEFAULT_DATABASE_FILE = "newsletter.db"
ENV_PREFIX = "NEWSLETTER_"
# Interaction kinds a weight may be given for (email clicks are learned from tracking events).
WEIGHT_KINDS = ("view", "read", "click", "like", "cart", "purchase", "rating", "email_click")
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")
_TOML_FILE: ContextVar[Path | None] = ContextVar("newsletter_toml_file", default=None)


class ConfigError(ValueError):
    """A configuration value is missing or invalid; each line names the key and the fix."""


class SourceQueries(BaseModel):
    """An external database to sync from: a SQLAlchemy URL and one SELECT per entity."""

    model_config = ConfigDict(extra="forbid")

    url: str
    subscribers: str | None = None
    items: str | None = None
    interactions: str | None = None

    @field_validator("url")
    @classmethod
    def _parsable(cls, value: str) -> str:
        parse_url(value)
        return value


def parse_url(value: str) -> str:
    """The scheme of a SQLAlchemy URL; ValueError (with an example) when it does not parse."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(value)
        url.port  # noqa: B018  (a bad port only raises when read)
    except Exception as exc:
        raise ValueError(
            f"{value!r} is not a database URL (e.g. postgresql://user@host:5432/db)"
        ) from exc
    return url.get_backend_name()


class WebhookSecrets(BaseModel):
    """How each ESP's webhook proves it is genuine (an empty value refuses that provider)."""

    model_config = ConfigDict(extra="forbid")

    ses_topic_arns: list[str] = Field(default_factory=list)  # SNS topics accepted; [] = refuse
    sendgrid_public_key: str = ""  # the signed event webhook's verification key (base64 DER)
    mailgun_signing_key: str = ""  # the HTTP webhook signing key
    postmark_basic_auth: str = ""  # "user:password" put in the webhook URL
    # SendGrid and Mailgun timestamps older than this are refused.
    max_age_seconds: int = Field(default=900, ge=1)

    @field_validator("ses_topic_arns")
    @classmethod
    def _arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not arn.startswith("arn:"):
                raise ValueError(f"{arn!r} is not an SNS topic ARN (e.g. arn:aws:sns:...:topic)")
        return value

    @field_validator("postmark_basic_auth")
    @classmethod
    def _basic_auth(cls, value: str) -> str:
        if value and ":" not in value:
            raise ValueError("give it as 'user:password' (the credentials in the webhook URL)")
        return value


class Settings(BaseSettings):
    """Everything configurable, validated once and passed in (never read from globals)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
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
    half_life_days: float = Field(default=60.0, gt=0)
    # After a crash, a message caught mid-send is re-sent (at-least-once; receivers can drop
    # the copy by its stable Message-ID) or marked failed for an operator (at-most-once).
    delivery_on_unknown: Literal["resend", "fail"] = "resend"
    # Salt of the experiment arm hash: changing it reshuffles every subscriber's arm.
    experiment_salt: str = "newsletter-arms-v1"
    # Your own segment files (NAME.yaml); the working directory's segments/ when empty.
    segments_dir: str = ""
    sources: dict[str, SourceQueries] = Field(default_factory=dict)
    allow_superuser_sql: bool = Field(
        default=False,
        description="Run user-written SQL (sync queries, segment sql rules) even when the "
        "PostgreSQL connection is a superuser; off by default: use a read-only role instead.",
    )
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment variables, then the TOML file (see the module doc)."""
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_TOML_FILE.get())
        return (init_settings, env_settings, toml)

    @field_validator("default_timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r} (e.g. 'Europe/Berlin')") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value:
            return value
        scheme = parse_url(value)
        if scheme not in DATABASE_SCHEMES:
            raise ValueError(
                f"unsupported database {scheme!r}; use sqlite:///path/to/file.db or "
                "postgresql://user@host:5432/db (or leave it empty for ./newsletter.db)"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or not value.split("//", 1)[1]:
            raise ValueError(f"{value!r} must start with https:// (e.g. https://news.example.com)")
        return value

    @field_validator("interaction_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        for kind, weight in value.items():
            if kind not in WEIGHT_KINDS:
                raise ValueError(f"unknown interaction kind {kind!r}{_suggest(kind, WEIGHT_KINDS)}")
            if weight < 0:
                raise ValueError(f"the weight of {kind!r} is {weight:g}; weights must be >= 0")
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

    @property
    def segment_folder(self) -> Path:
        """Where the user's own segment files live (searched before the shipped ones)."""
        return Path(self.segments_dir) if self.segments_dir else Path.cwd() / "segments"


def normalize_database_url(url: str) -> str:
    """Map plain postgres URLs onto the psycopg 3 driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(choices)}"


def config_path(config_file: Path | None = None) -> Path:
    """The TOML file to read: --config, else NEWSLETTER_CONFIG, else ./newsletter.toml."""
    return config_file or Path(os.environ.get("NEWSLETTER_CONFIG", "newsletter.toml"))


def _check_file(path: Path) -> None:
    """The file must be UTF-8 TOML; errors name the file and line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from exc
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _origin(key: str, path: Path | None) -> str:
    """Where a top-level key's value came from: its environment variable, or the file."""
    name = f"{ENV_PREFIX}{key.upper()}"
    if any(k.upper() == name or k.upper().startswith(name + "__") for k in os.environ):
        return f"environment variable {name}"
    return str(path) if path is not None else "settings"


def _problem(err: Any, path: Path | None) -> str:
    """One line for one validation error: key, origin, what is wrong and the fix."""
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc) or "(settings)"
    where = _origin(loc[0], path) if loc else "settings"
    if err["type"] == "extra_forbidden":
        fields = Settings.model_fields if len(loc) == 1 else SourceQueries.model_fields
        return f"{where}: unknown key {key!r}{_suggest(loc[-1], sorted(fields))}"
    message = str(err["msg"]).removeprefix("Value error, ").replace("Input should", "should")
    if err["type"] in ("greater_than", "literal_error", "float_parsing", "dict_type"):
        message += f" (got {err.get('input')!r})"
    return f"{where}: {key}: {message}"


def _env_problem(exc: SettingsError) -> str:
    """A line for an environment variable pydantic-settings could not decode (bad JSON)."""
    text = str(exc)
    field = text.split('"')[1] if text.count('"') >= 2 else ""
    name = f"{ENV_PREFIX}{field.upper()}"
    example = '{"purchase": 5, "view": 1}' if field == "interaction_weights" else "valid JSON"
    return f"environment variable {name}: not JSON ({os.environ.get(name, '')!r}); e.g. {example}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings (see the module docstring); every problem is a ConfigError."""
    path = config_path(config_file)
    if path.exists():
        _check_file(path)
    elif config_file is not None:
        raise ConfigError(f"config file {path} does not exist (--config)")
    token = _TOML_FILE.set(path if path.exists() else None)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [_problem(err, path if path.exists() else None) for err in exc.errors()]
        raise ConfigError("\n".join(problems)) from exc
    except SettingsError as exc:
        raise ConfigError(_env_problem(exc)) from exc
    finally:
        _TOML_FILE.reset(token)
