"""Answer "why did (or didn't) this person get this email?" from the persisted plan.

:func:`why` finds the campaign's newest run scheduled at or before ``at`` and the
subscriber's message in it. A message tells the arm (and its opaque Feedback-ID code), the
status and the reason (for a cap, also the other messages that filled it), when it was planned
to go out and why then (the local send hour, quiet hours), when it really went out (and why,
when that differs) and, when planned, each slot with its source, score, propensity and
reason. Without a message it says whether the subscriber is outside the segment, joined after
planning, or whether no run exists yet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from newsletter.config import Settings
from newsletter.db import as_utc
from newsletter.enums import MessageStatus
from newsletter.models import Campaign, Message, Slot
from newsletter.plan.cadence import QUIET_DEFERRED, zone
from newsletter.plan.campaigns import CampaignConfig, parse_campaign_config
from newsletter.plan.decide import explain_reason
from newsletter.plan.experiments import feedback_code
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
    sent_at: datetime | None = None
    timezone: str | None = None
    timing: list[str] = field(default_factory=list)  # why it was planned / sent when it was
    feedback_code: str | None = None  # the arm's code in the Feedback-ID header
    other_messages: list[datetime] = field(default_factory=list)
    slots: list[SlotWhy] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable lines for the terminal."""
        out = [self.summary]
        if self.arm:
            code = f" (Feedback-ID code {self.feedback_code})" if self.feedback_code else ""
            out.append(f"arm: {self.arm}{code}")
        if self.planned_for:
            out.append(f"planned for: {self._when(self.planned_for)}")
        if self.sent_at:
            out.append(f"sent at: {self._when(self.sent_at)}")
        out += [f"  {line}" for line in self.timing]
        out += [f"  other message at {t.isoformat()}" for t in self.other_messages]
        for s in self.slots:
            out.append(
                f"  {s.position + 1}. [{s.section}] {s.title} (item {s.item_id}) — "
                f"{s.reason}; source {s.source}, score {s.score:.3g}, "
                f"propensity {s.propensity:.3g}"
            )
        return out

    def _when(self, moment: datetime) -> str:
        """A UTC time with the subscriber's local wall time beside it."""
        if not self.timezone:
            return moment.isoformat()
        local = moment.astimezone(zone(self.timezone))
        return f"{moment.isoformat()} ({local:%Y-%m-%d %H:%M} {self.timezone})"


def _timing(
    message: Message, *, kind: str, config: CampaignConfig, scheduled: datetime
) -> list[str]:
    """Why the message was planned for its time, and why it went out when it did."""
    cadence = config.cadence
    if kind == "digest":
        lines = [
            f"due at the campaign's send hour {cadence.send_hour_local:02d}:00 their time, the "
            f"first one at or after the run's scheduled time {scheduled.isoformat()}"
        ]
    else:
        lines = [f"due when the trigger fired ({scheduled.isoformat()})"]
    if message.reason == QUIET_DEFERRED and cadence.quiet_hours:
        start, end = (t.strftime("%H:%M") for t in cadence.quiet_hours)
        lines.append(f"that fell in their quiet hours ({start}-{end}), so it waited until {end}")
    if message.sent_at is not None:
        late = message.sent_at - message.planned_for
        if late > timedelta(minutes=15):
            lines.append(
                f"sent {late.total_seconds() / 3600:.1f} h after its planned time: no delivery "
                "pass ran in between (it went out with the next `newsletter run resume`)"
            )
        elif late < -timedelta(minutes=1):
            lines.append("sent before its planned time: the run was delivered with --send-all")
    return lines


def why(
    engine: Any,
    *,
    subscriber: str,
    campaign: str,
    at: datetime | None = None,
    segment_folder: Path | None = None,
    settings: Settings | None = None,
) -> Explanation:
    """Explain one subscriber's outcome in the campaign's run at (or before) `at`.

    With `settings`, times are also shown in the subscriber's timezone (their own, else the
    default one) and the arm's Feedback-ID code is given.
    """
    found = store.find_campaign(engine, name=campaign)
    if found is None or found.id is None:
        known = ", ".join(store.campaign_names(engine)) or "none yet"
        raise PlanError(f"unknown campaign {campaign!r}; known campaigns: {known}")
    sid = store.subscriber_id(engine, key=subscriber)
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
        folder = segment_folder or (settings.segment_folder if settings is not None else None)
        return _without_message(engine, base, found.segment_name, run.scheduled_for, folder)
    return _with_message(engine, base, *pair, campaign=found, config=config, settings=settings)


def _with_message(
    engine: Any,
    base: Explanation,
    message: Message,
    slots: list[Slot],
    *,
    campaign: Campaign,
    config: CampaignConfig,
    settings: Settings | None,
) -> Explanation:
    """The subscriber has a message in the run: its outcome, timing, arm code and slots."""
    run_id, sid = int(base.run_id or 0), int(base.subscriber_id or 0)
    base.arm, base.reason, base.planned_for = message.arm, message.reason, message.planned_for
    base.sent_at = message.sent_at
    profile = store.profiles(engine, ids=[sid])
    default_tz = settings.default_timezone if settings else "UTC"
    base.timezone = zone(profile[0].timezone if profile else None, default_tz).key
    if settings is not None:
        base.feedback_code = feedback_code(message.arm, secret_key=settings.secret_key)
    sentence = explain_reason(message.reason, config)
    if message.status == MessageStatus.skipped:
        base.outcome = "skipped"
        left = store.departure(engine, subscriber_id=sid) if message.reason in LEFT else None
        if left is not None and left[0] == message.reason:
            sentence = departure_sentence(*left)
        base.summary = f"Not sent in run {run_id}: {sentence} ({message.reason})."
        if message.reason in CAPS:
            base.other_messages = _others(engine, sid, message.planned_for, run_id)
        return base
    deferred = message.reason == QUIET_DEFERRED
    base.outcome = (
        "sent" if message.status == MessageStatus.sent else "deferred" if deferred else "planned"
    )
    assert base.scheduled_for is not None
    base.timing = _timing(message, kind=campaign.kind, config=config, scheduled=base.scheduled_for)
    if message.status == MessageStatus.sent and message.sent_at is not None:
        base.summary = f"Sent in run {run_id} ({message.arm} arm) at {base._when(message.sent_at)}."
    else:
        extra = f"; {sentence}" if deferred else ""
        base.summary = f"Planned in run {run_id} ({message.arm} arm){extra}."
    titles = store.item_titles(engine, ids=[s.item_id for s in slots])
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
        ids=[sid],
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
    left = store.departure(engine, subscriber_id=base.subscriber_id)
    if left is not None:
        reason, since = left
        base.outcome = "skipped"
        base.reason = reason.partition(":")[0]
        base.summary = f"Not sent in run {base.run_id}: {departure_sentence(reason, since)}."
        return base
    definition = resolve_segment(engine, segment, folder=folder)
    inside = base.subscriber_id in set(segment_ids(engine, definition=definition, now=when))
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
