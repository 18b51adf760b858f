"""Answer "why did (or didn't) this person get this email?" from the persisted plan.

:func:`why` finds the campaign's newest run scheduled at or before ``at`` and the
subscriber's message in it. A message tells the arm, the status and the reason (for a cap,
also the other messages that filled it) and, when planned, each slot with its source, score,
propensity and reason. Without a message it says whether the subscriber is outside the
segment, joined after planning, or whether no run exists yet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from newsletter.db import as_utc
from newsletter.plan.campaigns import parse_campaign_config
from newsletter.plan.decide import explain_reason
from newsletter.plan.planner import PlanError, resolve_segment
from newsletter.store import planning as store
from newsletter.store.segments import segment_ids

CAPS = ("frequency_cap_7d", "frequency_cap_day", "min_gap", "frequency_monthly")


@dataclass(frozen=True)
class SlotWhy:
    position: int
    section: str
    item_id: int
    title: str
    source: str
    score: float
    propensity: float
    reason: str


@dataclass
class Explanation:
    """The answer: outcome code, arm, reason code and sentence, and the slots if planned."""

    subscriber: str
    campaign: str
    outcome: str  # planned | deferred | sent | skipped | not_in_segment | not_planned | no_run
    summary: str
    subscriber_id: int | None = None
    run_id: int | None = None
    scheduled_for: datetime | None = None
    arm: str | None = None
    reason: str | None = None
    planned_for: datetime | None = None
    other_messages: list[datetime] = field(default_factory=list)
    slots: list[SlotWhy] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable lines for the terminal."""
        out = [self.summary]
        if self.arm:
            out.append(f"arm: {self.arm}")
        if self.planned_for:
            out.append(f"planned for: {self.planned_for.isoformat()}")
        out += [f"  other message at {t.isoformat()}" for t in self.other_messages]
        for s in self.slots:
            out.append(
                f"  {s.position + 1}. [{s.section}] {s.title} (item {s.item_id}) — "
                f"{s.reason}; source {s.source}, score {s.score:.3g}, "
                f"propensity {s.propensity:.3g}"
            )
        return out


def why(
    engine: Any,
    *,
    subscriber: str,
    campaign: str,
    at: datetime | None = None,
    segment_folder: Path | None = None,
) -> Explanation:
    """Explain one subscriber's outcome in the campaign's run at (or before) `at`."""
    found = store.find_campaign(engine, campaign)
    if found is None or found.id is None:
        known = ", ".join(store.campaign_names(engine)) or "none yet"
        raise PlanError(f"unknown campaign {campaign!r}; known campaigns: {known}")
    sid = store.subscriber_id(engine, subscriber)
    if sid is None:
        raise PlanError(f"no subscriber with id, email or external key {subscriber!r}")
    base = Explanation(subscriber, campaign, "no_run", "", subscriber_id=sid)
    run = store.latest_run(engine, campaign_id=found.id, at=None if at is None else as_utc(at))
    if run is None or run.id is None:
        when = f" at or before {as_utc(at).isoformat()}" if at else ""
        base.summary = f"No run of {campaign!r} was planned{when}, so nothing was sent."
        return base
    base.run_id, base.scheduled_for = run.id, run.scheduled_for
    config = parse_campaign_config(found.config, campaign=found.name)
    pair = store.message_and_slots(engine, run_id=run.id, subscriber_id=sid)
    if pair is None:
        return _without_message(engine, base, found.segment_name, run.scheduled_for, segment_folder)
    message, slots = pair
    base.arm, base.reason, base.planned_for = message.arm, message.reason, message.planned_for
    sentence = explain_reason(message.reason, config)
    if message.status == "skipped":
        base.outcome = "skipped"
        left = store.departure(engine, sid) if message.reason in LEFT else None
        if left is not None and left[0] == message.reason:
            sentence = departure_sentence(*left)
        base.summary = f"Not sent in run {run.id}: {sentence} ({message.reason})."
        if message.reason in CAPS:
            base.other_messages = _others(engine, sid, message.planned_for, run.id)
        return base
    deferred = message.reason == "quiet_hours_deferred"
    base.outcome = "sent" if message.status == "sent" else "deferred" if deferred else "planned"
    verb = "Sent" if message.status == "sent" else "Planned"
    extra = f"; {sentence}" if deferred else ""
    base.summary = f"{verb} in run {run.id} ({message.arm} arm){extra}."
    titles = store.item_titles(engine, [s.item_id for s in slots])
    base.slots = [
        SlotWhy(
            s.position,
            s.section,
            s.item_id,
            titles.get(s.item_id, "?"),
            s.source,
            s.score,
            s.propensity,
            s.reason_text,
        )
        for s in slots
    ]
    return base


LEFT = {
    "unsubscribed": "they unsubscribed",
    "bounced": "their address bounced",
    "complained": "they reported an email as spam",
}


def departure_sentence(reason: str, since: datetime | None) -> str:
    """'they unsubscribed on 3 May 2026' (or the suppression of an active address)."""
    when = f" on {since.day} {since:%B %Y}" if since is not None else ""
    if reason.startswith("suppressed:"):
        why = reason.partition(":")[2]
        return f"their address is on the suppression list ({why}){when.replace(' on', ' since')}"
    return LEFT.get(reason, f"their status is {reason}") + when


def _others(engine: Any, sid: int, when: datetime, run_id: int) -> list[datetime]:
    found = store.send_times(
        engine,
        [sid],
        start=when - timedelta(days=31),
        end=when + timedelta(days=8),
        exclude_run=run_id,
    )
    return sorted(found.get(sid, []))


def _without_message(
    engine: Any, base: Explanation, segment: str, when: datetime, folder: Path | None
) -> Explanation:
    """No message in the run: they left (unsubscribed, bounced...), are outside the segment,
    or joined after planning."""
    assert base.subscriber_id is not None
    left = store.departure(engine, base.subscriber_id)
    if left is not None:
        reason, since = left
        base.outcome = "skipped"
        base.reason = reason.partition(":")[0]
        base.summary = f"Not sent in run {base.run_id}: {departure_sentence(reason, since)}."
        return base
    definition = resolve_segment(engine, segment, folder=folder)
    inside = base.subscriber_id in set(segment_ids(engine, definition, now=when))
    if inside:
        base.outcome = "not_planned"
        base.summary = (
            f"Not in run {base.run_id}: they match segment {segment!r} now but were "
            "not in it when the run was planned."
        )
    else:
        base.outcome, base.reason = "not_in_segment", "not_in_segment"
        base.summary = f"Not sent in run {base.run_id}: they are not in segment {segment!r}."
    return base
