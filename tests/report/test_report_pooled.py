"""Pooled lift over weeks: known answers, a clustered interval, and an honest verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.report.pooled import (
    arm_summaries,
    lift_estimate,
    subscriber_weeks_needed,
    verdict,
)


def _messages(
    *, people: dict[str, int], ctr: dict[str, float], weeks: int, seed: int, sticky: bool = False
) -> pd.DataFrame:
    """Sent messages of `weeks` runs; `sticky`: a subscriber clicks every week or never."""
    rng = np.random.default_rng(seed)
    rows = []
    sid = 0
    for arm, n in people.items():
        for _ in range(n):
            sid += 1
            always = rng.random() < ctr[arm]
            for week in range(weeks):
                click = always if sticky else rng.random() < ctr[arm]
                rows.append(
                    (sid * 100 + week, week + 1, sid, arm, "sent", None, int(click), int(click))
                )
    frame = pd.DataFrame(
        rows,
        columns=[
            "message_id",
            "run_id",
            "subscriber_id",
            "arm",
            "status",
            "reason",
            "human_open",
            "human_click",
        ],
    )
    for name in ("machine_open", "unsubscribe", "complaint", "bounce", "site_active"):
        frame[name] = 0
    frame["any_click"] = frame["human_click"]
    return frame


def test_a_doubled_click_rate_is_a_lift_of_one_with_an_interval_around_it() -> None:
    frame = _messages(
        people={"personalized": 4000, "popular": 4000},
        ctr={"personalized": 0.1, "popular": 0.05},
        weeks=4,
        seed=1,
    )
    est = lift_estimate(frame, metric="human_click")
    assert est is not None and est.lift is not None
    assert abs(est.lift - 1.0) < 0.15
    assert est.low is not None and est.high is not None
    assert 0 < est.low < est.lift < est.high
    assert est.subscriber_weeks == 32000 and est.subscribers == 8000
    assert verdict(est, weeks=4, more=None).status == "win"
    assert "lifts clicks by +" in verdict(est, weeks=4, more=None).text


def test_the_same_people_every_week_widen_the_interval() -> None:
    """Clustered by subscriber: perfectly sticky clickers carry one week's information."""
    people = {"personalized": 1500, "popular": 1500}
    ctr = {"personalized": 0.12, "popular": 0.1}
    independent = lift_estimate(
        _messages(people=people, ctr=ctr, weeks=6, seed=2), metric="human_click"
    )
    sticky = lift_estimate(
        _messages(people=people, ctr=ctr, weeks=6, seed=2, sticky=True), metric="human_click"
    )
    assert independent is not None and sticky is not None
    width = lambda e: e.high - e.low  # noqa: E731
    assert width(sticky) > 1.8 * width(independent)
    assert sticky.design_effect > 3 > independent.design_effect


def test_a_loss_is_never_called_a_win() -> None:
    frame = _messages(
        people={"personalized": 4000, "popular": 4000},
        ctr={"personalized": 0.04, "popular": 0.08},
        weeks=3,
        seed=3,
    )
    est = lift_estimate(frame, metric="human_click")
    assert est is not None and est.lift is not None and est.lift < 0
    v = verdict(est, weeks=3, more=None)
    assert v.status == "loss" and "loses clicks" in v.text


def test_a_small_test_says_how_many_more_subscriber_weeks_it_needs() -> None:
    frame = _messages(
        people={"personalized": 300, "popular": 100},
        ctr={"personalized": 0.05, "popular": 0.05},
        weeks=2,
        seed=4,
    )
    est = lift_estimate(frame, metric="human_click")
    assert est is not None
    more = subscriber_weeks_needed(est)
    assert more is not None and more > 10000
    v = verdict(est, weeks=2, more=more)
    assert v.status == "inconclusive"
    assert v.text.startswith("not yet significant") and f"{more:,} more subscriber-weeks" in v.text
    bigger = _messages(
        people={"personalized": 3000, "popular": 1000},
        ctr={"personalized": 0.05, "popular": 0.05},
        weeks=2,
        seed=4,
    )
    later = lift_estimate(bigger, metric="human_click")
    assert later is not None
    assert subscriber_weeks_needed(later) < more  # type: ignore[operator]


def test_known_sample_size_for_a_ten_percent_lift() -> None:
    """Equal arms, 5% baseline, no clustering: the textbook two-proportion size."""
    from newsletter.report.pooled import LiftEstimate

    est = LiftEstimate("m", "popular", 0.05, 0.05, 0.0, -0.1, 0.1, 0, 0, 1.0, 0.5)
    spread = 0.945 / (0.055 * 0.5) + 0.95 / (0.05 * 0.5)
    expected = spread * (2.801585 / np.log(1.1)) ** 2
    assert abs(subscriber_weeks_needed(est) - expected) / expected < 0.01  # type: ignore[operator]


def test_no_holdout_and_no_clicks_are_said_plainly() -> None:
    frame = _messages(people={"personalized": 50}, ctr={"personalized": 0.1}, weeks=1, seed=5)
    assert lift_estimate(frame, metric="human_click") is None
    assert verdict(None, weeks=1, more=None).status == "unmeasured"
    none = _messages(
        people={"personalized": 20, "popular": 20},
        ctr={"personalized": 0.0, "popular": 0.0},
        weeks=1,
        seed=5,
    )
    est = lift_estimate(none, metric="human_click")
    assert est is not None and est.lift is None
    assert "not enough human clicks" in verdict(est, weeks=1, more=None).text


def test_arm_counts_keep_machine_opens_and_bounces_apart() -> None:
    frame = _messages(
        people={"personalized": 10, "popular": 10},
        ctr={"personalized": 0.5, "popular": 0.5},
        weeks=1,
        seed=6,
    )
    frame.loc[frame.index[:3], "machine_open"] = 1
    frame.loc[frame.index[3], ["status", "reason", "bounce"]] = ["failed", "bounced", 1]
    arms = arm_summaries(frame)
    p = arms["personalized"]
    assert p.machine_opens == 3 and p.bounces == 1 and p.delivered == 9
    assert p.click_to_open == 1.0
    assert p.ctr.value == p.human_clicks / 9


@settings(max_examples=40, deadline=None)
@given(
    a=st.integers(min_value=10, max_value=60),
    b=st.integers(min_value=10, max_value=60),
    n=st.integers(min_value=60, max_value=200),
)
def test_the_point_estimate_lies_inside_its_interval(a: int, b: int, n: int) -> None:
    rows = []
    for arm, clicks in (("personalized", a), ("popular", b)):
        for k in range(n):
            sid = k + (0 if arm == "personalized" else 10_000)
            rows.append((sid, 1, sid, arm, "sent", None, int(k < clicks), int(k < clicks)))
    frame = pd.DataFrame(
        rows,
        columns=[
            "message_id",
            "run_id",
            "subscriber_id",
            "arm",
            "status",
            "reason",
            "human_open",
            "human_click",
        ],
    )
    est = lift_estimate(frame, metric="human_click", draws=300)
    assert est is not None and est.lift is not None
    assert abs(est.lift - (a / b - 1)) < 1e-9
    assert est.low is not None and est.high is not None
    assert -1 < est.low <= est.lift <= est.high
