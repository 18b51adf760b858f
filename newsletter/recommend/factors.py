"""Implicit alternating least squares (iALS, Hu, Koren and Volinsky 2008) via ``implicit``.

:class:`IALS` factorises the weighted user x item matrix (confidence ``1 + alpha * weight``)
into ``factors``-dimensional user and item vectors; a user's score for an item is the dot
product. It needs the optional ``implicit`` package (``pip install 'newsletter[ials]'``); the
evaluation reports it as a baseline when it is installed. On MovieLens it trails EASE and adds
nothing to the hybrid's blend (benchmarks/README.md), so the hybrid does not use it.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from newsletter.recommend.base import Array, InteractionData, ItemCatalog, ScoringModel
from newsletter.recommend.weighting import WeightingConfig, interaction_matrix


def implicit_available() -> bool:
    """Return whether the optional ``implicit`` package can be imported."""
    try:
        import implicit  # noqa: F401
    except ImportError:
        return False
    return True


class IALS(ScoringModel):
    """Latent factors by implicit ALS; scores are ``user_factors @ item_factors.T``."""

    name = "ials"

    def __init__(
        self,
        *,
        factors: int = 64,
        regularization: float = 10.0,
        alpha: float = 1.0,
        iterations: int = 15,
        threads: int = 1,
        seed: int = 0,
        weighting: WeightingConfig | None = None,
    ) -> None:
        """Model size, L2 penalty, confidence scale ``alpha``, sweeps, threads and seed."""
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.threads = threads
        self.seed = seed
        self.weighting = weighting or WeightingConfig()
        self.user_factors: Array = np.zeros((0, factors), dtype=np.float32)
        self.item_factors: Array = np.zeros((0, factors), dtype=np.float32)

    def fit(self, data: InteractionData, catalog: ItemCatalog, *, now: float) -> Self:
        """Factorise the weighted interaction matrix (deterministic for a given seed)."""
        try:
            from implicit.cpu.als import AlternatingLeastSquares
        except ImportError as exc:
            raise RuntimeError(
                "IALS needs the optional 'implicit' package: pip install 'newsletter[ials]'"
            ) from exc
        from threadpoolctl import threadpool_limits

        matrix = interaction_matrix(data, self.weighting, now=now)
        self.n_items = data.n_items
        with threadpool_limits(1):  # implicit's own threads; BLAS threads would oversubscribe
            model: Any = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                num_threads=self.threads,
                random_state=self.seed,
            )
            model.fit(matrix.tocsr(), show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        return self

    def score(self, users: Array) -> Array:
        """Return the dot products of the users' and every item's factors."""
        return self.user_factors[np.asarray(users)] @ self.item_factors.T
