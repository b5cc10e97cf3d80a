"""Checks every model-written reply must pass before a teacher sees it.

The prompt asks the model to coach Socratically; these checks are what enforce it. They are
plain functions over text, so any composer (or a benchmark) can run them: a reply that fails
is repaired once or replaced by the template composer (see bot/llm.py).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from knowledge.entry import KnowledgeEntry

# The hard ceiling: the prompt asks for `max_words` (120 by default); a reply a few words
# over is not worth a second model call, one far over is.
DEFAULT_MAX_WORDS = 150
WORD_TOLERANCE = 1.25

NUMBERED_LINE = re.compile(r"^\s*(\d+[.)]|step\s+\d+)", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•·‣▪–]|\([a-z]\)|[a-z][.)])\s+(?P<rest>.*)$", re.IGNORECASE)
# A bullet that opens with an instruction or a sequence word reads as a step.
_STEP_VERBS = (
    "open|click|tap|press|go|navigate|select|choose|pick|create|make|type|enter|log|sign|download|install|"
    "upload|add|drag|drop|copy|paste|save|share|set|turn|write|insert|find|search|name|assign|publish|"
    "export|import|launch|start|first|then|next|after|afterwards|finally|lastly|once"
)
STEP_BULLET = re.compile(rf"^(?:{_STEP_VERBS})\b", re.IGNORECASE)
_SEQUENCE_WORD = re.compile(
    r"(?:^|[.!?:;]\s+|\n)\s*(first(?:ly)?|second(?:ly)?|third(?:ly)?|then|next|after that|afterwards|finally|lastly)\b[,:]?",
    re.IGNORECASE,
)
# A resource list written into the text: the adapter already draws the sources under the reply.
RESOURCE_LIST = re.compile(r"(when you(?:'|\u2019)re ready|resources?|further reading|read more|sources?)\s*:", re.I)
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'\])}]+", re.IGNORECASE)
_TRAILING = ".,;:!?*_"
# Phrases a reply only contains when the model is talking about its instructions or echoing
# injected ones, rather than coaching.
LEAKAGE = re.compile(
    r"(system (?:prompt|message)|developer (?:message|prompt)|my (?:instructions|guidelines|prompt)\b|"
    r"(?:ignore|disregard|forget)\s+(?:all\s+|any\s+|your\s+|my\s+|the\s+|previous\s+|prior\s+|above\s+)+"
    r"(?:instructions|rules|prompts?)|as an ai language model|i am an ai\b|i'm an ai\b|"
    r"i (?:was|have been|am) (?:instructed|told|programmed) to|"
    r"</?\s*(?:entry|knowledge_entries|conversation_so_far|turn|teacher_message)\b|\{\s*\"reply\"\s*:)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CheckResult:
    """What the checks found; `problems` are written to be handed back to the model."""

    problems: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # cited ids, plus entries whose links the reply uses

    @property
    def ok(self) -> bool:
        return not self.problems


def word_count(text: str) -> int:
    """Words as a reader counts them (URLs count as one)."""
    return len(text.split())


def has_question(text: str) -> bool:
    """True when the reply asks the teacher something (a '?' in a URL does not count)."""
    return "?" in URL.sub(" ", text)


def walkthrough_lines(text: str) -> list[str]:
    """Lines that make the reply a step-by-step walkthrough; empty when it is not one."""
    lines = [line for line in text.splitlines() if line.strip()]
    numbered = [line.strip() for line in lines if NUMBERED_LINE.match(line)]
    if numbered:
        return numbered
    bullets = [m.group("rest").strip() for line in lines if (m := _BULLET.match(line))]
    steps = [b for b in bullets if STEP_BULLET.match(b)]
    # Two bullets that each tell the teacher what to do are a procedure; so are three or
    # more bullets of any kind stacked up (coaching offers a question, not a list).
    if len(steps) >= 2 or len(bullets) >= 3:
        return bullets
    sequence = [m.group(1) for m in _SEQUENCE_WORD.finditer(text)]
    if len(sequence) >= 3:  # "First ... Then ... Finally ..." is a walkthrough in prose
        return sequence
    return []


def urls_in(text: str) -> list[str]:
    """Every URL in the text, without trailing punctuation."""
    return [m.group(0).rstrip(_TRAILING) for m in URL.finditer(text)]


def _norm_url(url: str) -> str:
    url = url.strip().rstrip(_TRAILING).lower()
    url = re.sub(r"^https?://", "", url)
    url = url.removeprefix("www.")
    return url.rstrip("/")


def leakage(text: str) -> list[str]:
    """Phrases that show the model following or discussing instructions instead of coaching."""
    return [m.group(0) for m in LEAKAGE.finditer(text)]


def check_reply(
    text: str,
    cited: Sequence[str],
    retrieved: Mapping[str, KnowledgeEntry],
    *,
    max_words: int = DEFAULT_MAX_WORDS,
    max_sources: int = 2,
    extra_leakage: Iterable[str] = (),
    question_wanted: bool = True,
) -> CheckResult:
    """Run every check on one reply.

    `cited` are the entry ids the reply claims to use; `retrieved` are the entries the
    composer was given, the only ones a reply may cite or link to. `extra_leakage` are
    phrases that must not appear (e.g. injected text found in the entries). `question_wanted` is False
    when the teacher asked for no questions ("just tell me", "no questions please"): every other coaching
    reply must hold a question, that one must not.
    """
    problems: list[str] = []
    if not text.strip():
        return CheckResult(["the reply is empty"], [])
    if question_wanted and not has_question(text):
        problems.append("it asks the teacher no question; end with one or two coaching questions")
    elif not question_wanted and has_question(text):
        problems.append("the teacher asked for no questions; give the answer and ask nothing back")
    steps = walkthrough_lines(text)
    if steps:
        problems.append(f"it reads as a step-by-step walkthrough ({steps[0][:40]!r}...); coach with questions instead "
                        "of numbered steps, bullets of instructions or 'first/then/finally'")
    words = word_count(text)
    if words > max_words:
        problems.append(f"it is {words} words; keep it under {max_words}")
    sources: list[str] = []
    unknown = [sid for sid in cited if sid not in retrieved]
    if unknown:
        problems.append(f"it cites entries that were not provided: {', '.join(map(str, unknown))}; "
                        f"cite only these ids: {', '.join(retrieved) or '(none)'}")
    for sid in cited:
        if sid in retrieved and sid not in sources:
            sources.append(sid)
    by_url = {_norm_url(link.url): eid for eid, entry in retrieved.items() for link in entry.links}
    foreign = []
    for url in urls_in(text):
        owner = by_url.get(_norm_url(url))
        if owner is None:
            foreign.append(url)
        elif owner not in sources:
            sources.append(owner)  # a link the reply uses counts as a resource offered
    if foreign:
        problems.append(f"it links to {', '.join(foreign)}, which is not a link of any provided entry; "
                        "use only the entries' own links")
    own = [url for url in urls_in(text) if url not in foreign]
    listed = RESOURCE_LIST.search(text)
    if own or listed:
        shown = own[0] if own else listed.group(0) if listed else ""
        problems.append(f"it writes the resources into the text ({shown!r}); the chat shows them under the reply, "
                        "so leave links and resource lists out of the text and list the entry ids in \"sources\"")
    if len(sources) > max_sources:
        problems.append(f"it offers {len(sources)} resources; offer at most {max_sources}")
    leaked = leakage(text) + [p for p in extra_leakage if p and p.lower() in text.lower()]
    if leaked:
        problems.append(f"it talks about instructions or prompts ({leaked[0][:40]!r}); just coach the teacher")
    return CheckResult(problems, sources)


def answers_nothing(text: str) -> bool:
    """True when every sentence is a question: a direct ask then goes unanswered."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", URL.sub(" ", text)) if p.strip()]
    return bool(parts) and all(p.endswith("?") for p in parts)


def passes(text: str, sources: Collection[str], retrieved: Mapping[str, KnowledgeEntry], *,
           max_words: int = DEFAULT_MAX_WORDS, max_sources: int = 2) -> bool:
    """Shorthand for tests and benchmarks: does a finished reply pass every check?"""
    return check_reply(text, list(sources), retrieved, max_words=max_words, max_sources=max_sources).ok
