"""The MiniLM (BERT) model in numpy: its tokenizer and weights, loaded and arranged, and the forward pass."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from knowledge.embeddings import EmbeddingModelError
from knowledge.minilm_kernels import gelu2_inplace, layer_norm_inplace

_F32 = np.float32


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
    w_out: np.ndarray  # (h, inter+1), pre-multiplied by 0.5 (see gelu2_inplace)
    ln2_g: np.ndarray
    ln2_b: np.ndarray


class MiniLMModel:
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
            # Tensors are read one at a time, so the checkpoint is never held in memory beside
            # its arranged copy (loading it whole, or mapped, raised the load's peak by ~80 MB).
            with open(weights_path, "rb") as handle:
                self._arrange(_Checkpoint(handle))
        except (KeyError, ValueError) as exc:
            raise EmbeddingModelError(f"model weights {weights_path} are incomplete or malformed: {exc}") from exc
        except Exception as exc:  # SafetensorError, OSError, ...
            raise EmbeddingModelError(f"cannot read model weights {weights_path}: {exc}") from exc

    def _arrange(self, raw: _Checkpoint) -> None:
        """Validate, cast and arrange the checkpoint tensors for :meth:`forward`."""
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in raw else ""
        h = self.hidden

        def get(name: str, shape: tuple[int, ...] | None = None, ndim: int = 1) -> np.ndarray:
            key = prefix + name
            if key not in raw:
                raise KeyError(f"missing tensor {key!r}")
            # Each tensor leaves the checkpoint as it is arranged, so the weights are not held twice.
            arr = raw.pop(key)
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

        inter = raw.shape(prefix + "encoder.layer.0.intermediate.dense.weight")[0]
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
                    # gelu2_inplace returns 2*gelu; the 0.5 goes here (exact).
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
        layer_norm_inplace(x_buf[:h], self.emb_ln_g, self.emb_ln_b, self.eps)

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
            layer_norm_inplace(tmp, layer.ln1_g, layer.ln1_b, self.eps)
            x_buf, tmp_buf = tmp_buf, x_buf  # x now holds the attention block output
            x, tmp = tmp, x

            np.matmul(layer.w_i, x_buf, out=inter_buf[:-1])
            gelu2_inplace(inter_buf[:-1])
            np.matmul(layer.w_out, inter_buf, out=tmp)
            tmp += x
            layer_norm_inplace(tmp, layer.ln2_g, layer.ln2_b, self.eps)
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


class _Checkpoint:
    """The tensors of a safetensors file (an 8-byte header length, a JSON header, then raw
    little-endian data), each read from the file when it is taken."""

    _DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": None, "I64": "<i8", "I32": "<i4"}

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        (size,) = struct.unpack("<Q", handle.read(8))
        if size > 100_000_000:
            raise ValueError(f"implausible safetensors header length {size}")
        header = json.loads(handle.read(size))
        header.pop("__metadata__", None)
        self._base = 8 + size
        self._meta: dict[str, dict[str, Any]] = header

    def __contains__(self, key: str) -> bool:
        return key in self._meta

    def pop(self, key: str) -> np.ndarray:
        """Read one tensor; it is not kept here."""
        meta = self._meta.pop(key)
        dtype = self._DTYPES.get(meta["dtype"])
        if dtype is None:
            raise ValueError(f"tensor {key!r} has unsupported dtype {meta['dtype']}")
        start, end = meta["data_offsets"]
        shape = tuple(int(n) for n in meta["shape"])
        self._handle.seek(self._base + start)
        data = self._handle.read(end - start)
        count = int(np.prod(shape, dtype=np.int64))
        if len(data) != count * np.dtype(dtype).itemsize:
            raise ValueError(f"tensor {key!r} is truncated")
        return np.frombuffer(data, dtype=dtype).reshape(shape)

    def shape(self, key: str) -> tuple[int, ...]:
        """A tensor's shape without reading it."""
        if key not in self._meta:
            raise KeyError(f"missing tensor {key!r}")
        return tuple(int(n) for n in self._meta[key]["shape"])


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

