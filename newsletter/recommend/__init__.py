"""recommend stage: pure numpy/scipy/scikit-learn recommenders (no database, clock or I/O).

Public API (import from the modules; this package import stays light):

* ``base``: :class:`InteractionData`, :class:`ItemCatalog` (the store's hand-off),
  :class:`Feedback`, :class:`Reason`, :class:`Recommendations`, the :class:`Recommender`
  protocol (``fit(data, catalog, *, now)``, ``recommend(users, n, *, exclude, candidates)``).
* ``weighting``: :class:`WeightingConfig`, :func:`interaction_matrix`, :func:`consumed_matrix`.
* ``hybrid``: :class:`HybridConfig`, :class:`HybridRecommender` (``fit``, ``recommend``,
  ``recommend_explained``, ``popular_items``, ``section``).
* generators: ``collaborative`` (ItemKNN, EASE), ``content`` (ContentModel, Fresh),
  ``popular`` (Popularity, MetadataPrior).
* offline: ``splits`` (protocols, metrics), ``tune`` (validation-only search),
  ``evaluate`` (MovieLens folders; ``newsletter evaluate``).
"""
