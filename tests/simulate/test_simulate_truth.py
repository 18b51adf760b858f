"""The hidden world: seeded, partly revealed by topics, fresh things fade, calibrated clicks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.simulate.behaviour import _sample_rows, react, site_reads
from newsletter.simulate.params import WorldFileError, load_world, shipped_worlds
from newsletter.simulate.truth import DAY, HiddenWorld

START = 1_780_000_000.0


def _world(
    name: str = "news", *, people: int = 2000, items: int = 600, seed: int = 1
) -> HiddenWorld:
    world = HiddenWorld(load_world(name), seed=seed, start=START)
    rng = world.rng("test")
    world.publish(items, start=START - 14 * DAY, end=START, rng=rng)
    world.sign_up(people, at=START - 30 * DAY, rng=rng)
    return world


def test_shipped_worlds_load_and_differ() -> None:
    assert {"news", "shop", "longtail"} <= set(shipped_worlds())
    news, shop, tail = (load_world(n) for n in ("news", "shop", "longtail"))
    assert news.catalogue.half_life_days < 7 < shop.catalogue.half_life_days
    assert shop.catalogue.repeat_share > 0 and shop.reading.purchase_share > 0
    assert tail.catalogue.initial_items > news.catalogue.initial_items
    assert tail.catalogue.topic_reveal < news.catalogue.topic_reveal


def test_a_world_file_sets_only_what_differs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "mine.toml"
    path.write_text("[machines]\napple_mpp_share = 0.5\n", encoding="utf-8")
    mine = load_world(path)
    assert mine.machines.apple_mpp_share == 0.5
    assert mine.email == load_world("news").email
    path.write_text("[machines]\nnot_a_key = 1\n", encoding="utf-8")
    with pytest.raises(WorldFileError, match=r"machines\.not_a_key"):
        load_world(path)
    path.write_text("[machines\n", encoding="utf-8")
    with pytest.raises(WorldFileError, match="not valid TOML"):
        load_world(path)


def test_same_seed_same_world() -> None:
    a, b = _world(seed=4), _world(seed=4)
    assert np.array_equal(a.items.factors, b.items.factors)
    assert a.items.topics == b.items.topics and a.items.titles == b.items.titles
    assert np.array_equal(a.people.taste, b.people.taste)
    assert not np.array_equal(a.people.taste, _world(seed=5).people.taste)


def test_topics_reveal_the_hidden_factors_only_partly() -> None:
    world = _world(items=3000)
    main = world.items.factors.argmax(axis=1)
    labels = np.array(world.topic_names)[world.factor_topic[main]]
    first = np.array([t[0] for t in world.items.topics])
    agree = float(np.mean(first == labels))
    reveal = world.params.catalogue.topic_reveal
    expected = reveal + (1 - reveal) / len(world.topic_names)
    assert abs(agree - expected) < 0.04 and agree < 0.9
    # several hidden factors share one visible label, so a label cannot tell them apart
    assert len(set(world.factor_topic.tolist())) < world.params.catalogue.factors


def test_interest_halves_every_half_life_and_consumed_items_are_not_wanted() -> None:
    world = _world()
    users = np.arange(50)
    items = np.full(50, 599)  # the newest item
    born = world.items.published[599]
    half = world.params.catalogue.half_life_days * DAY
    now, later = (
        world.utility(users, items, born + DAY),
        world.utility(users, items, born + DAY + half),
    )
    uncapped = now < world.params.email.max_click
    assert np.allclose(later[uncapped], now[uncapped] / 2)
    assert np.all(world.utility(users, items, born - 1) == 0)  # not published yet
    world.consume(users[:10], items[:10], np.full(10, born + 60))
    after = world.utility(users, items, born + DAY)
    assert np.all(after[:10] == 0) and np.allclose(after[10:], now[10:])


def test_repeat_buys_come_back_after_their_cycle() -> None:
    world = _world("shop", people=100, items=400)
    item = int(np.flatnonzero(world.items.repeatable)[0])
    users, items = np.arange(5), np.full(5, item)
    t = START + DAY
    world.consume(users, items, np.full(5, t))
    cycle = world.params.catalogue.repeat_days * DAY
    assert np.all(world.utility(users, items, t + DAY) == 0)
    assert np.all(world.utility(users, items, t + cycle + DAY) > 0)


def test_quality_is_heavy_tailed() -> None:
    q = np.sort(_world(items=5000).items.quality)[::-1]
    assert q[: len(q) // 10].sum() / q.sum() > 0.3  # the top tenth holds over 30%


def _digest(world: HiddenWorld, pick: object) -> object:
    n = world.people.n
    rng = np.random.default_rng(0)
    return react(
        world,
        message_id=np.arange(n) + 1,
        user=np.arange(n),
        arm=np.full(n, "popular", dtype=object),
        sent_at=np.full(n, START),
        slot_message=np.repeat(np.arange(n), 8),
        slot_position=np.tile(np.arange(8), n),
        slot_item=np.concatenate([pick(rng) for _ in range(n)]),  # type: ignore[operator]
        week=0,
    )


def _clicked_share(r: object) -> float:
    clicked = np.zeros(len(r.message_id), bool)  # type: ignore[attr-defined]
    clicked[r.slot_message[r.clicked]] = True  # type: ignore[attr-defined]
    return float(clicked.mean())


def test_a_digest_of_this_weeks_items_gets_a_realistic_click_through() -> None:
    """Eight of this week's items at random: 2-6% of messages are clicked by a person; the
    best items there are (by hidden quality and freshness) are clicked far more."""
    world = _world(people=6000)
    items = world.live(START)
    fresh = items[world.items.published[items] > START - 7 * DAY]
    r = _digest(world, lambda rng: rng.choice(fresh, 8, replace=False))
    assert 0.02 <= _clicked_share(r) <= 0.06
    assert not (r.clicked & ~r.opened[r.slot_message]).any()  # nobody clicks unopened mail
    by_position = np.bincount(r.slot_position[r.clicked], minlength=8)
    assert by_position[0] > by_position[7]
    mpp = ~np.isnan(r.mpp_time)
    assert abs(mpp.mean() - world.params.machines.apple_mpp_share) < 0.03
    scan = r.scan_time[~np.isnan(r.scan_time)] - START
    assert scan.min() >= 5 and scan.max() <= 120
    score = world.items.quality[items] * world._freshness(items, START)
    best = items[np.argsort(-score)[:8]]
    assert _clicked_share(_digest(world, lambda rng: best)) > 2 * _clicked_share(r)


def test_site_reads_follow_freshness_and_never_precede_publication() -> None:
    world = _world(people=1500)
    world.publish(300, start=START, end=START + 7 * DAY, rng=world.rng("more"))
    rows = site_reads(world, start=START, days=7, week=0)
    assert len(rows) > 1000
    assert np.all(rows.times >= world.items.published[rows.items])
    age = (rows.times - world.items.published[rows.items]) / DAY
    assert np.median(age[rows.kinds == "view"]) < 4  # news is read while fresh


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(
        st.lists(st.floats(min_value=0, max_value=5), min_size=3, max_size=3),
        min_size=1,
        max_size=6,
    ),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_sampling_respects_counts_and_never_draws_a_zero_weight(
    weights: list[list[float]], seed: int
) -> None:
    matrix = np.array(weights)
    counts = np.full(len(matrix), 4)
    rows, cols = _sample_rows(matrix, counts, np.random.default_rng(seed))
    assert np.all(matrix[rows, cols] > 0)
    expected = np.where(matrix.sum(axis=1) > 0, 4, 0)
    assert np.array_equal(np.bincount(rows, minlength=len(matrix)), expected)


@settings(max_examples=40, deadline=None)
@given(
    user=st.integers(min_value=0, max_value=199),
    item=st.integers(min_value=0, max_value=99),
    days=st.floats(min_value=-30, max_value=400),
)
def test_utility_is_a_probability(user: int, item: int, days: float) -> None:
    world = _WORLD
    p = world.utility(np.array([user]), np.array([item]), START + days * DAY)
    assert 0 <= p[0] <= world.params.email.max_click


_WORLD = _world(people=200, items=100)
