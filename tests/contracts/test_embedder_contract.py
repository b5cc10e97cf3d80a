"""What every `knowledge.embeddings.Embedder` must do, run against each implementation.

The store, triage and retrieval take any embedder; these are the promises they rely on (the
protocol's docstrings in knowledge/embeddings.py): unit float32 rows of one length, the same
vector for a text alone or in a batch, input order kept, `(0, dimension)` for no texts, a
single string refused, and a model that cannot be loaded or reached failing as
`EmbeddingModelError`, never as some other exception.

Implementations: the local MiniLM model (real weights), the OpenAI embedder against the loopback
OpenAI-compatible server (tests/openai_server.py), the same behind `MaskedEmbedder`, and the
in-process `FakeEmbedder` (tests/fakes.py) that adapter tests use instead of the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from knowledge.embeddings import Embedder, EmbeddingModelError, MaskedEmbedder
from knowledge.minilm import MiniLMEmbedder
from knowledge.openai_embeddings import OpenAIEmbedder

from fakes import FakeEmbedder
from openai_server import OpenAIServer, error, raw

TEXTS = ["How can my year 5s brainstorm on a shared wall?", "exit tickets", "", "Quiz game with points 🎯",
         "The projector in room 12 shows no signal after the update, and the HDMI light blinks orange."]
KINDS = ["minilm", "openai", "masked-openai", "fake"]
_EMAIL = re.compile(r"\S+@\S+")


def _mask(text: str) -> str:
    return _EMAIL.sub("[EMAIL-1]", text)


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(embedding_dimension=48) as s:
        yield s


def _remote(server: OpenAIServer) -> OpenAIEmbedder:
    # A model name the embedder does not know: its dimension is learnt from the first answer.
    return OpenAIEmbedder(model="loopback-embed", api_key="test-key", base_url=server.url, timeout=5.0)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make(kind: str, request: pytest.FixtureRequest) -> Callable[[], Embedder]:
    """A factory of fresh embedders of this kind (fresh: a remote one has not yet learnt its dimension)."""
    if kind == "minilm":
        model = request.getfixturevalue("embedder")  # conftest: the weights, loaded once per session
        return lambda: model
    if kind == "fake":
        return FakeEmbedder
    server = request.getfixturevalue("server")
    if kind == "openai":
        return lambda: _remote(server)
    return lambda: MaskedEmbedder(_remote(server), _mask)


@pytest.fixture
def broken(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], np.ndarray]:
    """Build an embedder of this kind whose model is missing or failing, and embed with it."""
    if kind == "minilm":
        return lambda: MiniLMEmbedder(model_dir=tmp_path / "no-such-model").embed(["hello"])
    if kind == "fake":
        return lambda: FakeEmbedder(fail=True).embed(["hello"])
    server: OpenAIServer = request.getfixturevalue("server")

    def failing() -> np.ndarray:
        server.script_embeddings(error(400, "model not found"))
        embedder: Embedder = _remote(server)
        if kind == "masked-openai":
            embedder = MaskedEmbedder(embedder, _mask)
        return embedder.embed(["hello"])

    return failing


def test_it_is_an_embedder_with_a_name(make):
    embedder = make()
    assert isinstance(embedder, Embedder)
    assert isinstance(embedder.name, str) and embedder.name.strip()


def test_unit_float32_rows_of_one_length(make):
    embedder = make()
    vectors = embedder.embed(TEXTS)
    assert vectors.dtype == np.float32 and vectors.ndim == 2
    assert vectors.shape[0] == len(TEXTS) and vectors.shape[1] > 0
    assert embedder.dimension == vectors.shape[1]  # known by now, and what was returned
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed(["one more"]).shape == (1, vectors.shape[1])


def test_a_text_alone_gets_the_vector_it_gets_in_a_batch(make):
    embedder = make()
    batched = embedder.embed(TEXTS)
    alone = np.stack([embedder.embed([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_input_order_is_kept_and_equal_texts_agree(make):
    embedder = make()
    forward = embedder.embed(TEXTS)
    backward = embedder.embed(TEXTS[::-1])
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    twice = embedder.embed(["exit tickets", "exit tickets"])
    np.testing.assert_allclose(twice[0], twice[1], atol=1e-6)
    # Different texts are told apart (the empty text included).
    assert len({np.round(v, 4).tobytes() for v in forward}) == len(TEXTS)


def test_no_texts_give_an_empty_matrix_of_the_same_width(make):
    embedder = make()
    before = embedder.embed([])
    assert before.dtype == np.float32 and before.shape == (0, embedder.dimension or 0)
    width = embedder.embed(["hello"]).shape[1]
    for empty in ([], ()):
        out = embedder.embed(empty)
        assert out.shape == (0, width) and out.dtype == np.float32


def test_a_single_string_is_refused(make):
    embedder = make()
    with pytest.raises(TypeError):
        embedder.embed("not a list")  # type: ignore[arg-type]


def test_a_missing_or_failing_model_raises_embedding_model_error(broken):
    with pytest.raises(EmbeddingModelError):
        broken()


def test_remote_no_texts_ask_nothing_and_a_malformed_answer_is_an_embedding_error(server):
    """The remote embedders' own part of the contract: no request for nothing, and a broken answer is theirs to name."""
    for embedder in (_remote(server), MaskedEmbedder(_remote(server), _mask)):
        before = len(server.embedding_requests)
        embedder.embed([])
        assert len(server.embedding_requests) == before
        server.script_embeddings(raw('{"object": "list", "data": [{"index": 0, "embedding": [1.0, "x"]}]}'))
        with pytest.raises(EmbeddingModelError):
            embedder.embed(["hello"])
        server.script_embeddings(raw('{"object": "list", "data": []}'))
        with pytest.raises(EmbeddingModelError):
            embedder.embed(["hello", "again"])
