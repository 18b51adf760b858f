"""The closed loop: a hidden world and the real pipeline, week after week.

``simulate(engine=..., config=...)`` builds the world (:mod:`newsletter.simulate.truth`),
loads its history into the database through the store's ingest path, creates a weekly
digest campaign with a popularity holdout, and then every week: publishes new items and
sign-ups and a week of site behaviour (ingested like a sync), plans, renders and delivers
the digest through the real pipeline into a memory transport, lets every recipient react
(people, Apple's proxy, link scanners) by requesting the real tracking routes, and scores
what each arm sent against the hidden truth (mean hidden utility per slot, and an oracle
that sends each person the best items there were). Everything is seeded by ``config.seed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.simulate import adapters, behaviour, recipients
from newsletter.simulate.params import WorldParams
from newsletter.simulate.truth import DAY, HiddenWorld
from newsletter.store.reporting import sent_slots

CAMPAIGN = "weekly-digest"
FIRST_SEND = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # a Monday morning
WEEK = 7 * DAY
TIMEZONES = ("Europe/London", "Europe/Berlin", "America/New_York", "UTC")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate: the world, its size, how long, the seed and the campaign's policy."""

    world: WorldParams
    subscribers: int
    weeks: int
    seed: int = 7
    explore: float = 0.15
    exploration_policy: str = "thompson"
    workers: int = 2
    ranker: str = "hybrid"  # the campaign's ranker (plan/campaigns.py): hybrid or clicks


@dataclass
class WeekResult:
    """One simulated week as the hidden truth sees it."""

    week: int
    run_id: int
    delivered: dict[str, int]
    true_clicks: dict[str, int]  # messages a person really clicked, per arm
    utility: dict[str, float]  # mean hidden utility of a sent slot, per arm
    oracle: float  # mean hidden utility of the best possible slots
    requests: dict[str, int]
    seconds: dict[str, float]


@dataclass
class SimulationResult:
    config: SimulationConfig
    settings: Settings
    weeks: list[WeekResult] = field(default_factory=list)


def _noop(_: str) -> None:
    return None


def simulation_settings(config: SimulationConfig, database_url: str) -> Settings:
    """Settings of a simulated publisher (its own key, base URL and sender)."""
    w = config.world.world
    return Settings(
        database_url=database_url,
        secret_key=f"simulation-only-key-{config.seed}-not-for-production",
        base_url=w.tracking_url,
        sender=w.sender,
        smtp_url="memory:",
    )


def _subscriber_rows(world: HiddenWorld, users: np.ndarray) -> list[dict[str, Any]]:
    p = world.people
    return [
        {
            "subscriber_key": f"reader-{u + 1}",
            "email": f"reader{u + 1}@{'gone' if p.dead[u] else 'mail'}.example.com",
            "name": f"Reader {u + 1}",
            "timezone": TIMEZONES[u % len(TIMEZONES)],
            "topics": "|".join(p.declared[u]),
            "created_at": float(p.joined[u]),
        }
        for u in users.tolist()
    ]


def _item_rows(world: HiddenWorld, items: np.ndarray) -> list[dict[str, Any]]:
    c, base = world.items, world.params.world.url.rstrip("/")
    return [
        {
            "item_key": f"item-{i + 1}",
            "title": c.titles[i],
            "url": f"{base}/{c.topics[i][0]}/{i + 1}",
            "summary": c.summaries[i],
            "image_url": f"{base}/images/{i + 1}.jpg",
            "topics": "|".join(c.topics[i]),
            "published_at": float(c.published[i]),
        }
        for i in items.tolist()
    ]


def _interaction_rows(rows: behaviour.SiteRows) -> list[dict[str, Any]]:
    return [
        {
            "subscriber_key": f"reader-{u + 1}",
            "item_key": f"item-{i + 1}",
            "kind": k,
            "occurred_at": float(t),
        }
        for u, i, k, t in zip(
            rows.users.tolist(),
            rows.items.tolist(),
            rows.kinds.tolist(),
            rows.times.tolist(),
            strict=True,
        )
    ]


class Loop:
    """The state of one simulation between weeks."""

    def __init__(self, engine: Engine, config: SimulationConfig, settings: Settings) -> None:
        self.engine, self.config, self.settings = engine, config, settings
        self.world = HiddenWorld(config.world, seed=config.seed, start=FIRST_SEND.timestamp())
        self.pending = behaviour.SiteRows.empty()  # click-driven site rows for the next sync

    def _sync(
        self, *, users: np.ndarray, items: np.ndarray, rows: behaviour.SiteRows, now: float
    ) -> None:
        when = datetime.fromtimestamp(now, UTC)
        adapters.ingest(self.engine, "subscribers", _subscriber_rows(self.world, users), now=when)
        adapters.ingest(self.engine, "items", _item_rows(self.world, items), now=when)
        rows = behaviour.SiteRows.concat([self.pending, rows])
        keep = rows.times < now
        self.pending = behaviour.SiteRows(
            *(getattr(rows, f)[~keep] for f in ("users", "items", "kinds", "times"))
        )
        kept = behaviour.SiteRows(
            *(getattr(rows, f)[keep] for f in ("users", "items", "kinds", "times"))
        )
        adapters.ingest(self.engine, "interactions", _interaction_rows(kept), now=when)

    def history(self) -> None:
        """The world before the first digest: catalogue, subscribers, weeks of site reading."""
        c, r = self.config.world.catalogue, self.config.world.reading
        first = FIRST_SEND.timestamp()
        begin = first - r.history_weeks * WEEK
        rng = self.world.rng("history")
        span = min(c.shelf_life_days, 365.0) * DAY
        items = self.world.publish(c.initial_items, start=first - span, end=first, rng=rng)
        users = self.world.sign_up(self.config.subscribers, at=begin - 30 * DAY, rng=rng)
        rows = behaviour.site_reads(self.world, start=begin, days=r.history_weeks * 7, week=-1)
        self._sync(users=users, items=items, rows=rows, now=first)

    def campaign(self) -> None:
        from newsletter.store.campaigns import upsert_campaign

        e = self.config.world.experiment
        upsert_campaign(
            self.engine,
            name=CAMPAIGN,
            template_name="digest",
            segment_name="everyone",
            config={
                "n_items": e.n_items,
                "exploration_share": self.config.explore,
                "exploration_policy": self.config.exploration_policy,
                "ranker": self.config.ranker,
                "arms": {"popular": e.popular_share, "control": e.control_share},
            },
            now=FIRST_SEND,
        )

    def new_week(self, week: int) -> None:
        """Items, sign-ups, drifting tastes and a week of site behaviour before a send."""
        c, s = self.config.world.catalogue, self.config.world.subscribers
        now = FIRST_SEND.timestamp() + week * WEEK
        rng = self.world.rng("week", week)
        items = self.world.publish(c.items_per_week, start=now - WEEK, end=now, rng=rng)
        joining = int(rng.poisson(s.new_per_week * self.config.subscribers))
        users = self.world.sign_up(joining, at=now - WEEK + DAY / 2, rng=rng)
        self.world.drift(rng)
        rows = behaviour.site_reads(self.world, start=now - WEEK, days=7, week=week)
        self._sync(users=users, items=items, rows=rows, now=now)

    def send(self, week: int) -> WeekResult:
        """Deliver this week's digest, let everyone react, and score it against the truth."""
        clock: dict[str, float] = {}
        tick = time.perf_counter()
        now = FIRST_SEND + timedelta(days=7 * week)
        dead = np.flatnonzero(self.world.people.dead & ~self.world.people.left)
        bounce = [f"reader{u + 1}@gone.example.com" for u in dead.tolist()]
        sent = adapters.send_run(
            self.engine,
            campaign=CAMPAIGN,
            now=now,
            settings=self.settings,
            read=partial(recipients.read_message, settings=self.settings),
            bounce=bounce,
            workers=self.config.workers,
        )
        clock["pipeline"] = time.perf_counter() - tick
        clock["plan"] = sent.plan_seconds
        tick = time.perf_counter()
        reactions = self._react(sent.run_id, week)
        requests = recipients.plan_requests(reactions, sent.inboxes, people=self.world.people)
        clock["world"] = time.perf_counter() - tick
        tick = time.perf_counter()
        outcome = recipients.make_requests(
            self.engine, settings=self.settings, requests=requests, workers=self.config.workers
        )
        clock["tracking"] = time.perf_counter() - tick
        gone = {int(m) for m in outcome.unsubscribed}
        users = reactions.user[np.isin(reactions.message_id, list(gone))]
        self.pending = behaviour.SiteRows.concat(
            [self.pending, behaviour.settle(self.world, reactions, unsubscribed=users)]
        )
        self.world.people.left[dead] = True
        return self._score(week, sent.run_id, reactions, outcome, clock, now.timestamp())

    def _react(self, run_id: int, week: int) -> behaviour.Reactions:
        # Ordered by subscriber, then position: message ids depend on which shard wrote first.
        rows = sorted(sent_slots(self.engine, run_id=run_id), key=lambda r: (r[1], r[5]))
        mids = np.array([r[0] for r in rows], dtype=np.int64)
        keys = [str(r[2]) for r in rows]
        user = np.array([int(k.removeprefix("reader-")) - 1 for k in keys], dtype=np.int64)
        item = np.array([int(str(r[7]).removeprefix("item-")) - 1 for r in rows], dtype=np.int64)
        position = np.array([r[5] for r in rows], dtype=np.int64)
        starts = np.flatnonzero(np.r_[True, mids[1:] != mids[:-1]])
        slot_message = np.cumsum(np.r_[True, mids[1:] != mids[:-1]]) - 1
        first = starts
        sent_at = np.array([r[4].timestamp() for r in rows])[first]  # type: ignore[attr-defined]
        arms = np.array([str(r[3]) for r in rows], dtype=object)[first]
        return behaviour.react(
            self.world,
            message_id=mids[first],
            user=user[first],
            arm=arms,
            sent_at=sent_at,
            slot_message=slot_message,
            slot_position=position,
            slot_item=item,
            week=week,
        )

    def _score(
        self,
        week: int,
        run_id: int,
        r: behaviour.Reactions,
        outcome: recipients.Outcome,
        clock: dict[str, float],
        now: float,
    ) -> WeekResult:
        tick = time.perf_counter()
        arms = sorted(set(r.arm.tolist()))
        clicked = np.zeros(len(r.message_id), bool)
        clicked[r.slot_message[r.clicked]] = True
        slot_arm = r.arm[r.slot_message]
        oracle = self.world.oracle(r.user, now, self.config.world.experiment.n_items)
        clock["truth"] = time.perf_counter() - tick
        return WeekResult(
            week=week,
            run_id=run_id,
            delivered={a: int((r.arm == a).sum()) for a in arms},
            true_clicks={a: int(clicked[r.arm == a].sum()) for a in arms},
            utility={a: float(r.slot_utility[slot_arm == a].mean()) for a in arms},
            oracle=float(oracle.mean()) if len(oracle) else 0.0,
            requests=dict(outcome.statuses),
            seconds={k: round(v, 2) for k, v in clock.items()},
        )


def simulate(
    *, engine: Engine, config: SimulationConfig, database_url: str, progress: Progress = _noop
) -> SimulationResult:
    """Run the whole simulation on a migrated, empty database; returns the truth per week."""
    settings = simulation_settings(config, database_url)
    loop = Loop(engine, config, settings)
    result = SimulationResult(config=config, settings=settings)
    tick = time.perf_counter()
    loop.history()
    loop.campaign()
    progress(f"history loaded ({time.perf_counter() - tick:.1f} s)")
    for week in range(config.weeks):
        tick = time.perf_counter()
        if week:
            loop.new_week(week)
        sync = time.perf_counter() - tick
        outcome = loop.send(week)
        outcome.seconds["sync"] = round(sync, 2)
        result.weeks.append(outcome)
        progress(
            f"week {week + 1}/{config.weeks}: run {outcome.run_id}, delivered "
            f"{sum(outcome.delivered.values())}, seconds {outcome.seconds}"
        )
    return result
