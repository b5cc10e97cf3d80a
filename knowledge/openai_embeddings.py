"""Embeddings from the OpenAI API (COACH_EMBEDDINGS=openai), or a compatible server."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from knowledge.embeddings import EmbeddingModelError

_F32 = np.float32

# Known output sizes, so ``dimension`` is usable before the first request; the
# first response always overrides this.
_OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}



class OpenAIEmbedder:
    """Embeddings from the OpenAI API (or a compatible server via ``base_url``).

    ``dimension`` is known up front for OpenAI's own models, otherwise it is
    ``None`` until the first successful request sets it.
    """

    batch_size: int = 256  # inputs per request; well under the API's limits

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Create a client for ``model``.

        ``api_key``/``base_url`` default to the SDK's environment variables
        (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``).  Raises
        :class:`EmbeddingModelError` if the SDK is missing or the client
        cannot be created (e.g. no API key).
        """
        try:
            import openai
        except ImportError as exc:
            raise EmbeddingModelError("the 'openai' package is required for OpenAIEmbedder") from exc
        self.model = model
        self.name: str = f"openai:{model}"
        self.dimension: int | None = _OPENAI_DIMENSIONS.get(model)
        self._openai = openai
        try:
            self._client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout)
        except openai.OpenAIError as exc:
            raise EmbeddingModelError(f"cannot create OpenAI client for {self.name}: {exc}") from exc

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` with the API, 256 per request; rows are L2-normalised.

        Raises :class:`EmbeddingModelError` on any API or network failure.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        items = list(texts)
        if not items:
            return np.zeros((0, self.dimension or 0), dtype=_F32)

        chunks: list[np.ndarray] = []
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            try:
                resp = self._client.embeddings.create(model=self.model, input=batch)
            except (self._openai.OpenAIError, ValueError) as exc:  # ValueError: the SDK could not read the answer
                raise EmbeddingModelError(
                    f"OpenAI embeddings request failed for {self.name} ({type(exc).__name__}): {exc}"
                ) from exc
            data = sorted(resp.data, key=lambda d: d.index)  # API may reorder
            if len(data) != len(batch):
                raise EmbeddingModelError(
                    f"OpenAI returned {len(data)} embeddings for {len(batch)} inputs ({self.name})"
                )
            try:
                arr = np.asarray([d.embedding for d in data], dtype=_F32)
            except (TypeError, ValueError) as exc:  # ragged or non-numeric
                raise EmbeddingModelError(f"OpenAI returned malformed embeddings ({self.name}): {exc}") from exc
            if arr.ndim != 2 or (chunks and arr.shape[1] != chunks[0].shape[1]):
                raise EmbeddingModelError(f"OpenAI returned embeddings of inconsistent size ({self.name})")
            chunks.append(arr)

        vectors = np.concatenate(chunks, axis=0)
        self.dimension = int(vectors.shape[1])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.maximum(norms, _F32(1e-12))
        return vectors
