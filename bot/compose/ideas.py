"""Concrete ideas drawn from an entry's note: the one sentence of it that best fits the ask."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from bot.compose.output_checks import leakage, urls_in
from bot.compose.phrasing import is_suggestion
from knowledge.entry import KnowledgeEntry
from knowledge.lexical import tokenize

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_MARKDOWN = re.compile(r"[*_`#>]+|\[([^\]]+)\]\([^)]+\)")
# Sentences that suggest something to do read as ideas; definitions and warnings less so.
_CONCRETE = re.compile(r"\b(such as|for example|e\.g\.|try|could|can|works? (best|well)|let|ask|give|use|record|"
                       r"build|make|create|share|post|design|invite|pair|swap|start)\b", re.I)
# A sentence that opens by pointing back ("It", "These") needs the one before it to make sense.
_DANGLING = re.compile(r"^(it|its|this|these|that|those|they|their|such|both|here|then|also|but|and|or|many requests)\b",
                       re.I)
_STEPWISE = re.compile(r"^\s*(\d+[.)]|step\s+\d+|first\b|then\b|next\b|finally\b)", re.I)
MIN_WORDS, MAX_WORDS = 9, 34
# A caveat is worth knowing but is not the answer to "just tell me".
_CAVEAT = re.compile(r"^(watch|beware|avoid|don'?t|do not|be careful|note|never|however|unless|check)\b", re.I)
# "How long / how many ...?" is answered by a sentence with a quantity in it.
_HOW_MUCH = re.compile(r"\bhow (long|many|much|often|big)\b", re.I)
_QUANTITY = re.compile(r"\b(\d+|one|two|three|four|five|ten|twenty|minutes?|seconds?|hours?|days?|weeks?|"
                       r"short|shorter|long|longer|few)\b", re.I)


def said_before(sentence: str, replies: Iterable[str]) -> bool:
    """Whether a reply already carried the sentence, word for word or said as a suggestion ("You could ...",
    which keeps its ending)."""
    tail = " ".join(sentence.rstrip(".!").split()[-6:])
    return any(sentence in text or tail in text for text in replies)


def note_sentences(entry: KnowledgeEntry) -> list[str]:
    """The entry's note as plain sentences (line wraps joined, Markdown dropped)."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", entry.body):
        plain = _MARKDOWN.sub(lambda m: m.group(1) or "", " ".join(paragraph.split()))
        out.extend(s.strip() for s in _SPLIT.split(plain) if s.strip())
    return out


# Lifted out of its note, a sentence that leans on what came before refers to nothing ("the graph",
# "both phases", "as above"): it is never used alone.
_LEANS_BACK = re.compile(r"\b(both (of )?(the |these |those )?\w+s\b|the (above|former|latter|following|same)\b|"
                         r"as (above|below|mentioned)|(this|that|these|those) (phase|step|stage|part|one|ones|"
                         r"graph|chart|table|image|example|approach|idea|tool|model)s?\b)", re.I)
# "The graph shows...", "The second phase...": a definite noun the ask, title and tags never named
# points at something earlier in the note.
_THE_NOUN = re.compile(r"^the (\w+)\b", re.I)
# A definition says what a thing is, not what to do; a setting is for an admin, not a lesson idea.
_DEFINITION = re.compile(r"^[\w' -]{1,40}\b(is|are|means|refers to|stands for)\b (a|an|the|when|where|how)\b", re.I)
_SETTING = re.compile(r"\b(settings?|moderat\w*|admin\w*|permissions?|approve|approval|toggle|turn (on|off)|"
                      r"switch (on|off)|privacy|filter\w*|log ?in|account\w*)\b", re.I)
# "Is it ok / safe for 7-year-olds?": approval and moderation settings are part of the answer.
_PERMISSION_ASK = re.compile(r"\b(allowed|ok|okay|safe|legal|appropriate|permitted|year olds?|age)\b", re.I)
# "Is it ok to ...?" is answered by the condition that makes it ok: an age, an approval, consent, a policy.
PERMISSION_BONUS = 0.5
_PERMISSION_Q = re.compile(r"\b((is|are) (it|this|that|they) (ok|okay|allowed|safe|legal|appropriate|fine)|allowed|legal|"
                           r"permitted)\b", re.I)
_PERMISSION_CUE = re.compile(r"\b(young\w*|age|ages|consent|approv\w*|polic\w*|safe\w*|licen[cs]\w*|rights?|"
                             r"permission|guidance)\b", re.I)
# Words in nearly every ask: they say nothing about which sentence answers this one.
_GENERIC = frozenset(tokenize("student students pupils kids class classes year lesson lessons teach teacher use using "
                              "idea ideas way ways help make thing things good better work tool tools app need try "
                              "get able something"))


def ask_terms(ask: str) -> set[str]:
    """The ask's key words: stemmed, stop words and words common to every ask left out."""
    return set(tokenize(ask)) - _GENERIC


def stands_alone(sentence: str, named: set[str]) -> bool:
    """Whether a sentence reads whole when lifted out of its note; `named` are the words the ask, the entry's
    title and tags already make known (a definite noun among them points at nothing earlier)."""
    if _DANGLING.match(sentence) or _LEANS_BACK.search(sentence):
        return False
    the = _THE_NOUN.match(sentence)
    return not the or not tokenize(the.group(1)) or bool(set(tokenize(the.group(1))) & named)


def answer_score(sentence: str, wanted: set[str], ask: str) -> float:
    """How well one note sentence answers the ask: its share of the ask's key words, more for an action or an
    example, less for a definition, or a setting the ask did not mention."""
    terms = set(tokenize(sentence))
    score = len(wanted & terms) / (1 + len(wanted) ** 0.5)
    score += 0.6 if _CONCRETE.search(sentence) else 0.0
    score -= 0.5 if _DEFINITION.match(sentence) else 0.0
    score -= 0.7 if _SETTING.search(sentence) and not (_SETTING.search(ask) or _PERMISSION_ASK.search(ask)) else 0.0
    return score


# With sentence vectors at hand (bot/compose/fit.py), closeness in meaning to the ask counts this much per
# unit of cosine (sentences of one entry lie within about 0.3 of each other); against it an action (+0.6)
# or a setting (-0.7) still tips a near-tie.
MEANING_WEIGHT = 3.0
# A sentence sharing no key word of the ask, and offering nothing to do, answers it only this close in meaning.
MIN_MEANING = 0.3
# What a definition loses besides, unless the ask is what something is or means.
DEFINITION_PENALTY = 0.5
# "Any ideas?": a sentence that proposes something to do, and can be said as "you could ...", answers it.
ACTION_BONUS = 0.6
# A sentence suiting the limit a follow-up added ("only 3 minutes": short, quick, one question) wins.
CONSTRAINT_BONUS = 1.0
# "Which tool?", "just give me a name": a sentence naming a kind of tool answers it; a definition does not.
TOOL_BONUS = 1.2
_TOOL_ASK = re.compile(r"\b((which|what) (tool|tools|app|apps|platform|program|software|site|website)|"
                       r"(a|the) name\b|what (should|do|can) (i|we) use|what to use)\b", re.I)
_TOOL_CUE = re.compile(r"\b(apps?|tools?|platforms?|forms?|slides?|documents?|spreadsheets?|tablets?|browser\S*|"
                       r"websites?|software|programs?|wall|board|templates?|cards?|whiteboards?)\b", re.I)
# "What could they make?", "a good first project?": a sentence naming examples answers it.
EXAMPLE_BONUS = 0.4
_ACTIVITY_ASK = re.compile(r"\b(projects?|activit(y|ies)|(make|create|build|produce|record|design|do)\b[^.?!]*\?)", re.I)
_EXAMPLES = re.compile(r"\b(such as|for example|for instance|e\.g\.)|: ", re.I)
_WHAT_IS = re.compile(r"(what('s| is| are| does)|mean(s|ing)?|defin\w*)", re.I)


def scored_sentences(entry: KnowledgeEntry, ask: str, *, avoid: Iterable[str] = (), straight: bool = False,
                     must_answer: bool = False, fit: Callable[[str], float | None] | None = None,
                     actions: bool = False, prefer: re.Pattern[str] | None = None) -> list[tuple[float, str]]:
    """The sentences of the entry's note that may answer `ask`, each with its score, best first.
    `fit` gives a sentence's closeness in meaning to the ask (None when not measured); see best_sentence.
    `actions`: the ask wants ideas, so a sentence proposing something to do counts more.
    `prefer`: words of a limit the teacher added; a sentence holding them counts more."""
    tool_ask = bool(_TOOL_ASK.search(ask))
    permission_ask = bool(_PERMISSION_Q.search(ask))
    activity_ask = actions and bool(_ACTIVITY_ASK.search(ask))
    wanted = ask_terms(ask)
    about = set(tokenize(entry.title + " " + " ".join(entry.tags)))
    named = about | set(tokenize(ask))
    counting = bool(_HOW_MUCH.search(ask))
    skip = list(avoid)
    out: list[tuple[float, str]] = []
    for index, sentence in enumerate(note_sentences(entry)):
        words = len(sentence.split())
        if not MIN_WORDS <= words <= MAX_WORDS or _STEPWISE.match(sentence) or not stands_alone(sentence, named):
            continue
        if said_before(sentence, skip) or leakage(sentence) or urls_in(sentence):
            continue  # said already, or text a reply must never carry (instructions to a model, links)
        terms = set(tokenize(sentence))
        meaning = fit(sentence) if fit is not None else None
        # No key word of the ask: it answers only if it offers something to do about the entry's subject, or
        # means much the same as the ask.
        if (must_answer and wanted and not wanted & terms and not (_CONCRETE.search(sentence) and terms & about)
                and (meaning is None or meaning < MIN_MEANING)):
            continue
        score = answer_score(sentence, wanted, ask)
        if meaning is not None:
            score += MEANING_WEIGHT * meaning
            # A definition is close in meaning to any ask about its subject, yet answers only "what is it".
            score -= DEFINITION_PENALTY if _DEFINITION.match(sentence) and not _WHAT_IS.search(ask) else 0.0
        # A sentence that names what the entry is about stands alone under its source.
        score += 0.4 if terms & about else 0.0
        score -= 0.5 if "..." in sentence or "…" in sentence else 0.0
        score += 0.6 if counting and _QUANTITY.search(sentence) else 0.0
        # Earlier sentences say what the entry is about; a "how long" answer may sit further in.
        score -= (0.3 if straight and not counting else 0.05) * index
        score -= 0.6 if straight and _CAVEAT.match(sentence) else 0.0
        score += ACTION_BONUS if actions and is_suggestion(sentence) else 0.0
        score += EXAMPLE_BONUS if activity_ask and _EXAMPLES.search(sentence) else 0.0
        score += PERMISSION_BONUS if permission_ask and _PERMISSION_CUE.search(sentence) else 0.0
        score += CONSTRAINT_BONUS if prefer is not None and prefer.search(sentence) else 0.0
        if tool_ask and _TOOL_CUE.search(sentence):
            # A tool named further into the note still answers "which tool" (the opening defines the idea).
            score += TOOL_BONUS + (0.25 * index if straight and not counting else 0.0)
        if tool_ask and _DEFINITION.match(sentence):
            score -= DEFINITION_PENALTY  # what a thing is does not say what to use for it
        out.append((score, sentence))
    return sorted(out, key=lambda pair: -pair[0])


def best_sentence(entry: KnowledgeEntry, ask: str, *, avoid: Iterable[str] = (), straight: bool = False,
                  must_answer: bool = False, fit: Callable[[str], float | None] | None = None,
                  prefer: re.Pattern[str] | None = None) -> str | None:
    """The sentence of the entry's note that best answers `ask`, short enough to stand alone; None if none is.
    `straight`: the answer to "just tell me", which leans on the note's opening and away from caveats.
    `must_answer`: None also when no sentence shares a key word of the ask or offers something to do, so the
    reply can say so rather than paste a sentence that answers something else.
    `fit`: each sentence's closeness in meaning to the ask, which then weighs most."""
    ranked = scored_sentences(entry, ask, avoid=avoid, straight=straight, must_answer=must_answer, fit=fit,
                              prefer=prefer)
    return ranked[0][1] if ranked else None


# A straight answer may take the note's next sentence too when the first is this short, up to the total.
SHORT_ANSWER_WORDS, MAX_ANSWER_WORDS = 14, 45


def straight_answer(entry: KnowledgeEntry, ask: str, *, avoid: Iterable[str] = (),
                    fit: Callable[[str], float | None] | None = None,
                    prefer: re.Pattern[str] | None = None) -> str | None:
    """One or two sentences of the note that answer `ask` directly: the best sentence, and the next one when
    the best is short and the next carries it on; any plain sentence of the note when none scores."""
    skip = list(avoid)
    plain = [s for s in note_sentences(entry)
             if len(s.split()) <= MAX_WORDS and not _STEPWISE.match(s) and not leakage(s) and not urls_in(s)
             and not said_before(s, skip)]
    named = set(tokenize(entry.title + " " + " ".join(entry.tags) + " " + ask))
    first = best_sentence(entry, ask, avoid=skip, straight=True, fit=fit, prefer=prefer) or next(
        (s for s in plain if stands_alone(s, named)), None)
    if first is None:
        return None
    sentences = note_sentences(entry)
    index = sentences.index(first) if first in sentences else -1
    nxt = sentences[index + 1] if 0 <= index < len(sentences) - 1 else None
    if (nxt and nxt in plain and len(first.split()) < SHORT_ANSWER_WORDS and not _LEANS_BACK.search(nxt)
            and not (_SETTING.search(nxt) and not _SETTING.search(ask))
            and len(first.split()) + len(nxt.split()) <= MAX_ANSWER_WORDS):
        return f"{first} {nxt}"
    return first
