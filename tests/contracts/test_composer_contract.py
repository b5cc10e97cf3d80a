"""What every coaching `Composer` must do, run against each implementation.

`Coach.handle` takes any composer (bot/compose/templates.py `Composer`); a teacher must get the
same kind of reply whichever one writes it (bot/compose/output_checks.py says what every reply
must pass). For each kind of ask: a reply with text, a question unless the teacher asked for
none, no numbered steps or walkthrough, no links or resource lists written into the text (the
adapter draws the sources), within the word limit, and sources that are the request's own
entries, each once, at most `max_sources`; nothing found means no sources and an honest question.

Implementations: the template composer, the template composer measuring meaning with the local
MiniLM model (`SentenceFit`), the LLM composer against the loopback OpenAI-compatible server
(tests/openai_server.py) with a model that writes good replies (duplicating a source, which the
composer must fold), and with a model that only writes walkthroughs with foreign links and
unknown sources, which the composer must never pass on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.compose.asks import wants_no_questions
from bot.compose.fit import SentenceFit
from bot.compose.llm import LLMComposer
from bot.compose.output_checks import (DEFAULT_MAX_WORDS, check_reply, has_question, urls_in, walkthrough_lines,
                                       word_count)
from bot.compose.templates import CoachingRequest, Composer, TemplateComposer
from bot.settings import Settings
from knowledge.parser import load_folder
from knowledge.search import Hit

from conftest import CONFIG_DIR, FIXTURE_KB
from openai_server import OpenAIServer, Recorded, Response, chat

ENTRIES = {e.id: e for e in load_folder(FIXTURE_KB).entries}
KINDS = ["template", "template-fit", "llm", "llm-misbehaving"]


def ask(text: str, *ids: str, confident: bool = True, max_sources: int = 2) -> CoachingRequest:
    hits = [Hit(ENTRIES[i], 0.8 - 0.01 * n) for n, i in enumerate(ids)]
    return CoachingRequest(text=text, hits=hits, confident=confident, max_sources=max_sources,
                           memory_key="contract:c1")


REQUESTS = {
    "ideas": ask("any ideas how my year 5s could brainstorm together on padlet?", "shared-wall-brainstorm",
                 "exit-ticket-checks"),
    "open": ask("I want my students to reflect more on what they learnt at the end of lessons", "exit-ticket-checks",
                "samr-reflection"),
    "no-questions": ask("just tell me, no questions please: what is a quick exit ticket?", "exit-ticket-checks"),
    "one-source": ask("which tool should my class use for a quick quiz at the end of the lesson?",
                      "exit-ticket-checks", "shared-wall-brainstorm", max_sources=1),
    "nothing-found": ask("how do I teach knitting with robots?", confident=False),
}

_ENTRY_ID = re.compile(r'<entry id="([^"]+)">')
_TEACHER = re.compile(r"<teacher_message>\n(.*?)\n</teacher_message>", re.S)


def good_model(request: Recorded) -> Response:
    """A model that coaches as asked, but names its source twice (the composer keeps one)."""
    text = request.message_text()
    ids = _ENTRY_ID.findall(text)
    teacher = (_TEACHER.findall(text) or [""])[-1]
    if not ids:
        return chat({"reply": "I don't have anything on that in our notes, so I won't guess. "
                              "What should your students learn, and which year group is it for?", "sources": []})
    if wants_no_questions(teacher):
        return chat({"reply": "Two questions at the end of a lesson, answered on a form, tell you who needs help next.",
                     "sources": [ids[0], ids[0]]})
    return chat({"reply": "One idea: let everyone post first, then sort the ideas together. "
                          "What should students do with the ideas once they are up?", "sources": [ids[0], ids[0]]})


def misbehaving_model(request: Recorded) -> Response:
    """A model that writes a walkthrough with a foreign link and cites entries it was not given, every time."""
    return chat({"reply": "Here's how:\n1. Open Padlet\n2. Click 'Make a Padlet'\n3. Read https://evil.example.com/x\n"
                          "Good luck?", "sources": ["shared-wall-brainstorm", "shared-wall-brainstorm", "not-given"]})


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as s:
        yield s


def llm_composer(tmp_path: Path, server: OpenAIServer) -> LLMComposer:
    settings = Settings(data_dir=tmp_path / "data", config_dir=CONFIG_DIR, composer="llm",
                        openai={"api_key": "test-key", "base_url": server.url, "timeout_seconds": 2.0,
                                "max_retries": 0, "deadline_seconds": 5.0, "mask_private_data": False})
    return LLMComposer(settings, sleep=lambda _: None)


@pytest.fixture(params=KINDS)
def composer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Composer]:
    kind = request.param
    if kind == "template":
        yield TemplateComposer()
    elif kind == "template-fit":
        yield TemplateComposer(SentenceFit(request.getfixturevalue("embedder")))
    else:
        server: OpenAIServer = request.getfixturevalue("server")
        server.default = good_model if kind == "llm" else misbehaving_model
        try:
            yield llm_composer(tmp_path, server)
        finally:
            server.default = None


@pytest.fixture(params=list(REQUESTS))
def req(request: pytest.FixtureRequest) -> CoachingRequest:
    return REQUESTS[request.param]


def offered(req: CoachingRequest) -> dict:
    return {h.entry.id: h.entry for h in req.hits} if req.confident else {}


def test_the_reply_passes_every_output_check(composer: Composer, req: CoachingRequest):
    out = composer.compose(req)
    assert isinstance(out.composer, str) and out.composer.strip()
    result = check_reply(out.text, out.sources, offered(req), max_words=DEFAULT_MAX_WORDS,
                         max_sources=req.max_sources, question_wanted=not wants_no_questions(req.text))
    assert result.ok, (out.composer, out.text, result.problems)


def test_a_question_unless_the_teacher_asked_for_none(composer: Composer, req: CoachingRequest):
    out = composer.compose(req)
    assert out.text.strip()
    assert has_question(out.text) is not wants_no_questions(req.text), out.text


def test_no_steps_no_links_and_within_the_limit(composer: Composer, req: CoachingRequest):
    out = composer.compose(req)
    assert walkthrough_lines(out.text) == [], out.text
    assert urls_in(out.text) == [], out.text
    assert word_count(out.text) <= DEFAULT_MAX_WORDS


def test_sources_are_the_requests_own_entries_each_once(composer: Composer, req: CoachingRequest):
    out = composer.compose(req)
    assert len(out.sources) == len(set(out.sources)), out.sources
    assert set(out.sources) <= set(offered(req)), out.sources
    assert len(out.sources) <= req.max_sources
    if not req.confident:
        assert out.sources == []


def test_the_same_request_twice_gets_a_reply_of_the_same_shape(composer: Composer):
    """A composer keeps no state between requests that changes what a reply may be."""
    first, second = (composer.compose(REQUESTS["ideas"]) for _ in range(2))
    assert has_question(first.text) and has_question(second.text)
    assert set(second.sources) <= set(offered(REQUESTS["ideas"]))


def test_an_unusable_model_never_reaches_the_teacher(tmp_path: Path, server: OpenAIServer):
    """The LLM composer's own promise: what fails the checks twice is replaced by the template's reply."""
    server.default = misbehaving_model
    try:
        out = llm_composer(tmp_path, server).compose(REQUESTS["ideas"])
    finally:
        server.default = None
    template = TemplateComposer().compose(REQUESTS["ideas"])
    assert out.composer == "template (fallback: checks-failed)"
    assert (out.text, out.sources) == (template.text, template.sources)




def test_a_good_model_is_what_the_teacher_reads_with_its_repeated_source_folded(tmp_path: Path, server: OpenAIServer,
                                                                                 req: CoachingRequest):
    """So the "llm" case above is the model's reply, not the fallback's."""
    server.default = good_model
    try:
        out = llm_composer(tmp_path, server).compose(req)
    finally:
        server.default = None
    assert out.composer == "llm:gpt-4o-mini"
    assert out.sources == ([req.hits[0].entry.id] if req.confident else [])
