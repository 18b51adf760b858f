"""Service functions behind the events API: store behaviour events, upsert, erase.

``ingest_events`` takes rows the API already checked for shape and runs each through the
loader's own row rules (``store.ingest.parse_row``), so a row the CSV import refuses is refused
here with the same reason; good rows are stored in one transaction
(``store.api_events.store_events``), and then ``on_stored`` is called with what was stored.

``on_stored`` is the trigger hook: the trigger engine (the schedules-and-triggers issue)
evaluates events as they arrive by being passed here (the API passes
``app.state.api.on_events_stored``). The default, ``evaluate_triggers``, does nothing yet. A
failing hook never loses events: they are committed before it runs, and its error is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from newsletter.db import Engine
from newsletter.store import api_events, erasure, upserts
from newsletter.store.api_events import RowOutcome
from newsletter.store.ingest import Numbered, parse_row
from newsletter.store.records import RowError

log = logging.getLogger(__name__)
FUTURE_SLACK = timedelta(minutes=5)  # clock skew allowed for occurred_at


@dataclass(frozen=True)
class StoredEvent:
    """One behaviour event as stored: who did what with which item, when."""

    subscriber_key: str
    item_key: str
    kind: str
    occurred_at: datetime
    value: float | None


EventsHook = Callable[..., None]


def evaluate_triggers(*, engine: Engine, events: Sequence[StoredEvent], now: datetime) -> None:
    """The trigger hook, called after events are stored (a no-op until triggers exist)."""
    return None


@dataclass(frozen=True)
class IngestResult:
    """One outcome per row, in row order, and the events that were stored."""

    outcomes: list[RowOutcome]
    stored: list[StoredEvent]

    def count(self, status: str) -> int:
        """How many rows ended with ``status`` (stored, duplicate, rejected)."""
        return sum(1 for o in self.outcomes if o.status == status)


def _parse(index: int, raw: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    record = parse_row("interactions", raw, default_timezone="UTC")
    if record["occurred_at"] > now + FUTURE_SLACK:
        raise RowError(f"occurred_at {record['occurred_at'].isoformat()} is in the future")
    return record | {"idempotency_key": raw.get("idempotency_key") or None}


def ingest_events(
    engine: Engine,
    *,
    rows: Sequence[tuple[int, Mapping[str, Any]]],
    unknown: str,
    now: datetime,
    on_stored: EventsHook = evaluate_triggers,
) -> IngestResult:
    """Validate, store and hand on a batch of (index, event) rows; see the module docstring."""
    good: list[Numbered] = []
    outcomes: list[RowOutcome] = []
    for index, raw in rows:
        try:
            good.append((index, _parse(index, raw, now)))
        except RowError as exc:
            outcomes.append(RowOutcome(index, "rejected", str(exc)))
    written, stored_rows = api_events.store_events(engine, rows=good, unknown=unknown, now=now)
    stored = [
        StoredEvent(r["subscriber_key"], r["item_key"], r["kind"], r["occurred_at"], r["value"])
        for _, r in stored_rows
    ]
    if stored:
        try:
            on_stored(engine=engine, events=stored, now=now)
        except Exception:  # the events are committed; a broken hook must not fail the request
            log.exception("the events hook failed on %d stored events", len(stored))
    return IngestResult(sorted(outcomes + written, key=lambda o: o.index), stored)


def upsert_subscriber(
    engine: Engine,
    *,
    key: str,
    fields: Mapping[str, Any],
    default_timezone: str,
    now: datetime,
    merge_attributes: bool = False,
) -> upserts.Upserted:
    """Insert or update one subscriber (omitted fields kept); RowError names a bad field."""
    return upserts.upsert_subscriber(
        engine,
        key=key,
        fields=fields,
        default_timezone=default_timezone,
        now=now,
        merge_attributes=merge_attributes,
    )


def upsert_item(
    engine: Engine, *, key: str, fields: Mapping[str, Any], now: datetime
) -> upserts.Upserted:
    """Insert or update one item (omitted fields kept); RowError names a bad field."""
    return upserts.upsert_item(engine, key=key, fields=fields, now=now)


def erase_subscriber(engine: Engine, *, key: str, now: datetime) -> bool:
    """Erase a subscriber's personal data, keeping anonymous aggregates; False if unknown."""
    return erasure.erase_subscriber(engine, key=key, now=now)
