"""recommend stage: pure numpy/scipy/scikit-learn recommenders (no database, clock or I/O).

Public API (import from the modules; this package import stays light):

* ``base``: :class:`InteractionData`, :class:`ItemCatalog` (the store's hand-off),
  :class:`Feedback`, :class:`Reason`, :class:`Recommendations`, the :class:`Recommender`
  protocol (``fit(data, catalog, *, now)``, ``recommend(users, n, *, exclude, candidates)``).
* ``weighting``: :class:`WeightingConfig`, :func:`interaction_matrix`, :func:`consumed_matrix`.
* ``hybrid``: :class:`HybridConfig`, :class:`HybridRecommender` (``fit``, ``recommend``,
  ``recommend_explained``, ``popular_items``, ``section``).
* generators: ``collaborative`` (ItemKNN, EASE), ``sequential`` (SequentialKNN: reading
  order), ``content`` (ContentModel, Fresh), ``freshness`` (FreshItems, interest half-life,
  age decay), ``popular`` (Popularity, MetadataPrior); baselines ``slim`` (SLIM) and
  ``factors`` (IALS, optional ``implicit``); ``embeddings`` (optional MiniLM vectors).
* learning from the emails: ``clicks`` (ExposureLog, position bias, IPW click model),
  ``clickrank`` (ClickRanker: the hybrid's candidates re-scored; falls back when thin).
* offline: ``splits`` (protocols, metrics, SideEvents), ``tune`` (validation-only search of
  the hybrid and the baselines), ``evaluate`` (MovieLens folders; ``newsletter evaluate``).
"""
