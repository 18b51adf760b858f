"""Evaluate behaviour into pending trigger states, and fire the states that are due.

:func:`evaluate` reads the interactions and subscribers stored since its cursors (whatever
wrote them: the events API, CSV import, sync) and, for every active trigger campaign, stores
the pending states its rule yields and cancels the carts a purchase answered. Behaviour
whose state would be due more than ``STALE`` ago is not turned into a state (a first run on
an old database does not answer last year's carts).

:func:`fire_due` answers the due states of one campaign with one run for ``now`` (unique
per campaign and time, so two processes firing at once share it): per subscriber a
``cooldown`` check, then cadence (quiet hours, caps across triggers and digests, preferences,
suppression) and the digest experiment's arm; every verdict is a message -- planned, or
skipped with its reason, so ``newsletter why`` explains a suppressed trigger. States are
claimed in the transaction that writes the messages.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from newsletter.config import Settings
from newsletter.models import Campaign, TriggerKind
from newsletter.plan.cadence import zone
from newsletter.plan.campaigns import CampaignConfig, TriggerRule, parse_campaign_config
from newsletter.plan.decide import Verdict, decide
from newsletter.plan.experiments import DEFAULT_SALT, assign_arms, experiment_name
from newsletter.plan.fill import PlannedSlot
from newsletter.plan.planner import shard_frames
from newsletter.plan.runs import RunModel, RunPlan, fit_model, load_model
from newsletter.plan.sources import FACTORIES
from newsletter.recommend import artifact
from newsletter.store import artifacts
from newsletter.store import planning as plan_store
from newsletter.store import triggers as store
from newsletter.triggers import rules
from newsletter.triggers.items import Picker, choose

STALE = timedelta(hours=24)
BATCH = 20_000
MODEL_MAX_AGE = timedelta(hours=6)
KINDS = ("cart", "purchase", "read")


class TriggerError(ValueError):
    """A trigger campaign cannot be evaluated; the message names it and the fix."""


def rule_of(campaign: Campaign) -> tuple[CampaignConfig, TriggerRule]:
    """The campaign's validated config and its trigger rule, or a clear TriggerError."""
    config = parse_campaign_config(campaign.config, campaign=campaign.name)
    if config.trigger is None:
        raise TriggerError(
            f"campaign {campaign.name!r} is a trigger campaign without a trigger rule: add "
            '"trigger": {"kind": "abandoned_cart" | "topic_reads" | "welcome"} to its config '
            "(see docs/triggers.md)"
        )
    return config, config.trigger


@dataclass
class Evaluation:
    """What one evaluation pass read and stored."""

    interactions: int = 0
    subscribers: int = 0
    states: int = 0
    cancelled: int = 0
    errors: list[str] = field(default_factory=list)


def _campaign_rules(engine: Any, out: Evaluation) -> list[tuple[Campaign, TriggerRule]]:
    found = []
    for campaign in store.trigger_campaigns(engine):
        try:
            found.append((campaign, rule_of(campaign)[1]))
        except ValueError as exc:
            out.errors.append(str(exc))
    return found


def _states_for(
    engine: Any, rule: TriggerRule, behaviour: list[rules.Behaviour], joined: list[Any]
) -> list[rules.NewState]:
    if rule.kind == TriggerKind.abandoned_cart:
        return rules.cart_states(rule, behaviour)
    if rule.kind == TriggerKind.welcome:
        return rules.welcome_states(rule, joined)
    reads = [b for b in behaviour if b[2] == "read"]
    if not reads:
        return []
    window = timedelta(hours=rule.window_hours)
    recent = store.recent_reads(
        engine,
        subscriber_ids=[b[0] for b in reads],
        start=min(b[3] for b in reads) - window,
        end=max(b[3] for b in reads),
    )
    items = {i for rows in recent.values() for i, _ in rows} | {b[1] for b in reads}
    topics = store.item_topics(engine, sorted(items))
    return rules.topic_states(rule, reads, reads=recent, topics=topics)


def evaluate(engine: Any, *, now: datetime, limit: int = BATCH) -> Evaluation:
    """Turn the behaviour stored since the cursors into pending states (and cancellations)."""
    out = Evaluation()
    campaigns = _campaign_rules(engine, out)
    start_i = store.cursor(engine, entity="interaction")
    start_s = store.cursor(engine, entity="subscriber")
    behaviour, last_i = store.interactions_after(engine, after=start_i, kinds=KINDS, limit=limit)
    joined, last_s = store.subscribers_after(engine, after=start_s, limit=limit)
    out.interactions, out.subscribers = last_i - start_i, last_s - start_s
    for campaign, rule in campaigns:
        assert campaign.id is not None
        fresh = [s for s in _states_for(engine, rule, behaviour, joined) if s.due_at >= now - STALE]
        rows = [
            {
                "campaign_id": campaign.id,
                "subscriber_id": s.subscriber_id,
                "dedupe": s.dedupe,
                "kind": s.kind,
                "status": "pending",
                "due_at": s.due_at,
                "context": {**s.context, "label": rules.label(rule, s.context)},
                "created_at": now,
                "updated_at": now,
            }
            for s in fresh
        ]
        out.states += store.add_states(engine, rows=rows)
        if rule.kind == TriggerKind.abandoned_cart:
            out.cancelled += store.cancel_carts(
                engine,
                purchases=rules.cart_cancels(behaviour),
                delay_seconds=rule.delay_hours * 3600,
                now=now,
            )
    store.move_cursor(engine, entity="interaction", to=last_i, rows=len(behaviour), now=now)
    store.move_cursor(engine, entity="subscriber", to=last_s, rows=len(joined), now=now)
    return out


def start_cursors(engine: Any, *, now: datetime) -> None:
    """Start evaluating from what is stored now (history before it fires nothing)."""
    for entity in ("interaction", "subscriber"):
        store.move_cursor(
            engine, entity=entity, to=store.max_id(engine, entity=entity), rows=0, now=now
        )


_MODELS: dict[int, tuple[datetime, RunModel]] = {}


def _model(engine: Any, plan: RunPlan, campaign: Campaign) -> RunModel:
    """A fitted model for the campaign no older than MODEL_MAX_AGE (this process, the
    database, or fitted now and stored with this run)."""
    assert campaign.id is not None
    now = plan.prepared_at
    cached = _MODELS.get(campaign.id)
    if cached is not None and now - cached[0] < MODEL_MAX_AGE:
        return cached[1]
    recent = store.recent_model_run(engine, campaign_id=campaign.id, since=now - MODEL_MAX_AGE)
    if recent is not None:
        model = load_model(engine, run_id=recent[0])
        _MODELS[campaign.id] = (recent[1], model)
        return model
    model = fit_model(engine, plan, FACTORIES[plan.campaign_config.ranker])
    artifacts.save_artifact(
        engine,
        run_id=plan.run_id,
        kind="model",
        version=artifact.FORMAT,
        content=artifact.dumps(model),
        now=now,
    )
    _MODELS[campaign.id] = (now, model)
    return model


@dataclass
class Firing:
    """One firing of a trigger campaign: its run and its messages by outcome."""

    campaign: str
    run_id: int
    planned: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def _verdicts(
    engine: Any,
    plan: RunPlan,
    config: CampaignConfig,
    ids: list[int],
    cooling: dict[int, datetime],
) -> list[Verdict]:
    profiles = plan_store.profiles(engine, ids)
    known = [p.id for p in profiles]
    recorded = plan_store.assignments(engine, plan.experiment, known)
    hashed = assign_arms(known, shares=config.arms, default_salt=plan.default_salt)
    now = plan.prepared_at
    history = plan_store.send_times(
        engine,
        known,
        start=now - timedelta(days=31),
        end=now + timedelta(days=8),
        exclude_run=plan.run_id,
    )
    out = []
    assert config.trigger is not None
    for p, arm in zip(profiles, hashed, strict=True):
        chosen = recorded.get(p.id, str(arm))
        if rules.in_cooldown(config.trigger, last=cooling.get(p.id), now=now):
            out.append(Verdict(p.id, chosen, "skipped", "trigger_cooldown", now))
            continue
        out.append(
            decide(
                p,
                arm=chosen,
                others=history.get(p.id, []),
                config=config,
                kind="trigger",
                scheduled_for=now,
                default_timezone=plan.default_timezone,
            )
        )
    return out


def _contexts(due: list[store.StateRow]) -> dict[int, dict[str, Any]]:
    """Per subscriber, the context of their due states merged (all carted items; the
    latest topic or welcome step)."""
    out: dict[int, dict[str, Any]] = defaultdict(dict)
    for state in due:
        merged = out[state.subscriber_id]
        carts = merged.get("carts", [])
        merged.update(state.context)
        if "item_id" in state.context:
            carts = [*carts, [state.context["item_id"], state.context["carted_at"]]]
        merged["carts"] = carts
    return out


def fire_due(
    engine: Any,
    *,
    campaign: Campaign,
    now: datetime,
    settings: Settings,
    subscriber_id: int | None = None,
) -> Firing | None:
    """Answer the due states of `campaign` (of one subscriber, if given) with the run of
    ``now``; None when nothing is due."""
    config, rule = rule_of(campaign)
    assert campaign.id is not None
    due = store.due_states(engine, campaign_id=campaign.id, now=now, limit=BATCH)
    if subscriber_id is not None:
        due = [s for s in due if s.subscriber_id == subscriber_id]
    if not due:
        return None
    run = plan_store.ensure_run(engine, campaign_id=campaign.id, scheduled_for=now, now=now)
    assert run.id is not None
    salt = settings.experiment_salt or DEFAULT_SALT
    plan = RunPlan(
        run.id,
        campaign.name,
        "trigger",
        dict(campaign.config),
        now,
        now,
        1,
        experiment_name(config.arms, salt),
        salt,
        settings.default_timezone,
        0,
        0,
    )
    ids = sorted({s.subscriber_id for s in due})
    cooling = store.last_answered(
        engine,
        campaign_id=campaign.id,
        subscriber_ids=ids,
        since=now - timedelta(hours=rule.cooldown_hours),
    )
    verdicts = _verdicts(engine, plan, config, ids, cooling)
    contexts = _contexts(due)
    slots: dict[int, list[PlannedSlot]] = {}
    item_ids = np.zeros(0, dtype=np.int64)
    if any(v.status == "planned" for v in verdicts):
        model = _model(engine, plan, campaign)
        picker = Picker(model, now=now, fresh_days=config.fresh_days)
        item_ids = model.item_ids
        timezones = {p.id: p.timezone for p in plan_store.profiles(engine, ids)}
        for v in verdicts:
            if v.status == "planned":
                user = int(model.user_index([v.subscriber_id])[0])
                tz = zone(timezones.get(v.subscriber_id), settings.default_timezone)
                slots[v.subscriber_id] = choose(
                    picker,
                    kind=rule.kind,
                    arm=v.arm,
                    user=user,
                    context=contexts[v.subscriber_id],
                    n=config.n_items,
                    tz=tz,
                )
    messages, slot_frame, assignments = shard_frames(plan, verdicts, slots, item_ids, 0)
    by_sid = dict(zip(messages["subscriber_id"], messages["status"], strict=True))
    why = dict(zip(messages["subscriber_id"], messages["reason"], strict=True))
    reasons = {
        s.id: (None if by_sid[s.subscriber_id] == "planned" else why[s.subscriber_id]) for s in due
    }
    store.fire_states(
        engine,
        run_id=run.id,
        reasons=reasons,
        messages=messages,
        slots=slot_frame,
        assignments=assignments,
        now=now,
    )
    return _settle(engine, campaign.name, run.id, now)


def _settle(engine: Any, name: str, run_id: int, now: datetime) -> Firing:
    """Mark the trigger run planned with its counts."""
    firing = Firing(name, run_id)
    arms: dict[str, int] = defaultdict(int)
    for arm, status, reason, n in plan_store.plan_counts(engine, run_id=run_id):
        if status == "skipped":
            firing.skipped[reason or "unknown"] = firing.skipped.get(reason or "unknown", 0) + n
        else:
            firing.planned += n
            arms[arm] += n
    stats = {"planned": firing.planned, "arms": dict(arms), "skipped": firing.skipped}
    plan_store.finish_run(engine, run_id=run_id, stats=stats, now=now)
    return firing
