"""Shared fixtures: real parts on temporary directories, the embedding model loaded once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bot.settings import Settings
from fakes import FakeEmbedder

TESTS = Path(__file__).resolve().parent
FIXTURE_KB = TESTS / "fixtures" / "kb"
CONFIG_DIR = TESTS.parent / "config"


@pytest.fixture(scope="session", autouse=True)
def declared_platforms() -> None:
    """What every entry point does first: the adapters declare their platforms' capabilities to the core."""
    from adapters.platforms import declare_platforms

    declare_platforms()


@pytest.fixture(scope="session")
def embedder():
    from knowledge.minilm import MiniLMEmbedder

    model = MiniLMEmbedder()
    model.embed(["warm up"])
    return model


@pytest.fixture(scope="session")
def triage(embedder, tmp_path_factory):
    """Triage as the coach runs it: the shipped model for config/triage-corpus, the school's glossary."""
    from bot.triage.build import load_triage
    from knowledge.glossary import Glossary

    expand = Glossary.from_file(CONFIG_DIR / "tool-glossary.yaml").expanded
    return load_triage(CONFIG_DIR, tmp_path_factory.mktemp("triage-cache"), model_name=embedder.name,
                       embed_many=embedder.embed, embed_one=lambda text: embedder.embed([expand(text)])[0],
                       prepare=expand)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings built by constructor, never by mutating the environment."""
    return Settings(data_dir=tmp_path / "data", config_dir=CONFIG_DIR)


@pytest.fixture
def store(settings: Settings, embedder):
    from knowledge.parser import load_folder
    from knowledge.store import KnowledgeStore, open_client

    client = open_client(data_dir=settings.data_dir, chroma_url=None)
    kb = KnowledgeStore(client, embedder)
    kb.sync(load_folder(FIXTURE_KB).entries)
    return kb


@pytest.fixture(scope="module")
def shared_runtime(tmp_path_factory, embedder):
    """One runtime per module over the fixture knowledge base; tests keep apart by conversation id."""
    from adapters.wiring import build_runtime
    from knowledge.parser import load_folder
    from knowledge.store import KnowledgeStore, open_client

    settings = Settings(data_dir=tmp_path_factory.mktemp("shared-runtime") / "data", config_dir=CONFIG_DIR)
    KnowledgeStore(open_client(data_dir=settings.data_dir, chroma_url=None), embedder).sync(
        load_folder(FIXTURE_KB).entries)
    return build_runtime(settings, auto_starter=False)


@pytest.fixture
def runtime(settings: Settings, store):
    from adapters.wiring import build_runtime

    return build_runtime(settings, auto_starter=False)


@pytest.fixture
def coach(runtime):
    return runtime.coach


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- real servers for the district tests (tests/services.py) -------------------------------------

def _service_missing(reason: str) -> None:
    """Skip (naming what is missing), or fail when CI said the servers must be there."""
    from services import required

    if required():
        pytest.fail(f"COACH_REQUIRE_SERVICES is set but {reason}", pytrace=False)
    pytest.skip(reason)


def _started(kind: str):
    """Start one of tests/services.py's servers for the session; skip (or fail) when it is missing."""
    import services

    try:
        server = getattr(services, kind)()
    except services.ServiceUnavailable as exc:
        _service_missing(str(exc))
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL cluster of its own on loopback for the whole session (tests/services.py)."""
    server = _started("PostgresServer")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    """A SQLAlchemy URL of an empty database on that server; tests wanting their own call create_database()."""
    return postgres_server.create_database("coach_session")


@pytest.fixture(scope="session")
def chroma_server():
    """A `chroma run` server on loopback for the whole session."""
    server = _started("ChromaServer")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def chroma_url(chroma_server) -> str:
    """What COACH_CHROMA_URL would be for that server."""
    return chroma_server.url


class HashingEmbedder(FakeEmbedder):
    """A second, tiny embedding model, so a model change can be shown without a second download."""

    name = "hashing-test-64"

    def __init__(self) -> None:
        super().__init__(dimension=64, name=self.name)


@pytest.fixture(scope="module")
def slack_api():
    """The loopback Slack Web API stand-in, one per test module."""
    from slack_api_server import SlackAPIServer

    with SlackAPIServer() as server:
        yield server


@pytest.fixture
def api(slack_api):
    """The stand-in with its recorded requests cleared for this test."""
    slack_api.reset()
    return slack_api
