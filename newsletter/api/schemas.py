"""Pydantic models of the HTTP API's bodies, kept apart from the tables (``newsletter.models``).

Request models forbid unknown fields, so a typo is a clear 422 rather than a silent no-op.
An upsert body sets only the fields it names: an omitted field keeps its stored value, an
explicit ``null`` clears a field that may be empty (``name``, ``locale``, ``image_url``...),
and is refused for one that may not (``email``, ``status``, ``title``...).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from newsletter.store.records import ITEM_COLUMNS, SUBSCRIBER_COLUMNS

MAX_BATCH = 1000
Kind = Literal["view", "read", "click", "like", "cart", "purchase", "rating"]
Status = Literal["active", "unsubscribed", "bounced", "complained"]
FrequencyIn = Literal["weekly", "monthly", "paused"]


def _timestamp(value: Any) -> Any:
    """ISO 8601 date-times (an offset, or UTC without one) and Unix seconds; nothing else."""
    if isinstance(value, bool):
        raise ValueError("expected an ISO 8601 date-time or Unix seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > 1e11:
            raise ValueError("Unix seconds out of range")
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        text = value.strip()
        if len(text) < 16 or text[10] not in "Tt ":
            raise ValueError(f"{value!r} is not an ISO 8601 date-time (e.g. 2026-11-02T09:00:00Z)")
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO 8601 date-time") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


Timestamp = Annotated[
    datetime,
    BeforeValidator(_timestamp),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            "description": "ISO 8601 (UTC when it has no offset) or Unix seconds",
        }
    ),
]
KeyStr = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]


class EventIn(BaseModel):
    """One behaviour event: this subscriber did ``kind`` with this item at ``occurred_at``."""

    model_config = ConfigDict(extra="forbid")
    subscriber_key: KeyStr
    item_key: KeyStr
    kind: Kind
    occurred_at: Timestamp
    value: float | None = Field(default=None, description="a rating, a quantity, an amount")
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200, description="a repeated key is ignored"
    )

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("value must be a finite number")
        return value


class EventBatch(BaseModel):
    """Up to 1,000 events; each row is validated on its own (see ``BatchResult``)."""

    events: list[EventIn] = Field(max_length=MAX_BATCH)


class RowResult(BaseModel):
    """The outcome of row ``index`` (0-based) of a batch."""

    index: int
    status: Literal["stored", "duplicate", "rejected"]
    reason: str | None = None


class BatchResult(BaseModel):
    """Counts and one result per row, in the order of the request."""

    stored: int
    duplicates: int
    rejected: int
    results: list[RowResult]


def _no_null_in_schema(schema: dict[str, Any], model: type) -> None:
    """Document the fields that may be omitted but not null as not nullable."""
    for name in getattr(model, "REQUIRED", ()):
        field = schema.get("properties", {}).get(name, {})
        options = [o for o in field.pop("anyOf", []) if o.get("type") != "null"]
        if len(options) == 1:
            field.update(options[0])
        elif options:
            field["anyOf"] = options
        if field.get("default", 0) is None:
            del field["default"]


class _Upsert(BaseModel):
    """Shared rules of upsert bodies: no unknown fields, nulls only where a field may be empty."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_in_schema)
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    COLUMNS: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _no_null_for_required(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [k for k in cls.REQUIRED if k in data and data[k] is None]
            if nulls:
                raise ValueError(f"{', '.join(nulls)} may not be null (omit it to keep it)")
        return data

    @field_validator("attributes", check_fields=False)
    @classmethod
    def _no_column_names(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        clash = sorted(set(value or {}) & cls.COLUMNS)
        if clash:
            raise ValueError(f"attribute names {clash} are fields: set them as fields")
        return value

    def fields(self) -> dict[str, Any]:
        """Only the fields the request named."""
        return self.model_dump(exclude_unset=True)


class SubscriberIn(_Upsert):
    """A subscriber's fields; ``email`` is needed when the key is new."""

    REQUIRED = ("email", "status", "timezone", "frequency", "topics", "attributes")
    COLUMNS = frozenset(SUBSCRIBER_COLUMNS)
    email: str | None = Field(default=None, min_length=3, max_length=320)
    name: str | None = Field(default=None, max_length=200)
    status: Status | None = None
    timezone: str | None = Field(default=None, max_length=64, description="IANA name")
    locale: str | None = Field(default=None, max_length=20)
    frequency: FrequencyIn | None = None
    topics: list[str] | None = Field(default=None, max_length=100)
    attributes: dict[str, JsonValue] | None = None

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: list[str] | None) -> list[str] | None:
        return _check_topics(value)


class ItemIn(_Upsert):
    """An item's fields; ``title`` and ``url`` are needed when the key is new."""

    REQUIRED = ("title", "url", "summary", "topics", "active", "attributes")
    COLUMNS = frozenset(ITEM_COLUMNS)
    title: str | None = Field(default=None, min_length=1, max_length=500)
    url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://\S+$")
    summary: str | None = Field(default=None, max_length=20000)
    image_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://\S+$")
    topics: list[str] | None = Field(default=None, max_length=100)
    published_at: Timestamp | None = None
    expires_at: Timestamp | None = None
    active: StrictBool | None = None
    attributes: dict[str, JsonValue] | None = None

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: list[str] | None) -> list[str] | None:
        return _check_topics(value)


def _check_topics(value: list[str] | None) -> list[str] | None:
    for topic in value or []:
        if not topic.strip() or len(topic) > 100:
            raise ValueError(f"topic {topic!r} must be 1 to 100 characters")
    return value


class Upserted(BaseModel):
    """The key that was written, and whether it was new (201) or updated (200)."""

    key: str
    created: bool


class Erased(BaseModel):
    """The subscriber whose personal data was erased."""

    key: str
    erased: bool = True


class Problem(BaseModel):
    """An error: one sentence naming the input and the fix."""

    detail: str
