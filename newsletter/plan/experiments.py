"""Deterministic experiment arms: arm = f(blake2b(salt, subscriber id)), sticky across runs.

The arm never reaches the recipient in readable form: the ``Feedback-ID`` header carries
:func:`feedback_code`, an opaque code per arm (keyed by the install's secret), which ``why``
and the report map back to the arm.

Each subscriber id hashes to a uniform number ``u`` in [0, 1) (the first 8 bytes of
``blake2b(f"{salt}:{id}")`` over 2**64). ``u < control`` is the ``control`` arm (no message),
``u < control + popular`` the ``popular`` holdout, the rest ``personalized``. Growing a holdout
share moves only subscribers from personalized into it; a new salt reshuffles everyone.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from newsletter.enums import Arm
from newsletter.plan.campaigns import ArmShares

DEFAULT_SALT = "newsletter-arms-v1"
ARMS = (Arm.personalized, Arm.popular, Arm.control)
_SCALE = float(2**64)


def experiment_name(shares: ArmShares, default_salt: str = DEFAULT_SALT) -> str:
    """The experiment key recorded in Assignment rows (the salt decides the arms)."""
    return f"arms:{shares.salt or default_salt}"


def uniforms(salt: str, subscriber_ids: Iterable[int]) -> np.ndarray:
    """Hash each (salt, id) to a float in [0, 1): deterministic and independent of order."""
    prefix = f"{salt}:".encode()
    values = [
        int.from_bytes(hashlib.blake2b(prefix + str(int(i)).encode(), digest_size=8).digest())
        for i in subscriber_ids
    ]
    return np.asarray(values, dtype=np.uint64).astype(np.float64) / _SCALE


def assign_arms(
    subscriber_ids: Iterable[int], *, shares: ArmShares, default_salt: str = DEFAULT_SALT
) -> np.ndarray:
    """Return the arm name per subscriber id (a numpy array of str), vectorised."""
    u = uniforms(shares.salt or default_salt, subscriber_ids)
    arms = np.full(len(u), "personalized", dtype=object)
    arms[u < shares.control + shares.popular] = "popular"
    arms[u < shares.control] = "control"
    return arms


@lru_cache(maxsize=64)
def feedback_code(arm: str, *, secret_key: str) -> str:
    """An opaque, stable 8-hex code for an arm in the Feedback-ID header (HMAC of the arm)."""
    mac = hmac.new(secret_key.encode(), f"feedback-id:arm:{arm}".encode(), hashlib.sha256)
    return mac.hexdigest()[:8]


def feedback_codes(*, secret_key: str) -> dict[str, str]:
    """Every arm's Feedback-ID code, to read feedback-loop reports by arm."""
    return {arm: feedback_code(arm, secret_key=secret_key) for arm in ARMS}
