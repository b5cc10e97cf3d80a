"""In-process stand-ins for the core's heavy parts, for tests that check translation, not answers.

`FakeEmbedder` satisfies `knowledge.embeddings.Embedder` (and runs through
tests/contracts/test_embedder_contract.py): deterministic vectors from hashed words, no model to
load. `FakeCoach` has the calls an adapter makes into the core (`Coach.handle`,
`handle_action`, `escalation_action`) and records what it was given, so a test of an adapter
can assert on the `InboundMessage` the adapter built without a knowledge base, triage model or
composer behind it. Neither decides anything: a test that needs the coach's real answer uses
the real runtime (conftest's `shared_runtime`).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Sequence

import numpy as np

from bot.access import ActionResult, Actor, Outcome
from bot.models import ActionEvent, Handoff, InboundMessage, Reply, Route, Source
from bot.coach import COACH_ACTIONS
from knowledge.embeddings import EmbeddingModelError


class FakeEmbedder:
    """Unit float32 vectors from sha256 of each word: equal texts give equal vectors, shared words similar ones."""

    def __init__(self, dimension: int = 32, *, name: str = "fake-hashed-32", fail: bool = False) -> None:
        self.name = name
        self._dimension = dimension
        self.fail = fail  # every call raises EmbeddingModelError, as a model that cannot be reached does
        self.calls: list[list[str]] = []

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts`: shape (len(texts), dimension), float32, unit rows; (0, dimension) for none."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        items = list(texts)
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        if self.fail:
            raise EmbeddingModelError(f"{self.name} is unavailable (FakeEmbedder(fail=True))")
        self.calls.append(items)
        out = np.zeros((len(items), self._dimension), dtype=np.float32)
        for row, text in enumerate(items):
            for word in text.lower().split() or [""]:  # an empty text still gets a vector of its own
                digest = hashlib.sha256(word.encode("utf-8")).digest()
                out[row, int.from_bytes(digest[:4], "little") % self._dimension] += 1.0
                out[row, int.from_bytes(digest[4:8], "little") % self._dimension] += 0.5
        out /= np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
        return out


class FakeCoach:
    """Answers every message with its own text said back, as a coaching reply with the usual buttons.

    `messages` and `actions` are what the adapter handed in, in order. A message whose text
    contains `handoff_word` gets a handoff (ticket I-0001, I-0002, ...), so a test can see how
    the adapter draws one. `delay` makes `handle` slow, as an LLM composer would be.
    """

    def __init__(self, *, handoff_word: str = "person", delay: float = 0.0) -> None:
        self.messages: list[InboundMessage] = []
        self.actions: list[ActionEvent] = []
        self.escalations: list[tuple[int, str, Actor]] = []
        self.handoff_word = handoff_word
        self.delay = delay
        self._turns = itertools.count(1)
        self._tickets = itertools.count(1)
        self._lock = threading.Lock()

    def handle(self, message: InboundMessage) -> Reply:
        """Record the message; answer with its text said back."""
        if self.delay:
            threading.Event().wait(self.delay)
        with self._lock:
            self.messages.append(message)
            turn = f"fake-turn-{next(self._turns)}"
            handoff = None
            if self.handoff_word and self.handoff_word in message.text.lower():
                handoff = Handoff(target="integrator", reason="the teacher asked for a person",
                                  ticket=f"I-{next(self._tickets):04d}")
        return Reply(text=f"You said: {message.text}. What do you want your students to learn?", route=Route.COACH,
                     sources=[Source(id="fake-entry", title="A fake entry", url="https://example.org/fake")],
                     actions=list(COACH_ACTIONS), handoff=handoff, turn_id=turn)

    def handle_action(self, event: ActionEvent) -> Reply | None:
        """Record the click; answer it once per (turn, action), as the core does."""
        with self._lock:
            repeat = any(a.turn_id == event.turn_id and a.action == event.action for a in self.actions)
            self.actions.append(event)
        if repeat:
            return None
        return Reply(text=f"Noted: {event.action.value}.", route=Route.COACH, turn_id=event.turn_id)

    def escalation_action(self, escalation_id: int, action: str, actor: Actor) -> ActionResult:
        """Record the claim or resolve; the first of each changes something, a repeat does not."""
        with self._lock:
            repeat = any(e[:2] == (escalation_id, action) for e in self.escalations)
            self.escalations.append((escalation_id, action, actor))
        if repeat:
            return ActionResult(Outcome.UNCHANGED, message="Already done.")
        return ActionResult(Outcome.CHANGED, channel_text=f"I-{escalation_id:04d} {action}ed by {actor.name or actor.user_id}",
                            message=f"You {action}ed it.")
