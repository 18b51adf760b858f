"""Buffered tracking writes: the pixel and the redirect never wait for the database.

With a buffer, a click or open request only appends a ``Pending`` row to memory (a lock and a
list append) and answers. A flusher thread writes the buffer every ``flush_ms`` milliseconds,
or as soon as it holds ``flush_rows`` rows, in one transaction per flush (``write_pending``:
the facts of every message named, read once per sent message and then cached
(``FactsCache``), one multi-row insert, then the burst rules over those messages, each with its
whole click and open history: the history the buffer wrote is cached too, and re-read only when
a count of the message's events in the database says someone else added or removed one). On
shutdown (uvicorn turns SIGTERM into a graceful shutdown, which closes the app's lifespan)
the buffer is flushed before the process exits.

What can be lost: only a crash (SIGKILL, power loss) loses events, at most those not yet
flushed, which is at most ``flush_ms`` worth of traffic in normal operation and never more
than ``max_rows`` rows. When the database is down the buffer keeps the rows and retries; once
it holds ``max_rows`` rows, new ones are dropped (and counted in ``stats``) rather than making
readers wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from newsletter.db import Engine
from newsletter.store import event_batches as batches
from newsletter.store import machine as flags
from newsletter.track.bots import classify_click, classify_open
from newsletter.track.bursts import Hit, link_of, machine_hits
from newsletter.track.machine import hit_of

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pending:
    """A click or open waiting to be written."""

    kind: str  # click | open | honeypot
    message_id: int
    at: datetime
    user_agent: str | None
    ip: str | None
    slot: int | None = None
    url: str | None = None
    method: str = "GET"
    prefetch: bool = False


def _row(
    p: Pending, subscriber_id: int, sent_at: datetime | None, item_id: int | None
) -> dict[str, Any]:
    machine: bool
    reason: str | None
    if p.kind == "honeypot":  # the hidden link: only machines follow it
        machine, reason = True, "honeypot"
    elif p.kind == "click":
        machine, reason = classify_click(
            p.user_agent, p.ip, sent_at, p.at, method=p.method, prefetch=p.prefetch
        )
    else:
        machine, reason = classify_open(p.user_agent, p.ip, sent_at, p.at)
        if p.method.upper() == "HEAD":
            machine, reason = True, "head-request"
    return {
        "message_id": p.message_id,
        "subscriber_id": subscriber_id,
        "slot_position": p.slot,
        "item_id": item_id,
        "kind": p.kind,
        "occurred_at": p.at,
        "is_machine": machine,
        "machine_reason": reason,
        "user_agent": p.user_agent,
        "ip": p.ip,
        "url": p.url,
        "external_id": None,
    }


class FactsCache:
    """The facts and recent histories of sent messages, kept between flushes (bounded).

    Once a message is sent its subscriber, send time and slot items do not change, so each is
    read from the database once, not once per flush. A message that is not sent yet is read
    every time. A write that fails clears the cache (a message or item may have been deleted),
    so the retry reads everything again.

    The click/open history of each message the buffer wrote to is kept as well, so the burst
    rules after a flush need not re-read it: a count per message (one aggregate query) checks
    that the database holds exactly the cached hits plus the new ones; any other writer (a
    honeypot hit, another server process, an erasure) changes the count and the message's
    history is read again. Flags another process set later are not seen until then; they only
    matter to the weak early-unopened rule, and the store never overwrites a flag.
    """

    MAX_HITS = 500  # a message with a longer history is re-read every time, not cached

    def __init__(self, max_messages: int = 100_000) -> None:
        self.max_messages = max_messages
        self._known: dict[int, batches.SentFacts] = {}
        self._hits: dict[int, list[Hit]] = {}

    def get(self, engine: Engine, message_ids: Iterable[int]) -> dict[int, batches.SentFacts]:
        """{message id: facts} for the messages that exist."""
        ids = set(message_ids)
        missing = ids.difference(self._known)
        found = batches.message_facts_many(engine, message_ids=missing) if missing else {}
        if len(self._known) + len(found) > self.max_messages:
            self._known.clear()
        self._known.update({k: v for k, v in found.items() if v.sent_at is not None})
        return {i: self._known.get(i) or found[i] for i in ids if i in self._known or i in found}

    def histories(self, engine: Engine, new: dict[int, list[Hit]]) -> dict[int, list[Hit]]:
        """{message id: every click, open and honeypot hit} for the messages with `new` hits
        (just written), from the cache where the database's count confirms it."""
        counts = batches.history_counts(engine, message_ids=new)
        out: dict[int, list[Hit]] = {}
        for message_id, hits in new.items():
            known = self._hits.get(message_id)
            if known is not None and len(known) + len(hits) == counts.get(message_id, 0):
                out[message_id] = known + hits
        stale = [m for m in new if m not in out]
        for message_id, events in batches.events_of(engine, message_ids=stale).items():
            out[message_id] = [hit_of(e) for e in events]
        return out

    def remember(self, message_id: int, hits: list[Hit]) -> None:
        """Keep a message's history (with its flags as now written) for the next flush."""
        if len(hits) > self.MAX_HITS:
            self._hits.pop(message_id, None)
            return
        if message_id not in self._hits and len(self._hits) >= self.max_messages:
            self._hits.clear()
        self._hits[message_id] = hits

    def clear(self) -> None:
        """Forget everything (after a failed write)."""
        self._known.clear()
        self._hits.clear()


def write_pending(engine: Engine, items: Sequence[Pending], cache: FactsCache | None = None) -> int:
    """Write a batch of pending events and apply the burst rules; returns rows written.

    Events of messages that no longer exist are skipped, as the unbuffered path does.
    """
    cache = cache or FactsCache()
    facts = cache.get(engine, (p.message_id for p in items))
    rows = []
    for p in items:
        known = facts.get(p.message_id)
        if known is not None:
            item = known.items.get(p.slot) if p.slot is not None else None
            rows.append(_row(p, known.subscriber_id, known.sent_at, item))
    ids = batches.insert_events(engine, rows=rows)
    new: dict[int, list[Hit]] = {}
    for event_id, row in zip(ids, rows, strict=True):
        link = link_of(row["slot_position"], row["url"])
        hit = Hit(event_id, row["kind"], row["occurred_at"], link, row["is_machine"])
        new.setdefault(row["message_id"], []).append(hit)
    marked: dict[int, str] = {}
    for message_id, hits in cache.histories(engine, new).items():
        found = machine_hits(hits, sent_at=facts[message_id].sent_at)
        already = {h.id for h in hits if h.is_machine}
        fresh = {k: v for k, v in found.items() if k not in already}
        marked.update(fresh)
        flagged = [replace(h, is_machine=True) if h.id in fresh else h for h in hits]
        cache.remember(message_id, flagged)
    flags.mark_machine(engine, flags=marked)
    return len(ids)


class EventBuffer:
    """A bounded in-memory buffer of tracking events with a flusher thread (see the module)."""

    def __init__(
        self, engine: Engine, *, flush_rows: int = 500, flush_ms: int = 200, max_rows: int = 50_000
    ) -> None:
        self.engine = engine
        self.flush_rows, self.flush_ms, self.max_rows = flush_rows, flush_ms, max_rows
        self.stats = {"accepted": 0, "written": 0, "dropped": 0, "failed_flushes": 0}
        self._items: list[Pending] = []
        self.facts = FactsCache()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, item: Pending) -> bool:
        """Queue an event (never touches the database); False when the buffer is full."""
        with self._lock:
            if len(self._items) >= self.max_rows:
                self.stats["dropped"] += 1
                return False
            self._items.append(item)
            self.stats["accepted"] += 1
            full = len(self._items) >= self.flush_rows
        if full:
            self._wake.set()
        return True

    def pending(self) -> int:
        """How many events wait to be written."""
        with self._lock:
            return len(self._items)

    def flush(self) -> int:
        """Write everything queued now; on a database error keep it for the next try."""
        with self._flushing:
            with self._lock:
                batch, self._items = self._items, []
            if not batch:
                return 0
            try:
                written = write_pending(self.engine, batch, self.facts)
            except Exception:
                self.facts.clear()
                log.exception("tracking buffer: could not write %d events; will retry", len(batch))
                with self._lock:
                    self._items = (batch + self._items)[-self.max_rows :]
                    self.stats["failed_flushes"] += 1
                return 0
            self.stats["written"] += written
            return written

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_ms / 1000)
            self._wake.clear()
            self.flush()

    def start(self) -> None:
        """Start the flusher thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tracking-buffer", daemon=True)
            self._thread.start()

    def close(self, *, attempts: int = 5) -> int:
        """Stop the flusher and write what is left (a few tries); returns events still unwritten."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for _ in range(attempts):
            self.flush()
            if not self.pending():
                break
        left = self.pending()
        if left:
            log.error("tracking buffer: %d events could not be written at shutdown", left)
        return left
