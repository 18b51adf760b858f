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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from newsletter.config import Settings
from newsletter.enums import MessageStatus
from newsletter.models import Campaign, TriggerKind
from newsletter.plan.cadence import zone
from newsletter.plan.campaigns import CampaignConfig, TriggerRule, parse_campaign_config
from newsletter.plan.decide import Verdict, decide
from newsletter.plan.experiments import DEFAULT_SALT, assign_arms, experiment_name
from newsletter.plan.fill import PlannedSlot
from newsletter.plan.planner import shard_frames
from newsletter.plan.runs import RunPlan
from newsletter.store import planning as plan_store
from newsletter.store import triggers as store
from newsletter.triggers import cursor, rules
from newsletter.triggers.items import Picker, choose
from newsletter.triggers.model import trigger_model

STALE = timedelta(hours=24)
BATCH = 20_000
MAX_PASSES = 20  # one evaluation reads at most MAX_PASSES * BATCH rows per entity
KINDS = ("cart", "purchase", "read")
ENTITIES = ("interaction", "event", "subscriber")


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
    topics = store.item_topics(engine, ids=sorted(items))
    return rules.topic_states(rule, reads, reads=recent, topics=topics)


def _behaviour(batches: dict[str, cursor.Batch]) -> list[rules.Behaviour]:
    """Interactions of the trigger kinds, and human clicks on items as ``read`` s."""
    out = [
        (int(sid), int(item), str(kind), at)
        for _, sid, item, kind, at in batches["interaction"].rows
        if kind in KINDS
    ]
    out.extend(
        (int(sid), int(item), "read", at)
        for _, sid, item, kind, at, machine in batches["event"].rows
        if kind == "click" and not machine and item is not None
    )
    return out


def _rows(
    campaign: Campaign, rule: TriggerRule, states: list[rules.NewState], now: datetime
) -> list[dict[str, Any]]:
    assert campaign.id is not None
    return [
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
        for s in states
        if s.due_at >= now - STALE
    ]


def evaluate(
    engine: Any, *, now: datetime, limit: int = BATCH, passes: int = MAX_PASSES
) -> Evaluation:
    """Turn the behaviour stored since the cursors (and rows that committed late below
    them) into pending states and cancellations: `limit` rows per entity and pass, pass
    after pass while a batch came back full (at most `passes`), so a backlog is caught up."""
    out = Evaluation()
    campaigns = _campaign_rules(engine, out)
    for _ in range(passes):
        if not _evaluate_batch(engine, campaigns, now=now, limit=limit, out=out):
            break
    return out


def _evaluate_batch(
    engine: Any,
    campaigns: list[tuple[Campaign, TriggerRule]],
    *,
    now: datetime,
    limit: int,
    out: Evaluation,
) -> bool:
    """One pass of :func:`evaluate`; True when some entity has more rows waiting."""
    batches = {e: cursor.read(engine, entity=e, limit=limit, now=now) for e in ENTITIES}
    behaviour = _behaviour(batches)
    joined = [
        (int(i), created, list(topics or []), str(status))
        for i, created, topics, status in batches["subscriber"].rows
    ]
    out.interactions += len(batches["interaction"].rows) + len(batches["event"].rows)
    out.subscribers += len(joined)
    for campaign, rule in campaigns:
        states = _states_for(engine, rule, behaviour, joined)
        out.states += store.add_states(engine, rows=_rows(campaign, rule, states, now))
        if rule.kind == TriggerKind.abandoned_cart:
            out.cancelled += store.cancel_carts(
                engine,
                purchases=rules.cart_cancels(behaviour),
                delay_seconds=rule.delay_hours * 3600,
                now=now,
            )
    for batch in batches.values():
        cursor.commit(engine, batch, now=now)
    return any(len(b.rows) - b.late >= limit for b in batches.values())


def start_cursors(engine: Any, *, now: datetime) -> None:
    """Start evaluating from what is stored now (history before it fires nothing)."""
    for entity in ENTITIES:
        cursor.start_here(engine, entity=entity, now=now)


@dataclass
class Firing:
    """One firing of a trigger campaign: its run and its messages by outcome."""

    campaign: str
    run_id: int
    planned: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def trigger_plan(
    campaign: Campaign, config: CampaignConfig, *, run_id: int, now: datetime, settings: Settings
) -> RunPlan:
    """The plan of a trigger run at `now` (one shard; the digests' experiment and salt)."""
    salt = settings.experiment_salt or DEFAULT_SALT
    return RunPlan(
        run_id=run_id,
        campaign=campaign.name,
        kind="trigger",
        config=dict(campaign.config),
        scheduled_for=now,
        prepared_at=now,
        shard_count=1,
        experiment=experiment_name(config.arms, salt),
        default_salt=salt,
        default_timezone=settings.default_timezone,
        seed=0,
        members=0,
    )


def verdicts(
    engine: Any,
    plan: RunPlan,
    config: CampaignConfig,
    ids: list[int],
    cooling: dict[int, datetime],
) -> list[Verdict]:
    """Per subscriber: the cooldown, then cadence and preferences, and their sticky arm."""
    profiles = plan_store.profiles(engine, ids=ids)
    known = [p.id for p in profiles]
    recorded = plan_store.assignments(engine, experiment=plan.experiment, ids=known)
    hashed = assign_arms(known, shares=config.arms, default_salt=plan.default_salt)
    now = plan.prepared_at
    history = plan_store.send_times(
        engine,
        ids=known,
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


def merge_contexts(due: Sequence[Any]) -> dict[int, dict[str, Any]]:
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


def cooling(
    engine: Any, campaign: Campaign, rule: TriggerRule, ids: list[int], now: datetime
) -> dict[int, datetime]:
    """When the campaign last answered each of `ids` within its cooldown."""
    assert campaign.id is not None
    since = now - timedelta(hours=rule.cooldown_hours)
    return store.last_answered(engine, campaign_id=campaign.id, subscriber_ids=ids, since=since)


def _slots(
    engine: Any,
    plan: RunPlan,
    campaign: Campaign,
    chosen: list[Verdict],
    contexts: dict[int, dict[str, Any]],
    settings: Settings,
) -> tuple[dict[int, list[PlannedSlot]], Any]:
    """The items of every planned message (and the model's item ids)."""
    config = plan.campaign_config
    assert config.trigger is not None
    planned = [v for v in chosen if v.status == MessageStatus.planned]
    if not planned:
        return {}, np.zeros(0, dtype=np.int64)
    model = trigger_model(engine, plan, campaign)
    picker = Picker(model, now=plan.prepared_at, fresh_days=config.fresh_days)
    ids = [v.subscriber_id for v in planned]
    timezones = {p.id: p.timezone for p in plan_store.profiles(engine, ids=ids)}
    users = model.user_index(ids)
    slots = {}
    for v, user in zip(planned, users, strict=True):
        slots[v.subscriber_id] = choose(
            picker,
            kind=config.trigger.kind,
            arm=v.arm,
            user=int(user),
            context=contexts[v.subscriber_id],
            n=config.n_items,
            tz=zone(timezones.get(v.subscriber_id), settings.default_timezone),
        )
    return slots, model.item_ids


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
    plan = trigger_plan(campaign, config, run_id=run.id, now=now, settings=settings)
    ids = sorted({s.subscriber_id for s in due})
    chosen = verdicts(engine, plan, config, ids, cooling(engine, campaign, rule, ids, now))
    slots, item_ids = _slots(engine, plan, campaign, chosen, merge_contexts(due), settings)
    messages, slot_frame, assignments = shard_frames(plan, chosen, slots, item_ids, 0)
    status = dict(zip(messages["subscriber_id"], messages["status"], strict=True))
    why = dict(zip(messages["subscriber_id"], messages["reason"], strict=True))
    reasons = {
        s.id: (None if status[s.subscriber_id] == MessageStatus.planned else why[s.subscriber_id])
        for s in due
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
        if status == MessageStatus.skipped:
            firing.skipped[reason or "unknown"] = firing.skipped.get(reason or "unknown", 0) + n
        else:
            firing.planned += n
            arms[arm] += n
    stats = {"planned": firing.planned, "arms": dict(arms), "skipped": firing.skipped}
    plan_store.finish_run(engine, run_id=run_id, stats=stats, now=now)
    return firing
