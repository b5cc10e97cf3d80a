"""Tests for the embedders: the numpy MiniLM embedder (real weights, no torch)
and the OpenAI embedder (against a fake client, no network)."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from knowledge import blas_threads, minilm_kernels
from knowledge import minilm as minilm_mod
from knowledge.embeddings import Embedder, EmbeddingModelError
from knowledge.minilm import MiniLMEmbedder
from knowledge.openai_embeddings import OpenAIEmbedder

TEXTS = [
    "How do I reset the Slack bot token?",
    "hi",
    "",
    "Die Datenbankmigration ist über Nacht fehlgeschlagen. 🚀",
    (
        "The webhook returned HTTP 502 three times, then the retry queue filled up and "
        "the integration stopped delivering messages to the Teams channel."
    ),
    "東京は日本の首都です。",
    "!!!???",
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    e = MiniLMEmbedder()
    e.load()
    return e


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_identity(minilm: MiniLMEmbedder) -> None:
    assert minilm.name == "all-MiniLM-L6-v2"
    assert minilm.dimension == 384
    assert isinstance(minilm, Embedder)


def test_shape_dtype_and_unit_norm(minilm: MiniLMEmbedder) -> None:
    vecs = minilm.embed(TEXTS)
    assert vecs.shape == (len(TEXTS), 384)
    assert vecs.dtype == np.float32
    assert np.all(np.isfinite(vecs))
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # distinct texts give distinct vectors
    assert len({v.tobytes() for v in vecs}) == len(TEXTS)


def test_empty_input(minilm: MiniLMEmbedder) -> None:
    for empty in ([], ()):
        out = minilm.embed(empty)
        assert out.shape == (0, 384)
        assert out.dtype == np.float32


def test_single_string_rejected(minilm: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError):
        minilm.embed("not a list")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        minilm.embed(["ok", 3])  # type: ignore[list-item]


def test_batch_equals_one_at_a_time(minilm: MiniLMEmbedder) -> None:
    """Padding inside a batch must not change any vector."""
    batched = minilm.embed(TEXTS)
    single = np.stack([minilm.embed([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_many_small_batches_keep_input_order(minilm: MiniLMEmbedder) -> None:
    """Several batches (run in parallel worker threads) still come back in input order."""
    texts = [f"message number {i} about {'retries ' * (i % 7)}and timeouts" for i in range(40)] + TEXTS
    small = MiniLMEmbedder(batch_size=3)
    got = small.embed(texts)
    ref = minilm.embed(texts)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(got[-len(TEXTS) :], minilm.embed(TEXTS), atol=1e-5)


def test_blas_threads_restored_after_parallel_batches() -> None:
    blas = blas_threads.BLAS
    if not blas.available:
        pytest.skip("numpy's BLAS thread count cannot be controlled here")
    _set, get = blas_threads.find_openblas_thread_functions()  # type: ignore[misc]
    before = get()
    MiniLMEmbedder(batch_size=2).embed([f"text {i}" for i in range(9)])
    assert get() == before


def test_busy_machine_runs_single_threaded_with_same_result(
    minilm: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"short note {i} on {'webhooks ' * (i % 5)}" for i in range(10)]
    ref = minilm.embed(texts)
    monkeypatch.setattr(minilm_mod, "machine_oversubscribed", lambda cpus: True)
    before = blas_threads.BLAS.configured_threads()
    np.testing.assert_allclose(MiniLMEmbedder(batch_size=3).embed(texts), ref, atol=1e-5)
    assert blas_threads.BLAS.configured_threads() == before


def test_long_input_is_truncated_to_256_tokens(minilm: MiniLMEmbedder) -> None:
    head = "The integration coach walks engineers through connecting chat platforms. " * 60
    a, b = minilm.embed([head + "Completely different ending about penguins.", head + "Tax law."])
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(np.linalg.norm(a), 1.0, atol=1e-5)
    # Both endings lie beyond token 256, so they are cut off identically.
    np.testing.assert_allclose(a, b, atol=1e-6)
    huge = minilm.embed(["word " * 20000])
    assert huge.shape == (1, 384) and np.all(np.isfinite(huge))


def test_semantic_sanity(minilm: MiniLMEmbedder) -> None:
    v = minilm.embed(
        [
            "How can I reset my password?",
            "I forgot my login password, how do I change it?",
            "The recipe needs two cups of flour and an egg.",
            "Our Slack bot stopped answering messages after the deploy.",
            "After we shipped the new release the chatbot in Slack no longer replies.",
        ]
    )
    paraphrase = cos(v[0], v[1])
    unrelated = cos(v[0], v[2])
    assert paraphrase > unrelated + 0.3
    assert cos(v[3], v[4]) > cos(v[3], v[2]) + 0.3
    assert paraphrase > 0.6


def test_missing_model_dir_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(EmbeddingModelError) as info:
        MiniLMEmbedder(model_dir=missing).embed(["hello"])
    assert str(missing) in str(info.value)


def test_corrupt_weights_name_the_path(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(minilm.model_dir, model_dir, ignore=shutil.ignore_patterns("model.safetensors"))
    weights = model_dir / "model.safetensors"
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}garbage")
    with pytest.raises(EmbeddingModelError) as info:
        MiniLMEmbedder(model_dir=model_dir).embed(["hello"])
    assert str(weights) in str(info.value)


def test_missing_weights_file_names_the_path(tmp_path: Path, minilm: MiniLMEmbedder) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(minilm.model_dir, model_dir, ignore=shutil.ignore_patterns("model.safetensors"))
    with pytest.raises(EmbeddingModelError) as info:
        MiniLMEmbedder(model_dir=model_dir).embed(["hello"])
    assert str(model_dir) in str(info.value)
    assert "model.safetensors" in str(info.value)


def test_gelu_matches_exact_erf_form() -> None:
    x = np.concatenate(
        [np.linspace(-12, 12, 200_001), np.geomspace(1e-6, 1e5, 2001), -np.geomspace(1e-6, 1e5, 2001)]
    ).astype(np.float32)
    h = x.reshape(1, -1).copy()
    minilm_kernels.gelu2_inplace(h)
    got = 0.5 * h.reshape(-1).astype(np.float64)
    xd = x.astype(np.float64)
    ref = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in xd])
    # float32 result: allow a few ulps relative, plus 1e-7 * |x| for the erf approximation.
    tol = 4 * np.finfo(np.float32).eps * np.abs(ref) + 1.5e-7 * np.abs(xd) + 1e-30
    assert np.all(np.abs(got - ref) <= tol)


def test_module_does_not_import_torch() -> None:
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from knowledge.minilm import MiniLMEmbedder\n"
        "MiniLMEmbedder().embed(['hello world'])\n"
        "bad = {'torch', 'transformers', 'sentence_transformers'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- OpenAIEmbedder (fake client, no network) --------------------------------


class _FakeEmbeddings:
    def __init__(self, dim: int = 8, fail: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.dim = dim
        self.fail = fail

    def create(self, model: str, input: list[str]) -> Any:  # the SDK's parameter name
        if self.fail is not None:
            raise self.fail
        self.calls.append(list(input))
        data = []
        for i, text in enumerate(input):
            vec = [float(len(text) + 1)] + [float(i + 1)] * (self.dim - 1)
            data.append(SimpleNamespace(index=i, embedding=vec))
        data.reverse()  # the embedder must sort by index
        return SimpleNamespace(data=data)


def _openai_embedder(fake: _FakeEmbeddings, model: str = "my-model") -> OpenAIEmbedder:
    pytest.importorskip("openai")
    e = OpenAIEmbedder(model=model, api_key="sk-test", base_url="http://127.0.0.1:9/v1", timeout=1.0)
    e._client = SimpleNamespace(embeddings=fake)
    return e


def test_openai_batches_normalises_and_learns_dimension() -> None:
    fake = _FakeEmbeddings(dim=8)
    e = _openai_embedder(fake)
    assert e.name == "openai:my-model"
    assert e.dimension is None
    texts = [f"t{i}" for i in range(600)]
    out = e.embed(texts)
    assert [len(c) for c in fake.calls] == [256, 256, 88]
    assert out.shape == (600, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert e.dimension == 8
    # order preserved although the fake returns each batch reversed
    first = np.array([3.0] + [1.0] * 7, dtype=np.float32)
    np.testing.assert_allclose(out[0], first / np.linalg.norm(first), atol=1e-6)
    assert e.embed([]).shape == (0, 8)


def test_openai_known_model_dimension() -> None:
    e = _openai_embedder(_FakeEmbeddings(), model="text-embedding-3-small")
    assert e.name == "openai:text-embedding-3-small"
    assert e.dimension == 1536


def test_openai_errors_are_wrapped() -> None:
    openai = pytest.importorskip("openai")
    httpx = pytest.importorskip("httpx")
    err = openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1/embeddings"))
    e = _openai_embedder(_FakeEmbeddings(fail=err))
    with pytest.raises(EmbeddingModelError, match="openai:my-model"):
        e.embed(["hello"])
