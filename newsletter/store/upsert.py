"""Upsert subscribers and items by key: a source writes only what it gave and what it owns.

What the subscriber said stands. Every writer of subscriber rows that comes from outside (CSV
import, `sync`, the events/upsert API) goes through :func:`upsert_subscribers`, which applies
these rules (README, "Loading behaviour"):

* A record changes only the columns its row carried (``record["given"]``, see
  `newsletter.store.records`); a column the query or file does not return is never reset.
* Source-owned: ``email``, ``name``, ``timezone``, ``locale``, ``opted_in_at`` and the extra
  columns (``attributes``, merged key by key: a blank value removes that key only).
* Subscriber-owned: ``frequency`` and ``topics`` once the subscriber saved them in the
  preference centre (``preferences_set_at``); until then a source may set them.
* Status: a source may move an ``active`` subscriber to ``unsubscribed``, ``bounced`` or
  ``complained``, and anyone to ``complained``; it never re-activates by saying ``active``.
  Only an explicit opt-in, an ``opted_in_at`` later than the subscriber's last status change,
  re-activates an unsubscribed or bounced subscriber (and lifts their unsubscribe/bounce
  suppression); nothing re-activates a complaint. See :func:`source_status`.

A placeholder (a row the events API made for an unknown key, ``status = placeholder``; an
item without a URL) holds nothing anyone said: the first real row fills it as if it were new.
An address erased before (GDPR, ``store.erasure``) goes back on the suppression list whenever
a source loads it again.

Items: a record changes only the columns it carried, so an item the marketer deactivated stays
inactive under a sync that does not return ``active``, and its topics stay unless ``topics``
is returned. Each function works on one batch inside the caller's transaction; the status and
preference updates re-check, in their WHERE clause, what the decision was based on, so an
unsubscribe or preference saved while a sync runs is never overwritten.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from newsletter.models import SubscriberStatus
from newsletter.store.erasure import resuppress_erased
from newsletter.store.records import RejectedRow
from newsletter.tables import item_table, item_topic_table, subscriber_table, suppression_table

Numbered = tuple[int, dict[str, Any]]  # (line number in its source, record)

SUBSCRIBER = subscriber_table
ITEM = item_table
ITEM_TOPIC = item_topic_table
SUPPRESSION = suppression_table
S = SUBSCRIBER.c
SOURCE_FIELDS = ("name", "timezone", "locale", "opted_in_at")
PREFERENCE_FIELDS = ("frequency", "topics")
ITEM_FIELDS = ("summary", "image_url", "topics", "published_at", "expires_at", "active")
# Suppression reasons an explicit opt-in lifts (a complaint or an imported list stays).
CONSENT_REASONS = (SubscriberStatus.unsubscribed, SubscriberStatus.bounced)


@dataclass(frozen=True)
class StoredSubscriber:
    """What the ownership rules need to know about a subscriber already in the database."""

    id: int
    email: str
    status: str
    status_changed_at: datetime | None
    preferences_set_at: datetime | None
    attributes: dict[str, Any]


def source_status(
    *, stored: str, changed_at: datetime | None, given: str | None, opted_in_at: datetime | None
) -> str:
    """The status a subscriber has after a source row (`given` None: the row had no status).

    A complaint is final. A non-active status from the source applies to an active subscriber
    (and a complaint to anyone); otherwise the stored one stands. ``active`` from a source
    never re-activates: only an opt-in later than the last status change does.
    """
    active, complained = SubscriberStatus.active, SubscriberStatus.complained
    if stored == complained:
        return stored
    if given is not None and given != active:
        return given if stored == active or given == complained else stored
    opted_in_since = opted_in_at is not None and (changed_at is None or opted_in_at > changed_at)
    return active if stored != active and opted_in_since else stored


def merge_attributes(stored: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Stored attributes with the given keys set (a None value removes its key)."""
    out = dict(stored)
    for key, value in given.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _last_per_key(rows: Sequence[Numbered], key: str) -> list[Numbered]:
    """Keep the last row for each key (a later row in a file updates an earlier one)."""
    latest: dict[Any, Numbered] = {}
    for line, record in rows:
        latest[record[key]] = (line, record)
    return list(latest.values())


def _given(record: dict[str, Any]) -> frozenset[str]:
    """The optional columns a record carries (a record built without `given`: all its keys)."""
    return frozenset(record.get("given", record))


def _update_many(
    connection: Connection, table: Any, rows: Iterable[dict[str, Any]], *, guard: Any = None
) -> None:
    """UPDATE rows by ``_id``, one executemany per set of columns (rows differ in what they set)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        columns = tuple(sorted(k for k in row if not k.startswith("_")))
        groups[columns].append({f"v_{k}" if k in columns else k: v for k, v in row.items()})
    for columns, group in groups.items():
        if not columns:
            continue
        values = {c: bindparam(f"v_{c}", type_=table.c[c].type) for c in columns}
        statement = update(table).where(table.c.id == bindparam("_id")).values(values)
        if guard is not None:
            statement = statement.where(guard)
        connection.execute(statement, group)


def _stored_subscribers(connection: Connection, keys: list[str]) -> dict[str, StoredSubscriber]:
    found: dict[str, StoredSubscriber] = {}
    columns = (S.id, S.email, S.status, S.status_changed_at, S.preferences_set_at, S.attributes)
    for start in range(0, len(keys), 5000):
        chunk = keys[start : start + 5000]
        query = select(S.external_key, *columns).where(S.external_key.in_(chunk))
        for key, *values in connection.execute(query):
            found[str(key)] = StoredSubscriber(
                int(values[0]), values[1], values[2], values[3], values[4], dict(values[5] or {})
            )
    return found


def _email_owners(connection: Connection, emails: list[str]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for start in range(0, len(emails), 5000):
        query = select(S.email, S.external_key).where(S.email.in_(emails[start : start + 5000]))
        owners.update((str(e), str(k)) for e, k in connection.execute(query))
    return owners


def _new_subscriber(record: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The full row of a subscriber seen for the first time (defaults for what was not given)."""
    status = record["status"]
    return {
        "external_key": record["external_key"],
        "email": record["email"],
        "name": record["name"],
        "status": status,
        "timezone": record["timezone"],
        "locale": record["locale"],
        "frequency": record["frequency"],
        "topics": record["topics"],
        "attributes": merge_attributes({}, record["attributes"]),
        "created_at": record["created_at"] or now,
        "updated_at": now,
        "status_changed_at": None if status == SubscriberStatus.active else now,
        "opted_in_at": record["opted_in_at"],
        "preferences_set_at": None,
    }


@dataclass
class _Changes:
    """The three kinds of update one batch makes to subscribers already stored."""

    source: list[dict[str, Any]]
    preferences: list[dict[str, Any]]
    status: list[tuple[StoredSubscriber, str, str]]  # (stored, new status, new email)


def _changes(
    changes: _Changes, record: dict[str, Any], row: StoredSubscriber, now: datetime
) -> None:
    """Split one record's update into source fields, preferences and a status change."""
    given = _given(record)
    source = {"_id": row.id, "email": record["email"], "updated_at": now}
    source.update({f: record[f] for f in SOURCE_FIELDS if f in given})
    if "attributes" in given:
        source["attributes"] = merge_attributes(row.attributes, record["attributes"])
    changes.source.append(source)
    preferences = {f: record[f] for f in PREFERENCE_FIELDS if f in given}
    if preferences and row.preferences_set_at is None:
        changes.preferences.append({"_id": row.id, **preferences})
    status = source_status(
        stored=row.status,
        changed_at=row.status_changed_at,
        given=record["status"] if "status" in given else None,
        opted_in_at=record["opted_in_at"] if "opted_in_at" in given else None,
    )
    if status != row.status:
        changes.status.append((row, status, record["email"]))


def _apply_status(
    connection: Connection, changes: list[tuple[StoredSubscriber, str, str]], now: datetime
) -> None:
    """Change statuses where they are still what the decision saw; lift consent suppressions
    of re-activated addresses."""
    statement = (
        update(SUBSCRIBER)
        .where(S.id == bindparam("_id"), S.status == bindparam("_seen"))
        .values(status=bindparam("v_status"), status_changed_at=now)
    )
    for row, status, email in changes:
        done = connection.execute(
            statement, {"_id": row.id, "_seen": row.status, "v_status": status}
        ).rowcount
        if done and status == SubscriberStatus.active:
            connection.execute(
                delete(SUPPRESSION).where(
                    SUPPRESSION.c.email.in_({row.email, email}),
                    SUPPRESSION.c.reason.in_([str(r) for r in CONSENT_REASONS]),
                )
            )


def upsert_subscribers(
    connection: Connection, *, rows: Sequence[Numbered], source: str, now: datetime
) -> tuple[int, list[RejectedRow]]:
    """Insert or update subscribers by `external_key` under the ownership rules above.

    `rows` are (line, record) pairs from `records.parse_subscriber`; a record whose `given`
    lacks a column leaves that column as stored. Returns (rows written, rejections).
    """
    rows = _last_per_key(rows, "external_key")
    stored = _stored_subscribers(connection, [str(r["external_key"]) for _, r in rows])
    owners = _email_owners(connection, [str(r["email"]) for _, r in rows])
    inserts: list[dict[str, Any]] = []
    changes = _Changes([], [], [])
    rejected, seen_emails = [], set()
    for line, record in rows:
        key, email = record["external_key"], record["email"]
        if owners.get(email, key) != key or email in seen_emails:
            rejected.append(RejectedRow(source, line, f"email {email!r} already used"))
            continue
        seen_emails.add(email)
        row = stored.get(key)
        if row is None:
            inserts.append(_new_subscriber(record, now))
        elif row.status == SubscriberStatus.placeholder:
            changes.source.append(_filled_placeholder(record, row, now))
        else:
            _changes(changes, record, row, now)
    if inserts:
        connection.execute(insert(SUBSCRIBER), inserts)
    _update_many(connection, SUBSCRIBER, changes.source)
    _update_many(connection, SUBSCRIBER, changes.preferences, guard=S.preferences_set_at.is_(None))
    _apply_status(connection, changes.status, now)
    resuppress_erased(connection, emails=sorted(seen_emails), now=now)
    return len(inserts) + len(changes.source), rejected


def _filled_placeholder(
    record: dict[str, Any], row: StoredSubscriber, now: datetime
) -> dict[str, Any]:
    """The update that turns a placeholder into the subscriber ``record`` describes."""
    full = _new_subscriber(record, now)
    return {"_id": row.id} | {k: v for k, v in full.items() if k != "external_key"}


def _new_item(record: dict[str, Any], now: datetime) -> dict[str, Any]:
    row = {f: record[f] for f in ("external_key", "title", "url", *ITEM_FIELDS)}
    return row | {"attributes": merge_attributes({}, record["attributes"]), "updated_at": now}


def upsert_items(
    connection: Connection, *, rows: Sequence[Numbered], now: datetime
) -> tuple[int, list[RejectedRow]]:
    """Insert or update items by `external_key` (only the columns given) and their topics."""
    records = [r for _, r in _last_per_key(rows, "external_key")]
    if not records:
        return 0, []
    keys = [r["external_key"] for r in records]
    query = select(ITEM.c.external_key, ITEM.c.id, ITEM.c.attributes, ITEM.c.url)
    stored: dict[str, tuple[int, dict[str, Any]]] = {}
    placeholders: dict[str, tuple[int, dict[str, Any]]] = {}
    for start in range(0, len(keys), 5000):
        chunk = query.where(ITEM.c.external_key.in_(keys[start : start + 5000]))
        for k, i, a, url in connection.execute(chunk):
            (stored if url else placeholders)[str(k)] = (int(i), dict(a or {}))
    fresh = [r for r in records if r["external_key"] not in stored]
    new = [r for r in fresh if r["external_key"] not in placeholders]
    if new:
        connection.execute(insert(ITEM), [_new_item(r, now) for r in new])
    filled = [r for r in fresh if r["external_key"] in placeholders]
    updates = [
        {"_id": placeholders[r["external_key"]][0]}
        | {k: v for k, v in _new_item(r, now).items() if k != "external_key"}
        for r in filled
    ]  # a placeholder item (no URL yet) is filled as if it were new
    for record in (r for r in records if r["external_key"] in stored):
        item_id, attributes = stored[record["external_key"]]
        given = _given(record)
        row = {"_id": item_id, "title": record["title"], "url": record["url"], "updated_at": now}
        row.update({f: record[f] for f in ITEM_FIELDS if f in given})
        if "attributes" in given:
            row["attributes"] = merge_attributes(attributes, record["attributes"])
        updates.append(row)
    _update_many(connection, ITEM, updates)
    retopic = fresh + [r for r in records if r["external_key"] in stored and "topics" in _given(r)]
    _replace_topics(connection, retopic)
    return len(records), []


def _replace_topics(connection: Connection, records: list[dict[str, Any]]) -> None:
    """Replace the item_topic rows of these items with their records' topics."""
    if not records:
        return
    keys = [r["external_key"] for r in records]
    ids: dict[str, int] = {}
    for start in range(0, len(keys), 5000):
        query = select(ITEM.c.external_key, ITEM.c.id).where(
            ITEM.c.external_key.in_(keys[start : start + 5000])
        )
        ids.update((str(k), int(i)) for k, i in connection.execute(query))
    item_ids = list(ids.values())
    for start in range(0, len(item_ids), 5000):
        chunk = item_ids[start : start + 5000]
        connection.execute(delete(ITEM_TOPIC).where(ITEM_TOPIC.c.item_id.in_(chunk)))
    topic_rows = [
        {"item_id": ids[r["external_key"]], "topic": t} for r in records for t in r["topics"]
    ]
    if topic_rows:
        connection.execute(insert(ITEM_TOPIC), topic_rows)
