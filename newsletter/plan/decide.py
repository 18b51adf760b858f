"""One subscriber's verdict in one run: arm, cadence and suppression combined, with a reason.

Order: suppression and status (always win), the paused preference, then cadence at the
due time (the local send hour for a digest, the firing time for a trigger, deferred out of
quiet hours), and finally the arm: an eligible subscriber in the ``control`` arm is skipped
with reason ``control_arm``, so control stays comparable with those who were sent to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from newsletter.enums import Arm
from newsletter.plan.cadence import check_cadence, digest_send_time, local_wall_time, zone
from newsletter.plan.campaigns import CampaignConfig
from newsletter.store.planning import Profile

REASON_TEXT = {
    "suppressed": "their address is on the suppression list",
    "unsubscribed": "they unsubscribed",
    "bounced": "their address bounced",
    "complained": "they reported an email as spam",
    "placeholder": "they are a placeholder for an unknown key (no address yet)",
    "erased": "their personal data was erased on request",
    "paused": "they paused their emails (preference: paused)",
    "frequency_monthly": "they asked for one email a month and got one in the last 30 days",
    "frequency_cap_7d": "they reached the cap of {max_per_7_days} messages per 7 days",
    "frequency_cap_day": "they reached the cap of {max_per_day} messages per day (their time)",
    "min_gap": "another message is less than {min_gap_hours:g} hours away",
    "quiet_hours_deferred": "it was due in their quiet hours, so it waits until they end",
    "control_arm": "they are in the control arm, which gets no message (to measure lift)",
    "no_items": "no item could be chosen for them",
    "trigger_cooldown": "this trigger answered them less than {cooldown_hours:g} hours ago",
    "not_active": "they are no longer active, so the later welcome step is not sent",
}


@dataclass(frozen=True)
class Verdict:
    """Planned or skipped, in which arm, when, and why."""

    subscriber_id: int
    arm: str
    status: str  # planned | skipped
    reason: str | None
    planned_for: datetime


def explain_reason(reason: str | None, config: CampaignConfig) -> str:
    """A sentence for a reason code, with the campaign's numbers filled in."""
    if reason is None:
        return "they are in the segment and no rule held them back"
    template = REASON_TEXT.get(reason, reason)
    cooldown = config.trigger.cooldown_hours if config.trigger else 0.0
    return template.format(**config.cadence.model_dump(), cooldown_hours=cooldown)


def decide(
    profile: Profile,
    *,
    arm: str,
    others: Sequence[datetime],
    config: CampaignConfig,
    kind: str,
    scheduled_for: datetime,
    default_timezone: str = "UTC",
    local_schedule: bool = False,
) -> Verdict:
    """Combine suppression, preferences, cadence and arm into one verdict.

    With ``local_schedule`` (a digest created from its cron schedule) ``scheduled_for`` is a
    local wall time written in UTC: each subscriber is due at that date and time in their zone.
    """
    tz = zone(profile.timezone, default_timezone)
    rules = config.cadence
    if kind == "digest" and local_schedule:
        wall = scheduled_for.replace(tzinfo=None)
        due = local_wall_time(wall.date(), wall.time(), tz)
    elif kind == "digest":
        due = digest_send_time(scheduled_for=scheduled_for, tz=tz, hour=rules.send_hour_local)
    else:
        due = scheduled_for
    decision = check_cadence(
        due=due,
        tz=tz,
        status=profile.status,
        frequency=profile.frequency,
        others=others,
        rules=rules,
        suppressed=profile.suppressed,
    )
    if not decision.ok:
        return Verdict(profile.id, arm, "skipped", decision.reason, decision.send_at)
    if arm == Arm.control:
        return Verdict(profile.id, arm, "skipped", "control_arm", decision.send_at)
    return Verdict(profile.id, arm, "planned", decision.reason, decision.send_at)
