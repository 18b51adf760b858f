"""Off-policy estimates from logged propensities recover a known click-through."""

from __future__ import annotations

import numpy as np
import pandas as pd

from newsletter.report.ope import evaluate_popular, popularity_rankings, target_choices


def _logs(n: int, *, seed: int, ctr: dict[int, float]) -> pd.DataFrame:
    """Exploration slots that chose uniformly among items 1..4 (propensity 1/4), plus the
    popularity scores the run logged (item 3 is the most popular)."""
    rng = np.random.default_rng(seed)
    items = rng.integers(1, 5, n)
    clicked = rng.random(n) < np.vectorize(ctr.get)(items)
    explore = pd.DataFrame(
        {
            "message_id": np.arange(n),
            "run_id": 1,
            "subscriber_id": np.arange(n) % (n // 2) + 1,
            "arm": "personalized",
            "position": 7,
            "item_id": items,
            "source": "explore",
            "propensity": 0.25,
            "score": 0.0,
            "clicked": clicked.astype(int),
        }
    )
    popular = pd.DataFrame(
        {
            "message_id": n + np.arange(4),
            "run_id": 1,
            "subscriber_id": 10**6,
            "arm": "popular",
            "position": np.arange(4),
            "item_id": [3, 1, 4, 2],
            "source": "popularity",
            "propensity": 1.0,
            "score": [9.0, 5.0, 3.0, 1.0],
            "clicked": 0,
        }
    )
    return pd.concat([explore, popular], ignore_index=True)


def test_ips_and_snips_recover_the_popular_items_click_through() -> None:
    ctr = {1: 0.05, 2: 0.02, 3: 0.3, 4: 0.1}
    logs = _logs(20000, seed=1, ctr=ctr)
    est = evaluate_popular(logs, consumed=lambda subs, items, run: set())
    assert est.rounds == 20000 and abs(est.matched - 5000) < 300
    assert est.ips is not None and est.snips is not None
    assert abs(est.ips - 0.3) < 0.02 and abs(est.snips - 0.3) < 0.02
    assert est.ips_low is not None and est.ips_high is not None
    assert est.ips_low < 0.3 < est.ips_high and est.snips_low < 0.3 < est.snips_high  # type: ignore[operator]
    assert abs((est.logged_ctr or 0) - np.mean(list(ctr.values()))) < 0.01


def test_consumed_items_and_earlier_picks_move_the_target_down_the_ranking() -> None:
    logs = _logs(8, seed=2, ctr={1: 0, 2: 0, 3: 0, 4: 0})
    assert popularity_rankings(logs) == {1: [3, 1, 4, 2]}
    explore = logs[logs["source"] == "explore"].copy()
    explore.loc[explore.index[1], "message_id"] = explore["message_id"].iloc[0]
    explore.loc[explore.index[0], "item_id"] = 3  # message 0's first slot took item 3
    subscriber = int(explore["subscriber_id"].iloc[2])
    chosen = target_choices(explore, {1: [3, 1, 4, 2]}, {(subscriber, 3)})
    assert chosen[0] == 3  # the most popular
    assert chosen[1] == 1  # item 3 was taken by the message's earlier exploration slot
    assert chosen[2] == 1  # this subscriber had already read item 3


def test_no_overlap_gives_a_zero_estimate_and_says_so() -> None:
    logs = _logs(400, seed=3, ctr={1: 0.1, 2: 0.1, 3: 0.1, 4: 0.1})
    logs.loc[logs["source"] == "explore", "item_id"] = 1  # the logger never chose item 3
    est = evaluate_popular(logs, consumed=lambda subs, items, run: set())
    assert est.matched == 0 and est.ips == 0.0 and est.snips is None and est.effective_n == 0
