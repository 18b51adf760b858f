"""``newsletter trigger test``: would this campaign fire for this subscriber at this time?

A dry run over what is stored: the rule is evaluated on the subscriber's behaviour of the
last ``LOOKBACK`` before ``at`` (and their signup), then each state due by ``at`` is checked
against cancellation, cooldown and cadence, and the items are chosen -- nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from newsletter.config import Settings
from newsletter.enums import MessageStatus
from newsletter.models import TriggerKind
from newsletter.plan.cadence import zone
from newsletter.plan.decide import Verdict, explain_reason
from newsletter.plan.runs import RunPlan, find_campaign, fit_model
from newsletter.plan.sources import FACTORIES
from newsletter.store import planning as plan_store
from newsletter.store import triggers as store
from newsletter.triggers import rules
from newsletter.triggers.engine import cooling, merge_contexts, rule_of, trigger_plan, verdicts
from newsletter.triggers.items import Picker, choose

LOOKBACK = timedelta(days=7)


@dataclass
class DryRun:
    """The answer: whether it fires, when, the items and reasons -- or why not."""

    campaign: str
    subscriber_id: int
    at: datetime
    fires: bool
    lines: list[str] = field(default_factory=list)


def _candidate_states(engine: Any, rule: Any, sid: int, at: datetime) -> list[rules.NewState]:
    behaviour = store.subscriber_behaviour(engine, subscriber_id=sid, start=at - LOOKBACK, end=at)
    if rule.kind == TriggerKind.welcome:
        joined = store.subscriber_signup(engine, subscriber_id=sid)
        return rules.welcome_states(rule, [joined] if joined else [])
    if rule.kind == TriggerKind.abandoned_cart:
        cancels = rules.cart_cancels(behaviour)
        delay = timedelta(hours=rule.delay_hours)
        return [
            s
            for s in rules.cart_states(rule, behaviour)
            if not any(
                c[1] == s.context["item_id"] and s.due_at - delay <= c[2] <= s.due_at
                for c in cancels
            )
        ]
    reads = {sid: [(b[1], b[3]) for b in behaviour if b[2] == "read"]}
    topics = store.item_topics(engine, ids=sorted({b[1] for b in behaviour}))
    return rules.topic_states(rule, behaviour, reads=reads, topics=topics)


def _picks(
    engine: Any, plan: RunPlan, verdict: Verdict, context: dict[str, Any], settings: Settings
) -> list[str]:
    """The lines naming the items a firing would send, with their reasons."""
    config = plan.campaign_config
    assert config.trigger is not None
    model = fit_model(engine, plan, FACTORIES[config.ranker])
    picker = Picker(model, now=plan.prepared_at, fresh_days=config.fresh_days)
    sid = verdict.subscriber_id
    tz = zone(plan_store.profiles(engine, ids=[sid])[0].timezone, settings.default_timezone)
    user = int(model.user_index([sid])[0])
    slots = choose(
        picker,
        kind=config.trigger.kind,
        arm=verdict.arm,
        user=user,
        context=context,
        n=config.n_items,
        tz=tz,
    )
    return [
        f"  {k}. [{slot.section}] {picker.titles([slot.item])[0]} — {slot.reason_text}"
        for k, slot in enumerate(slots, start=1)
    ]


def dry_run(
    engine: Any, *, campaign: str, subscriber_id: int, at: datetime, settings: Settings
) -> DryRun:
    """Evaluate `campaign` for one subscriber at `at` without writing anything."""
    camp = find_campaign(engine, campaign)
    config, rule = rule_of(camp)
    out = DryRun(camp.name, subscriber_id, at, False)
    states = _candidate_states(engine, rule, subscriber_id, at)
    due = [s for s in states if s.due_at <= at]
    later = sorted(s.due_at for s in states if s.due_at > at)
    if not due:
        out.lines.append(f"Does not fire at {at.isoformat()}: no {rule.kind} condition is met.")
        if later:
            out.lines.append(
                f"It would fire at {later[0].isoformat()} (nothing cancels it by then)."
            )
        return out
    plan = trigger_plan(camp, config, run_id=0, now=at, settings=settings)
    ids = [subscriber_id]
    found = verdicts(engine, plan, config, ids, cooling(engine, camp, rule, ids, at))
    if not found:
        out.lines.append(f"Does not fire: no subscriber {subscriber_id}.")
        return out
    verdict, context = found[0], merge_contexts(due)[subscriber_id]
    out.lines.append(
        f"Condition met: {rules.label(rule, context)} (due {due[0].due_at.isoformat()})."
    )
    if verdict.status != MessageStatus.planned:
        reason = verdict.reason
        out.lines.append(f"Suppressed: {explain_reason(reason, config)} ({reason}).")
        return out
    picks = _picks(engine, plan, verdict, context, settings)
    out.fires = bool(picks)
    out.lines.append(f"Fires: {verdict.arm} arm, sent at {verdict.planned_for.isoformat()}.")
    out.lines.extend(picks)
    return out
