"""Arm assignment: shares within 0.5 points on 100k ids, stable across plans, salt reshuffles."""

from __future__ import annotations

import numpy as np

from newsletter.plan.campaigns import ArmShares
from newsletter.plan.experiments import assign_arms, uniforms

IDS = np.arange(1, 100_001)


def test_arm_shares_match_the_configured_split_within_half_a_point() -> None:
    arms = assign_arms(IDS, shares=ArmShares(popular=0.10, control=0.05))
    for arm, share in (("popular", 0.10), ("control", 0.05), ("personalized", 0.85)):
        assert abs(np.mean(arms == arm) - share) < 0.005


def test_assignment_is_identical_across_plans_and_independent_of_order() -> None:
    shares = ArmShares(popular=0.2)
    first = assign_arms(IDS, shares=shares)
    again = assign_arms(IDS[::-1], shares=shares)[::-1]
    assert (first == again).all()


def test_changing_the_salt_reshuffles() -> None:
    a = assign_arms(IDS, shares=ArmShares(popular=0.5, salt="one"))
    b = assign_arms(IDS, shares=ArmShares(popular=0.5, salt="two"))
    assert abs(np.mean(a != b) - 0.5) < 0.01


def test_growing_a_holdout_only_moves_personalized_subscribers() -> None:
    small = assign_arms(IDS, shares=ArmShares(popular=0.1))
    big = assign_arms(IDS, shares=ArmShares(popular=0.2))
    assert (big[small == "popular"] == "popular").all()


def test_uniforms_are_in_the_unit_interval() -> None:
    u = uniforms("s", IDS)
    assert u.min() >= 0.0 and u.max() < 1.0
