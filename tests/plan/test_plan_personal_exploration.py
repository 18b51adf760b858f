"""Exploration slots mix the Thompson bank with the reader's own next candidates.

A ranker that rates items 1..29 in that order for every reader, and a bank over items
10..29 of which 10..14 were already shown 500 times. Without exploration every message shows
items 1..4, so the reader's own exploration candidates are the rarely shown 15..29 (never 1..4
nor the well-known 10..14); each exploration slot logs the mixture's probability, and those
probabilities match how often each item is picked.
"""

from __future__ import annotations

import numpy as np

from newsletter.plan.campaigns import CampaignConfig
from newsletter.plan.exploration import ThompsonBank, thompson_bank
from newsletter.plan.fill import BANK_SHARE, fill_personalized, personal_candidates
from newsletter.plan.slots import ModelSlotSource, history_matrix
from newsletter.recommend.base import DAY, InteractionData, ItemCatalog, ScoringModel
from newsletter.recommend.popular import Popularity

NOW = 1_800_000_000.0
N_ITEMS = 30
READERS = 6000


class Ranked(ScoringModel):
    """Every reader ranks item i above item i + 1."""

    name = "ranked"
    n_items = N_ITEMS

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.tile(-np.arange(N_ITEMS, dtype=np.float64), (len(users), 1))


def _setup() -> tuple[ModelSlotSource, CampaignConfig, np.ndarray]:
    catalog = ItemCatalog(
        titles=[f"Story {i}" for i in range(N_ITEMS)],
        texts=["plain"] * N_ITEMS,
        topics=[[] for _ in range(N_ITEMS)],
        published_at=np.full(N_ITEMS, NOW - 2 * DAY),
    )
    users = np.arange(READERS)
    data = InteractionData(
        READERS,
        N_ITEMS,
        users,
        np.zeros(READERS, dtype=np.int64),  # everyone read item 0
        np.array(["read"] * READERS),
        np.full(READERS, NOW - DAY),
    )
    history = history_matrix(READERS, N_ITEMS, data.user_idx, data.item_idx)
    source = ModelSlotSource(
        ranker=Ranked(),
        popularity=Popularity().fit(data, catalog, now=NOW),
        catalog=catalog,
        history=history,
        user_topics=[[] for _ in range(READERS)],
        now=NOW,
    )
    config = CampaignConfig.model_validate(
        {
            "n_items": 4,
            "exploration_share": 0.25,
            "sections": [{"title": "Top picks", "kind": "top_picks", "count": 4}],
        }
    )
    return source, config, users


def _bank(seed: int) -> ThompsonBank:
    exposures = np.r_[np.full(5, 500.0), np.zeros(15)]
    return thompson_bank(
        items=np.arange(10, 30),
        clicks=exposures * 0.02,
        exposures=exposures,
        rng=np.random.default_rng(seed),
        draws=400,
        max_exposures=200,
    )


def test_personal_candidates_are_rarely_shown_items_the_message_would_not_hold() -> None:
    bank = _bank(1)
    np.testing.assert_array_equal(bank.rarely_shown(), np.arange(15, 30))
    ranked = np.tile(np.arange(1, 30), (2, 1))
    ranked[1] = [16, *range(1, 16), *range(17, 30)]  # the second reader's best is a rare item
    source, config, users = _setup()
    unexplored = fill_personalized(
        source,
        users[:2],
        config=config.model_copy(update={"exploration_share": 0.0}),
        bank=bank,
        history=source.history,
        means=np.zeros(N_ITEMS),
        rng=np.random.default_rng(0),
    )
    assert [s.item for s in unexplored[0]] == [1, 2, 3, 4]
    out = personal_candidates(ranked, bank, unexplored)
    assert out.shape == (2, 16)
    np.testing.assert_array_equal(out[0], [*range(15, 30), -1])
    np.testing.assert_array_equal(out[1], [16, 15, *range(17, 30), -1])


def test_exploration_slots_log_the_mixture_probability_of_their_pick() -> None:
    source, config, users = _setup()
    bank = _bank(2)
    messages = fill_personalized(
        source,
        users,
        config=config,
        bank=bank,
        history=source.history,
        means=np.zeros(N_ITEMS),
        rng=np.random.default_rng(3),
    )
    assert all([s.item for s in m[:3]] == [1, 2, 3] for m in messages)
    explored = [m[3] for m in messages]
    assert all(s.source == "explore" for s in explored)
    picks = np.array([s.item for s in explored])
    props = np.array([s.propensity for s in explored])
    bank_share = {i: float(np.mean(bank.top[:, 0] == i)) for i in range(10, 30)}
    for item in range(10, 30):
        personal = (1 - BANK_SHARE) / 15 if item >= 15 else 0.0
        expected = BANK_SHARE * bank_share[item] + personal
        if expected == 0:
            assert not (picks == item).any()
            continue
        np.testing.assert_allclose(props[picks == item], expected)
        assert abs(np.mean(picks == item) - expected) < 0.015, item
    assert np.isin(picks, np.arange(10, 30)).all()
