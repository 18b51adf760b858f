"""Validate one raw row (from CSV or an external query) into a clean record, or say why not.

The same rules serve every source, so a row that the CSV import refuses is refused by `sync`
with the same reason. Column contracts (extra columns become `attributes`):

- subscribers: `subscriber_key`, `email`; optional `name`, `status`, `timezone`, `locale`,
  `frequency`, `topics` (separated by `|` or `,`, or a JSON list), `created_at`, `updated_at`.
- items: `item_key`, `title`, `url`; optional `summary`, `image_url`, `topics`,
  `published_at`, `expires_at`, `active`, `updated_at`.
- interactions: `subscriber_key`, `item_key`, `kind`, `occurred_at`; optional `value`.

Subscriber and item records also carry `given`: the optional columns the row really had (a
blank `status`, `frequency`, `timezone`, `opted_in_at` or `active` counts as not given, as
there is no "no value" for them), so a writer changes only those and keeps the rest as stored
(`newsletter.store.upsert`). `attributes` holds the extra columns, `None` for a blank one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.models import INTERACTION_KINDS, Frequency, SubscriberStatus

EMAIL_RE = re.compile(
    r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)
SUBSCRIBER_COLUMNS = {
    "subscriber_key",
    "email",
    "name",
    "status",
    "timezone",
    "locale",
    "frequency",
    "topics",
    "created_at",
    "updated_at",
    "opted_in_at",
}
ITEM_COLUMNS = {
    "item_key",
    "title",
    "url",
    "summary",
    "image_url",
    "topics",
    "published_at",
    "expires_at",
    "active",
    "updated_at",
}
SUBSCRIBER_NEEDS_VALUE = {"status", "frequency", "timezone", "opted_in_at", "created_at"}
INTERACTION_COLUMNS = {"subscriber_key", "item_key", "kind", "occurred_at", "value"}
REQUIRED = {
    "subscribers": ("subscriber_key", "email"),
    "items": ("item_key", "title", "url"),
    "interactions": ("subscriber_key", "item_key", "kind", "occurred_at"),
}


class RowError(ValueError):
    """A row that cannot be loaded; the message says which field and why."""


@dataclass(frozen=True)
class RejectedRow:
    """One refused row: where it came from and why."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _text(raw: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = raw.get(key)
    if _blank(value):
        if required:
            raise RowError(f"missing {key}")
        return None
    return str(value).strip()


def parse_time(value: Any, field: str) -> datetime:
    """Read a timestamp: ISO 8601 text, a date, a datetime, or Unix seconds; naive = UTC."""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    else:
        text = str(value).strip()
        try:
            if re.fullmatch(r"-?\d+(\.\d+)?", text):
                return datetime.fromtimestamp(float(text), UTC)
            result = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except (ValueError, OverflowError, OSError) as exc:
            raise RowError(f"bad {field} {text!r}: expected ISO 8601 or Unix seconds") from exc
    return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)


def _optional_time(raw: Mapping[str, Any], key: str) -> datetime | None:
    value = raw.get(key)
    return None if _blank(value) else parse_time(value, key)


def parse_topics(value: Any) -> list[str]:
    """Topics as a list: a JSON list, or text separated by `|` or `,`."""
    if _blank(value):
        return []
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        text = str(value).strip()
        if text.startswith("["):
            try:
                items = [str(v) for v in json.loads(text)]
            except json.JSONDecodeError as exc:
                raise RowError(f"bad topics {text!r}: not a JSON list") from exc
        else:
            items = re.split(r"[|,]", text)
    seen: dict[str, None] = {}
    for topic in items:
        cleaned = topic.strip()
        if cleaned and cleaned != "(no genres listed)":
            seen.setdefault(cleaned[:100], None)
    return list(seen)


def _choice(raw: Mapping[str, Any], key: str, allowed: list[str], default: str) -> str:
    value = _text(raw, key)
    if value is None:
        return default
    if value.lower() not in allowed:
        raise RowError(f"unknown {key} {value!r}: expected one of {', '.join(allowed)}")
    return value.lower()


def _attributes(raw: Mapping[str, Any], known: set[str]) -> dict[str, Any]:
    """The extra columns of a row (None for a blank one: the source says it has no value)."""
    return {k: None if _blank(v) else v for k, v in raw.items() if k not in known and k}


def _given(raw: Mapping[str, Any], known: set[str], needs_value: set[str]) -> frozenset[str]:
    """The optional columns a row carries; those in `needs_value` only when not blank."""
    given = {k for k in known if k in raw and not (k in needs_value and _blank(raw[k]))}
    if any(k not in known and k for k in raw):
        given.add("attributes")
    return frozenset(given)


def parse_subscriber(raw: Mapping[str, Any], *, default_timezone: str = "UTC") -> dict[str, Any]:
    """A subscriber record from a raw row, or RowError."""
    email = _text(raw, "email", required=True) or ""
    if not EMAIL_RE.match(email) or len(email) > 320:
        raise RowError(f"bad email {email!r}")
    timezone = _text(raw, "timezone") or default_timezone
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RowError(f"unknown timezone {timezone!r} (use an IANA name)") from exc
    return {
        "external_key": _text(raw, "subscriber_key", required=True),
        "email": email.lower(),
        "name": _text(raw, "name"),
        "status": _choice(raw, "status", list(SubscriberStatus), SubscriberStatus.active),
        "timezone": timezone,
        "locale": _text(raw, "locale"),
        "frequency": _choice(raw, "frequency", list(Frequency), Frequency.weekly),
        "topics": parse_topics(raw.get("topics")),
        "created_at": _optional_time(raw, "created_at"),
        "updated_at": _optional_time(raw, "updated_at"),
        "opted_in_at": _optional_time(raw, "opted_in_at"),
        "attributes": _attributes(raw, SUBSCRIBER_COLUMNS),
        "given": _given(raw, SUBSCRIBER_COLUMNS, SUBSCRIBER_NEEDS_VALUE),
    }


def parse_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An item record from a raw row, or RowError."""
    url = _text(raw, "url", required=True) or ""
    if not re.match(r"^https?://[^\s]+$", url):
        raise RowError(f"bad url {url!r}: expected http(s)://...")
    active_text = _text(raw, "active")
    active = True if active_text is None else active_text.lower() in {"1", "true", "yes", "t"}
    return {
        "external_key": _text(raw, "item_key", required=True),
        "title": (_text(raw, "title", required=True) or "")[:500],
        "url": url,
        "summary": _text(raw, "summary") or "",
        "image_url": _text(raw, "image_url"),
        "topics": parse_topics(raw.get("topics")),
        "published_at": _optional_time(raw, "published_at"),
        "expires_at": _optional_time(raw, "expires_at"),
        "active": active,
        "updated_at": _optional_time(raw, "updated_at"),
        "attributes": _attributes(raw, ITEM_COLUMNS),
        "given": _given(raw, ITEM_COLUMNS, {"active"}),
    }


def parse_interaction(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An interaction record (still keyed by external keys), or RowError."""
    kind = _text(raw, "kind", required=True) or ""
    if kind.lower() not in INTERACTION_KINDS:
        raise RowError(f"unknown kind {kind!r}: expected one of {', '.join(INTERACTION_KINDS)}")
    value_text = raw.get("value")
    value: float | None = None
    if not _blank(value_text):
        try:
            value = float(str(value_text))
        except (TypeError, ValueError) as exc:
            raise RowError(f"bad value {value_text!r}: expected a number") from exc
    occurred = raw.get("occurred_at")
    if _blank(occurred):
        raise RowError("missing occurred_at")
    return {
        "subscriber_key": _text(raw, "subscriber_key", required=True),
        "item_key": _text(raw, "item_key", required=True),
        "kind": kind.lower(),
        "occurred_at": parse_time(occurred, "occurred_at"),
        "value": value,
    }
