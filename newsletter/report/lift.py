"""Rates per arm with confidence intervals, and the lift of personalization over the holdout.

Pure arithmetic on counts (no database): a rate is successes / trials with a Wilson score
interval; the lift of arm A over arm B is reported both as an absolute difference
(Newcombe's hybrid score interval, built from the two Wilson intervals) and as a relative
lift A/B - 1 (interval from the log rate ratio, Katz's method). Intervals are 95% by default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm


@dataclass(frozen=True)
class Rate:
    """successes / trials with a confidence interval."""

    successes: int
    trials: int
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Lift:
    """How arm A compares with arm B on one metric."""

    metric: str
    a: Rate
    b: Rate
    difference: float
    difference_low: float
    difference_high: float
    relative: float | None
    relative_low: float | None
    relative_high: float | None

    @property
    def significant(self) -> bool:
        """True when the interval of the difference excludes zero."""
        return self.difference_low > 0 or self.difference_high < 0


def _z(confidence: float) -> float:
    return float(norm.ppf(0.5 + confidence / 2))


def wilson(successes: int, trials: int, *, confidence: float = 0.95) -> Rate:
    """The Wilson score interval: honest at small counts and at rates near 0 or 1."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return Rate(0, 0, 0.0, 0.0, 1.0)
    z = _z(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Rate(successes, trials, p, max(0.0, centre - half), min(1.0, centre + half))


def _relative(a: Rate, b: Rate, z: float) -> tuple[float | None, float | None, float | None]:
    """A/B - 1 with a log-ratio interval; None when either rate has no successes."""
    if a.successes == 0 or b.successes == 0:
        return None, None, None
    ratio = a.value / b.value
    se = math.sqrt(1 / a.successes - 1 / a.trials + 1 / b.successes - 1 / b.trials)
    return ratio - 1, ratio * math.exp(-z * se) - 1, ratio * math.exp(z * se) - 1


def lift(
    metric: str,
    a: tuple[int, int],
    b: tuple[int, int],
    *,
    confidence: float = 0.95,
) -> Lift:
    """Compare (successes, trials) of arm A with arm B."""
    rate_a = wilson(*a, confidence=confidence)
    rate_b = wilson(*b, confidence=confidence)
    difference = rate_a.value - rate_b.value
    low = difference - math.sqrt(
        (rate_a.value - rate_a.low) ** 2 + (rate_b.high - rate_b.value) ** 2
    )
    high = difference + math.sqrt(
        (rate_a.high - rate_a.value) ** 2 + (rate_b.value - rate_b.low) ** 2
    )
    relative, rel_low, rel_high = _relative(rate_a, rate_b, _z(confidence))
    return Lift(metric, rate_a, rate_b, difference, low, high, relative, rel_low, rel_high)
