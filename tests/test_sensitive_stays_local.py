"""A safeguarding or data-incident conversation never reaches an outside service.

Checked on what an OpenAI-compatible recorder on loopback received: chat completions (LLM
mode, history included) and embeddings (COACH_EMBEDDINGS=openai).
"""

from __future__ import annotations

import json

from pydantic import SecretStr

from adapters.wiring import build_runtime
from bot.compose.llm import LLMComposer
from bot.models import InboundMessage, Route
from bot.settings import OpenAISettings, Settings
from knowledge.openai_embeddings import OpenAIEmbedder
from knowledge.parser import load_folder
from knowledge.store import KnowledgeStore, open_client

from conftest import CONFIG_DIR, FIXTURE_KB
from openai_server import OpenAIServer, chat, openai_server  # noqa: F401  (fixture)

DISCLOSURE = ("One of my students told me at break that her stepdad hits her when he has been drinking, "
              "and she showed me bruises on her arms.")
# Words of the disclosure that no coaching turn or entry uses.
DISCLOSED = ("stepdad", "bruises", "drinking", "hits her")
COACHING = ["how can my year 5s brainstorm together on padlet?",
            "what about exit tickets in google forms for my class?"]
THANKS = "thanks"


def say(runtime, conversation: str, text: str):
    return runtime.coach.handle(InboundMessage(platform="console", conversation_id=conversation, user_id="t1",
                                               text=text))


def llm_settings(tmp_path, server: OpenAIServer, **extra: object) -> Settings:
    openai = OpenAISettings(api_key=SecretStr("test-key"), base_url=server.url, timeout_seconds=2.0, max_retries=0,
                            deadline_seconds=3.0)
    return Settings(data_dir=tmp_path / "data", config_dir=CONFIG_DIR, composer="llm", openai=openai, **extra)


def test_a_disclosure_then_coached_turns_and_thanks_sends_nothing_of_it_to_the_model(tmp_path, store,
                                                                                      openai_server):
    openai_server.default = chat({"reply": "One idea: start small, with one short shared task. "
                                         "What should the students learn from it?", "sources": []})
    s = llm_settings(tmp_path, openai_server)
    runtime = build_runtime(s, composer=LLMComposer(s, sleep=lambda _: None), auto_starter=False)

    # Without a concern the same coached turns do go to the model: the check below can fail.
    for text in COACHING:
        assert say(runtime, "plain", text).route is Route.COACH
    assert len(openai_server.chat_requests) == len(COACHING)

    before = len(openai_server.requests)
    first = say(runtime, "concern", DISCLOSURE)
    assert first.route is Route.INTEGRATOR and first.handoff is not None
    # While the concern is open, what follows stays with the person; once the lead resolves it, the
    # teacher is coached again in the same conversation, with the disclosure in its history.
    runtime.coach.escalations.resolve(runtime.coach.escalations.get_by_ticket(first.handoff.ticket).id,
                                      "cli:lead", "the lead")
    assert "stepdad" in " ".join(t.text for t in runtime.coach.memory.history("console:concern"))
    routes = [say(runtime, "concern", t).route for t in [*COACHING, THANKS, COACHING[0]]]
    assert Route.COACH in routes, f"nothing after the disclosure was coached: {routes}"

    sent = "".join(r.raw + json.dumps(r.body or {}) for r in openai_server.requests[before:]).lower()
    leaked = [w for w in DISCLOSED if w in sent]
    assert leaked == [], f"sent to the model after a disclosure: {leaked}"
    # The conversation is answered from templates from then on: nothing of it is sent at all.
    assert openai_server.requests[before:] == []


def remote_store(settings: Settings, server: OpenAIServer) -> KnowledgeStore:
    embedder = OpenAIEmbedder(model="text-embedding-3-small", api_key="test-key", base_url=server.url)
    store = KnowledgeStore(open_client(data_dir=settings.data_dir, chroma_url=None), embedder)
    store.sync(load_folder(FIXTURE_KB).entries)
    return store


def test_remote_embeddings_see_masked_text_and_nothing_of_a_concern(tmp_path, openai_server):
    s = Settings(data_dir=tmp_path / "data", config_dir=CONFIG_DIR, composer="template", embeddings="openai",
                 openai={"api_key": "test-key", "base_url": openai_server.url})
    remote_store(s, openai_server)
    runtime = build_runtime(s, auto_starter=False)
    assert runtime.store.embedder.name.startswith("openai:")

    start = len(openai_server.embedding_requests)
    named = "My student Jamie Lee (jamie.lee.parent@example.org, 07700 900123) goes quiet in padlet brainstorms, any ideas?"
    assert say(runtime, "named", named).route is Route.COACH
    queries = [t for r in openai_server.embedding_requests[start:] for t in r.body["input"]]
    assert queries, "a coached turn with remote embeddings embeds its query remotely"
    joined = " ".join(queries)
    assert "padlet" in joined.lower()
    for private in ("Jamie", "jamie.lee.parent@example.org", "07700 900123"):
        assert private not in joined, f"{private!r} reached the embeddings endpoint"

    before = len(openai_server.requests)
    first = say(runtime, "concern", DISCLOSURE)
    assert first.route is Route.INTEGRATOR
    runtime.coach.escalations.resolve(runtime.coach.escalations.get_by_ticket(first.handoff.ticket).id,
                                      "cli:lead", "the lead")
    routes = [say(runtime, "concern", t).route for t in [*COACHING, THANKS]]
    assert Route.COACH in routes
    assert openai_server.requests[before:] == [], "a concern's conversation was embedded remotely"
