"""The one place that wires settings, store and core together (every platform starts here)."""

from __future__ import annotations

import json
import os
import logging
from importlib import resources
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from adapters.delivery import Delivery, build_delivery
from adapters.errors import StartupError
from adapters.platforms import declare_platforms
from bot.checkins.calendar import SchoolCalendar
from bot.checkins.sending import CheckinDispatcher, CheckinWorker
from bot.checkins.service import CheckinService
from bot.checkins.store import Checkins
from bot.coach import Coach
from bot.compose.fit import SentenceFit
from bot.handoff.desk import EscalationListener
from bot.compose.templates import Composer, TemplateComposer
from bot.handoff.escalations import Escalations
from bot.settings import Settings
from bot.state.memory import ConversationMemory
from bot.state.database import StateDB, StateError, private_dir, utcnow
from bot.state.privacy import PrivacyStore, RetentionWorker
from bot.triage.build import CORPUS_FOLDER, corpus_files, load_triage
from bot.triage.corpus import TriageConfigError, load_corpus_files
from bot.triage.rules import PhraseRules
from bot.triage.router import Triage
from knowledge.glossary import Glossary, GlossaryError
from knowledge.embeddings import Embedder, MaskedEmbedder
from knowledge.minilm import MiniLMEmbedder
from knowledge.openai_embeddings import OpenAIEmbedder
from bot.privacy.masker import shared_masker
from knowledge.parser import FolderResult, load_folder
from knowledge.search import Retriever
from knowledge.store import KnowledgeStore, StoreError, SyncReport, open_client

log = logging.getLogger(__name__)

# Through the package, as installed (a wheel or the source tree alike).
STARTER_DIR = Path(str(resources.files("knowledge") / "starter"))
SOURCE_RECORD = "kb-source.json"



def check_data_dir(data_dir: Path) -> None:
    """Fail early, and clearly, on a data directory that cannot be used."""
    try:
        private_dir(data_dir)
        # A name of its own per process: several bots may share one data directory.
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise StartupError(f"data directory {data_dir} is not writable ({exc.strerror}); "
                           "set COACH_DATA_DIR to a folder the coach may write") from None


def make_embedder(settings: Settings) -> Embedder:
    if settings.embeddings == "openai":
        key = settings.openai.api_key.get_secret_value() if settings.openai.api_key else None
        if not key:
            raise StartupError("COACH_EMBEDDINGS=openai needs OPENAI_API_KEY")
        remote = OpenAIEmbedder(model=settings.openai.embedding_model, api_key=key,
                                base_url=settings.openai.base_url, timeout=settings.openai.timeout_seconds)
        # Remote embeddings see masked text only: the same masker as every other exit.
        masker = shared_masker(settings)
        return MaskedEmbedder(remote, lambda text: masker.mask(text).text)
    return MiniLMEmbedder()


def open_store(settings: Settings, embedder: Embedder | None = None) -> KnowledgeStore:
    """The knowledge store named by the settings (on disk, or a Chroma server)."""
    check_data_dir(settings.data_dir)
    try:
        client = open_client(data_dir=settings.data_dir, chroma_url=settings.chroma_url)
        return KnowledgeStore(client, embedder or make_embedder(settings),
                              token_dir=settings.data_dir / "cache" / "token-vectors")
    except StoreError as exc:
        raise StartupError(str(exc)) from None


def read_source(settings: Settings) -> dict:
    path = settings.data_dir / SOURCE_RECORD
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def import_folder(store: KnowledgeStore, settings: Settings, folder: Path, *, prune: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> tuple[FolderResult, SyncReport]:
    """Parse a folder and sync it into the store; the starter set gives way to a school's own folder."""
    parsed = load_folder(folder)
    is_starter = folder.resolve() == STARTER_DIR.resolve()
    previous = read_source(settings)
    # A school's first own import replaces the starter set rather than mixing with it.
    replace_starter = not is_starter and previous.get("source") == "starter"
    report = store.sync(parsed.entries, prune=prune or replace_starter, progress=progress)
    record = {"source": "starter" if is_starter else str(folder.resolve())}
    if not is_starter or not previous:
        (settings.data_dir / SOURCE_RECORD).write_text(json.dumps(record))
    return parsed, report


def ensure_knowledge(store: KnowledgeStore, settings: Settings,
                     progress: Callable[[int, int], None] | None = None) -> SyncReport | None:
    """On first run (empty store, nothing imported before) load the starter knowledge base."""
    if store.count() > 0 or read_source(settings):
        if store.model_name != store.embedder.name:
            return store.sync(list(store.entries().values()))
        return None
    _, report = import_folder(store, settings, STARTER_DIR, progress=progress)
    return report


def check_triage_files(settings: Settings) -> None:
    """Read the triage phrases, corpus and glossary once, so a broken file stops start-up before anything slow."""
    try:
        PhraseRules.from_file(settings.config.path("triage.yaml"))
        load_corpus_files(corpus_files(settings.config), CORPUS_FOLDER)
    except TriageConfigError as exc:
        raise StartupError(f"triage: {exc}") from None
    try:
        Glossary.from_file(settings.config.path("tool-glossary.yaml"))
    except GlossaryError as exc:
        raise StartupError(f"tool glossary: {exc}") from None


def make_triage(settings: Settings, retriever: Retriever | None = None) -> Triage:
    """Phrase rules and the learned router over the local MiniLM vector of each message.

    Triage always runs on this machine: with remote embeddings for retrieval, triage still
    embeds locally, so no message (a disclosure least of all) leaves before it is triaged.
    Messages are read with the glossary's plain expansion, as the shipped model was trained
    (`bot/triage/ship.py`, `coach triage explain|check`); when the retriever reads a message the
    same way (no tool name that is also a teaching idea), its query vector serves triage too.
    """
    store_embedder = retriever.store.embedder if retriever is not None else None
    local = store_embedder if isinstance(store_embedder, MiniLMEmbedder) else MiniLMEmbedder()
    expand = _glossary_expander(settings)
    same_reading = _same_reading(retriever, expand) if retriever is not None and local is store_embedder else None

    def embed_one(text: str) -> np.ndarray:
        if retriever is not None and same_reading is not None and same_reading(text):
            return retriever.embed_query(text)  # the retriever keeps the word pieces for its re-ranking
        return local.embed([expand(text)])[0]

    try:
        return load_triage(settings.config, settings.data_dir / "cache", model_name=local.name,
                           embed_many=local.embed, embed_one=embed_one, prepare=expand, shares_vector=same_reading)
    except TriageConfigError as exc:
        raise StartupError(f"triage: {exc}") from None


def _same_reading(retriever: Retriever, expand: Callable[[str], str]) -> Callable[[str], bool]:
    """True for a message the retriever embeds as triage does (the same text after each one's expansion)."""
    return lambda text: retriever.expand(text) == expand(text)


def _glossary_expander(settings: Settings) -> Callable[[str], str]:
    glossary_file = settings.config.path("tool-glossary.yaml")
    if not glossary_file.exists():
        return lambda text: text
    return Glossary.from_file(glossary_file).expanded


def make_retriever(settings: Settings, store: KnowledgeStore) -> Retriever:
    """The retriever the settings describe, with the school's tool glossary."""
    glossary_file = settings.config.path("tool-glossary.yaml")
    glossary = Glossary.from_file(glossary_file) if glossary_file.exists() else None
    return Retriever(store, mode=settings.retrieval.mode, lexical_weight=settings.retrieval.lexical_weight,
                     context_weight=settings.retrieval.context_weight, glossary=glossary,
                     late_interaction=settings.retrieval.late_interaction, ask_weight=settings.retrieval.ask_weight)


def make_template_composer(settings: Settings, store: KnowledgeStore) -> TemplateComposer:
    """The template composer; it ranks the notes' sentences by meaning with the store's own embedder when that
    runs on this machine (a remote one would send every reply's ask out, and cost a request per reply)."""
    return TemplateComposer(SentenceFit(store.embedder) if settings.embeddings == "local" else None)


@dataclass
class Runtime:
    """Everything a platform needs, built once."""

    settings: Settings
    coach: Coach
    store: KnowledgeStore
    db: StateDB
    delivery: Delivery | None = None  # the handoff outbox and its worker; None when nothing is delivered
    retention: RetentionWorker | None = None  # the daily purge; None for one-off runs such as replay
    checkins: CheckinDispatcher | None = None  # sends due check-ins through this process's platforms
    checkin_worker: CheckinWorker | None = None

    def add_checkin_sender(self, sender: object) -> None:
        """A platform server's own check-in sender (bound to its event loop); starts the sender thread if needed."""
        if self.checkins is None:
            return
        self.checkins.add_sender(sender)  # type: ignore[arg-type]
        if self.checkin_worker is None:
            self.checkin_worker = CheckinWorker(self.checkins, self.settings.checkins.poll_seconds).start()

    def close(self, flush_seconds: float = 5.0) -> None:
        """Stop the handoff worker after delivering what is due; undelivered rows wait in the outbox."""
        if self.retention is not None:
            self.retention.stop()
        if self.checkin_worker is not None:
            self.checkin_worker.stop(timeout=flush_seconds)
        if self.delivery is not None:
            self.delivery.close(flush_seconds)


def build_runtime(settings: Settings, *, listener: EscalationListener | None = None,
                  composer: Composer | None = None, auto_starter: bool = True,
                  progress: Callable[[int, int], None] | None = None, deliver: bool = True,
                  clock: Callable[[], datetime] = utcnow) -> Runtime:
    """Open the store and the state database and compose the coach.

    With `deliver` (the default) and no `listener` given, escalations go to the handoff outbox and a
    background worker delivers them to the configured targets. `coach replay` passes
    `deliver=False`: escalations are recorded, nothing is sent.
    """
    declare_platforms()
    check_triage_files(settings)
    try:
        # First of the slow parts: a database that cannot be brought to this install's schema
        # (or that a newer version upgraded) stops the start before the knowledge is indexed.
        db = StateDB(settings.state_url)
    except StateError as exc:
        raise StartupError(str(exc)) from None
    store = open_store(settings)
    if auto_starter:
        try:
            ensure_knowledge(store, settings, progress=progress)
        except StoreError as exc:
            raise StartupError(str(exc)) from None
    shared_masker(settings)  # every exit masks with this one; its spaCy pipeline loads on the first text
    retriever = make_retriever(settings, store)
    triage = make_triage(settings, retriever)
    template = make_template_composer(settings, store)
    if settings.llm_enabled and (composer is None or settings.openai.llm_triage):
        composer, triage = _llm_parts(settings, db, retriever, triage, composer, template)
    memory, escalations = ConversationMemory(db), Escalations(db)
    delivery = None
    if deliver and listener is None:
        delivery = build_delivery(settings, db, escalations, memory)
        listener = delivery.listener if delivery is not None else None
    checkins, dispatcher, worker = _checkin_parts(settings, db, memory, store, clock, deliver=deliver)
    coach = Coach(settings=settings, retriever=retriever, triage=triage, memory=memory,
                  escalations=escalations, composer=composer or template, fallback=template, listener=listener,
                  checkins=checkins)
    # A process that delivers is a running bot: it also applies the retention policy, once a day.
    retention = RetentionWorker(PrivacyStore(db, settings.retention)).start() if deliver else None
    return Runtime(settings, coach, store, db, delivery, retention=retention, checkins=dispatcher,
                   checkin_worker=worker)


def _checkin_parts(settings: Settings, db: StateDB, memory: ConversationMemory, store: KnowledgeStore,
                   clock: Callable[[], datetime], *, deliver: bool
                   ) -> tuple[CheckinService | None, CheckinDispatcher | None, CheckinWorker | None]:
    """Coaching cycles: the service the coach calls and, when this process can send, the sender thread."""
    if not settings.checkins.enabled:
        return None, None, None
    try:
        calendar = SchoolCalendar.from_settings(settings.checkins)
    except ValueError as exc:
        raise StartupError(str(exc)) from None

    def title(entry_id: str) -> str | None:
        entry = store.get(entry_id)
        return entry.title if entry is not None else None

    service = CheckinService(Checkins(db, clock=clock, lease_seconds=settings.checkins.lease_seconds), calendar,
                             settings.checkins, memory, integrator_name=settings.handoff.integrator_name,
                             titles=title, clock=clock, masker=shared_masker(settings))
    if not deliver:  # replay: offers are recorded, nothing is ever sent
        return service, None, None
    from adapters.delivery.checkin_senders import build_senders

    dispatcher = CheckinDispatcher(service, build_senders(settings, db))
    worker = CheckinWorker(dispatcher, settings.checkins.poll_seconds).start() if dispatcher.senders else None
    return service, dispatcher, worker

def _llm_parts(settings: Settings, db: StateDB, retriever: Retriever, triage: Triage,
               composer: Composer | None, template: TemplateComposer) -> tuple[Composer, Triage]:
    """LLM mode: the model writes replies (templates as fallback) and, if asked, helps triage."""
    # Imported here so template mode never loads the openai SDK.
    from bot.compose.llm import ChatModel, LLMComposer, LLMConfigError
    from bot.triage.model_assisted import ModelAssistedTriage
    from bot.state.usage import UsageLog

    usage = UsageLog(db, prices=settings.openai.prices)
    try:
        if composer is None:
            composer = LLMComposer(settings, usage=usage, fallback=template)
        if settings.openai.llm_triage:
            chat = ChatModel(settings.openai, usage=usage)

            def confidence(text: str, vector: np.ndarray | None) -> float:
                # Remote embeddings see masked text only: the embedder masks what it sends (make_embedder).
                return retriever.search(text, k=3, vector=triage.retrieval_vector(text, vector)).confidence

            triage = ModelAssistedTriage(  # type: ignore[assignment]  # same decide() as Triage
                triage, chat, confidence=confidence,
                min_confidence=settings.retrieval.min_confidence,
                mask_private_data=settings.openai.mask_private_data, masker=shared_masker(settings))
    except LLMConfigError as exc:
        raise StartupError(str(exc)) from None
    log.info("LLM mode: replies by %s%s", settings.openai.model,
             ", model-assisted triage on" if settings.openai.llm_triage else "")
    return composer, triage
