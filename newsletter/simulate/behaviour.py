"""What simulated people do: read on the site every day, and react to each digest they get.

``site_reads`` draws a week of site behaviour day by day: each subscriber visits
Poisson(``visits_per_week`` x activity / 7) times a day and reads an item drawn in proportion
to its hidden utility times its homepage exposure (``quality ** homepage_boost``), so reads
are heavy-tailed and follow freshness. ``react`` decides, for every delivered message, who
opens it (and when), which slots a person clicks (examination falls with position), who
unsubscribes (more likely after irrelevant digests in a row: fatigue), which pixels Apple's
proxy prefetches and which messages a link scanner sweeps. All draws are vectorised; the
requests themselves are made by :mod:`newsletter.simulate.recipients`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from newsletter.simulate.truth import DAY, HiddenWorld

Array = np.ndarray
HOUR = 3600.0


@dataclass(frozen=True)
class SiteRows:
    """Behaviour rows for the publisher's database: aligned arrays (user, item, kind, time)."""

    users: Array
    items: Array
    kinds: Array
    times: Array

    @classmethod
    def empty(cls) -> SiteRows:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, np.zeros(0, dtype=object), np.zeros(0))

    def __len__(self) -> int:
        return len(self.users)

    @staticmethod
    def concat(parts: list[SiteRows]) -> SiteRows:
        parts = [p for p in parts if len(p)] or [SiteRows.empty()]
        return SiteRows(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in SiteRows.__annotations__)
        )


def _sample_rows(weights: Array, counts: Array, rng: np.random.Generator) -> tuple[Array, Array]:
    """Per row r, counts[r] column draws proportional to weights[r] (rows with no weight skip)."""
    totals = weights.sum(axis=1)
    rows = np.repeat(np.arange(len(counts)), np.where(totals > 0, counts, 0))
    if len(rows) == 0:
        return rows, rows
    cumulative = np.cumsum(weights, axis=1)
    targets = rng.random(len(rows)) * totals[rows]
    cols = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), 4096):
        part = slice(start, start + 4096)
        cols[part] = (cumulative[rows[part]] < targets[part, None]).sum(axis=1)
    return rows, np.minimum(cols, weights.shape[1] - 1)


def _day_reads(world: HiddenWorld, start: float, rng: np.random.Generator) -> SiteRows:
    people, r = world.people, world.params.reading
    end = start + DAY
    here = np.flatnonzero((people.joined <= start) & (people.activity > 0))
    counts = rng.poisson(r.visits_per_week * people.activity[here] / 7.0)
    users = here[counts > 0]
    counts = counts[counts > 0]
    items = world.live(end)
    items = items[world.items.published[items] < end]
    if len(users) == 0 or len(items) == 0:
        return SiteRows.empty()
    exposure = np.power(world.items.quality[items], r.homepage_boost)
    parts = []
    for lo in range(0, len(users), 2048):
        block = world.utility_block(users[lo : lo + 2048], items, start + DAY / 2) * exposure
        rows, cols = _sample_rows(block, counts[lo : lo + 2048], rng)
        pairs = np.unique(np.stack([users[lo : lo + 2048][rows], items[cols]]), axis=1)
        parts.append(pairs)
    pairs = np.concatenate(parts, axis=1)
    published = world.items.published[pairs[1]]
    begin = np.maximum(start, published)
    times = begin + rng.random(pairs.shape[1]) * (end - begin)
    return SiteRows(pairs[0], pairs[1], np.full(pairs.shape[1], "view", dtype=object), times)


def _extra_kinds(world: HiddenWorld, views: SiteRows, rng: np.random.Generator) -> SiteRows:
    """Reads, likes, carts and purchases that follow some views (a few seconds later)."""
    r = world.params.reading
    n = len(views)
    read = rng.random(n) < r.read_share
    like = rng.random(n) < r.like_share
    cart = rng.random(n) < r.cart_share
    purchase = cart & (rng.random(n) < r.purchase_share)
    parts = [views]
    for mask, kind, delay in ((read, "read", 40), (like, "like", 90), (cart, "cart", 60)):
        parts.append(
            SiteRows(
                views.users[mask],
                views.items[mask],
                np.full(int(mask.sum()), kind, dtype=object),
                views.times[mask] + delay,
            )
        )
    parts.append(
        SiteRows(
            views.users[purchase],
            views.items[purchase],
            np.full(int(purchase.sum()), "purchase", dtype=object),
            views.times[purchase] + 300,
        )
    )
    return SiteRows.concat(parts)


def site_reads(world: HiddenWorld, *, start: float, days: int, week: int) -> SiteRows:
    """`days` days of site behaviour from `start`; consumption is remembered by the world."""
    rng = world.rng("site", week)
    parts = []
    for day in range(days):
        views = _day_reads(world, start + day * DAY, rng)
        world.consume(views.users, views.items, views.times)
        parts.append(_extra_kinds(world, views, rng))
    return SiteRows.concat(parts)


@dataclass(frozen=True)
class Reactions:
    """What happens to each delivered message (per-message arrays) and each slot (per-slot)."""

    message_id: Array
    user: Array
    arm: Array
    sent_at: Array
    opened: Array  # a person opened it
    open_time: Array
    pixel: Array  # the person's client fetched the pixel when they opened
    mpp_time: Array  # Apple's proxy prefetch time (nan: not an MPP reader)
    scan_time: Array  # when a link scanner swept it (nan: no scanner)
    unsubscribe: Array
    unsubscribe_time: Array
    best: Array  # the best slot's hidden utility at send time
    slot_message: Array  # per slot: index into the message arrays
    slot_position: Array
    slot_item: Array
    slot_utility: Array  # hidden utility at send time
    clicked: Array  # a person clicked the slot
    click_time: Array


def _best_per_message(slot_message: Array, values: Array, n: int) -> Array:
    out = np.zeros(n)
    np.maximum.at(out, slot_message, values)
    return out


def react(
    world: HiddenWorld,
    *,
    message_id: Array,
    user: Array,
    arm: Array,
    sent_at: Array,
    slot_message: Array,
    slot_position: Array,
    slot_item: Array,
    week: int,
) -> Reactions:
    """Draw every person's and machine's reaction to the delivered messages of one run."""
    rng = world.rng("react", week)
    e, m, people = world.params.email, world.params.machines, world.people
    n = len(message_id)
    utility = world.utility(user[slot_message], slot_item, sent_at[slot_message])
    best = _best_per_message(slot_message, utility, n)
    fatigue = people.fatigue[user]
    chance = np.minimum(0.95, e.open_rate * np.sqrt(people.activity[user]))
    chance *= np.maximum(0.4, 1.0 - e.fatigue_open_penalty * fatigue)
    opened = rng.random(n) < chance
    open_time = sent_at + np.minimum(rng.lognormal(np.log(4 * HOUR), 1.1, n), 6 * DAY)
    pixel = opened & ~people.mpp[user] & ~people.images_blocked[user]
    mpp_time = np.where(people.mpp[user], sent_at + rng.uniform(30, 900, n), np.nan)
    low, high = m.scanner_delay_seconds
    scan_time = np.where(people.scanner[user], sent_at + rng.uniform(low, high, n), np.nan)
    seen = opened[slot_message]
    later = open_time[slot_message]
    look = np.power(e.position_decay, slot_position)
    p_click = look * world.utility(user[slot_message], slot_item, later)
    clicked = seen & (rng.random(len(slot_item)) < p_click)
    click_time = later + rng.uniform(15, 900, len(slot_item))
    irrelevant = best < e.irrelevant_below
    tired = np.where(irrelevant, fatigue + 1, 0.0)
    unsubscribe = opened & (rng.random(n) < e.unsubscribe_base + e.fatigue_unsubscribe * tired)
    return Reactions(
        message_id=message_id,
        user=user,
        arm=arm,
        sent_at=sent_at,
        opened=opened,
        open_time=open_time,
        pixel=pixel,
        mpp_time=mpp_time,
        scan_time=scan_time,
        unsubscribe=unsubscribe,
        unsubscribe_time=open_time + rng.uniform(30, 600, n),
        best=best,
        slot_message=slot_message,
        slot_position=slot_position,
        slot_item=slot_item,
        slot_utility=utility,
        clicked=clicked,
        click_time=click_time,
    )


def settle(world: HiddenWorld, reactions: Reactions, *, unsubscribed: Array) -> SiteRows:
    """Apply a run's reactions to the world: fatigue, who left, what clicks led to on the site.

    `unsubscribed` holds the users whose unsubscribe the tracking service confirmed. Returns
    the site rows the clicks produced (a view on landing, sometimes a purchase), which the
    publisher's database receives with the next sync.
    """
    r, people = reactions, world.people
    opened_users = r.user[r.opened]
    irrelevant = r.best[r.opened] < world.params.email.irrelevant_below
    people.fatigue[opened_users] = np.where(irrelevant, people.fatigue[opened_users] + 1, 0.0)
    people.left[unsubscribed] = True
    users = r.user[r.slot_message[r.clicked]]
    items = r.slot_item[r.clicked]
    times = r.click_time[r.clicked] + 5
    world.consume(users, items, times)
    buy = world.rng("buy", int(r.sent_at[0] // (7 * DAY)) if len(r.sent_at) else 0)
    purchase = buy.random(len(users)) < world.params.email.purchase_after_click
    views = SiteRows(users, items, np.full(len(users), "view", dtype=object), times)
    bought = SiteRows(
        users[purchase],
        items[purchase],
        np.full(int(purchase.sum()), "purchase", dtype=object),
        times[purchase] + 240,
    )
    return SiteRows.concat([views, bought])
