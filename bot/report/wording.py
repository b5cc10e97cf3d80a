"""Words from teachers' questions: topic labels, questions for a draft entry, grade bands."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from bot.handoff.context import shorten
from knowledge.lexical import STOPWORDS, stem

# Words that say nothing about a topic ("how do I use ... in my lesson"), on top of the
# retrieval stop words, so cluster labels name the subject rather than the phrasing.
LABEL_STOPWORDS = STOPWORDS | frozenset(
    """use using used make making way ways good best better idea ideas help helping tip tips
    start starting set setting need needs know think thinking like try trying teach teaching
    lesson lessons class classes kid kids child children student students pupil pupils learner
    learners teacher teachers school anyone advice suggestion suggestions recommend someone
    thing things something anything stuff lot lots bit much many new next week term today
    actually really just still maybe also tell show give go going doing done work works working
    get getting let lets able sure easy easiest free quick way whats what's hows how's thoughts
    worth okay ok yes no yeah hello hi hey thanks thank cheers please pls""".split()
)

# The masker's and the scrubber's placeholders ("[NAME-1]", "[TEACHER]"): never a label word.
PLACEHOLDER = re.compile(r"\[[A-Z]+-\d+\]|\[(?:TEACHER|PERSON)\]")
_WORD = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*")
# Broader than the handoff context's grade pattern: "y7", "g2", "4th graders" and "prep" count here.
_GRADE = re.compile(
    r"\b(?:(?:year|yr|grade|gr|y|g)\s?(\d{1,2})s?|(\d{1,2})(?:st|nd|rd|th)\s+grade(?:rs)?|"
    r"(kindergarten|kinder|prep|reception|preschool|nursery))\b",
    re.IGNORECASE,
)


def as_question(text: str, limit: int = 200) -> str | None:
    """A teacher's message as one question ending in '?' (the knowledge format's rule)."""
    text = " ".join(text.split())
    if not text:
        return None
    # Up to the last question asked (context kept, trailing "thanks!!" dropped); a message
    # too long for that gives its longest asking sentence.
    if "?" in text:
        text = text[: text.rindex("?") + 1]
        if len(text) > limit:
            asked = [s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip().endswith("?")]
            text = max(asked, key=len)
    text = shorten(text, limit - 1)
    text = re.sub(r"[\s.!?,;:\u2026\-]+$", "", text)
    text = re.sub(r"[^\w\])\"'\u2019]+$", "", text)  # trailing emoji and symbols
    if len(text) < 3:
        return None
    return text[0].upper() + text[1:] + "?"


def _content_words(text: str) -> list[tuple[str, str]]:
    """(stem, surface) for each topical word, in order; a stop word breaks a phrase with ("", "")."""
    text = PLACEHOLDER.sub(" ", text.replace("\u2019", "'"))
    out: list[tuple[str, str]] = []
    for raw in _WORD.findall(text):
        raw = raw.strip("-'").split("'")[0]
        word = raw.lower()
        # Two letters only as an acronym or with a digit ("VR", "AI", "3D"); "an", "go" say nothing.
        short_ok = len(raw) == 2 and (raw.isupper() or any(c.isdigit() for c in raw))
        if (not word or word in LABEL_STOPWORDS or word.isdigit()
                or (len(word) < 3 and not short_ok)):
            out.append(("", ""))
            continue
        out.append((stem(word), raw if short_ok else word))
    return out


def _terms(text: str) -> dict[str, str]:
    """Unigram and adjacent-bigram keys of one text, each with its surface form."""
    words = _content_words(text)
    terms: dict[str, str] = {}
    for i, (key, surface) in enumerate(words):
        if not key:
            continue
        terms.setdefault(key, surface)
        if i + 1 < len(words) and words[i + 1][0] and words[i + 1][0] != key:
            terms.setdefault(f"{key} {words[i + 1][0]}", f"{surface} {words[i + 1][1]}")
    return terms


class Vocabulary:
    """Document frequencies over every question in the period, for distinctive labels."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.df: Counter[str] = Counter()
        self.n = 0
        for text in texts:
            self.n += 1
            self.df.update(_terms(text).keys())

    def keywords(self, texts: Sequence[str], k: int = 3) -> list[str]:
        """The k most distinctive words or two-word phrases shared by `texts`."""
        df: Counter[str] = Counter()
        surfaces: dict[str, Counter[str]] = defaultdict(Counter)
        for text in texts:
            for key, surface in _terms(text).items():
                df[key] += 1
                surfaces[key][surface] += 1
        if not df:
            return []
        need = 1 if len(texts) < 2 else 2  # a label word should come from more than one question
        scored = []
        for key, count in df.items():
            if count < need:
                continue
            idf = math.log((self.n + 1) / (self.df.get(key, 0) + 1)) + 1.0
            bonus = 1.4 if " " in key else 1.0  # "virtual reality" says more than "virtual"
            scored.append((count * idf * bonus, key))
        if not scored:
            scored = [(float(c), key) for key, c in df.items()]
        chosen: list[str] = []
        used: set[str] = set()
        for _, key in sorted(scored, key=lambda s: (-s[0], s[1])):
            parts = set(key.split())
            if parts & used:
                continue
            chosen.append(surfaces[key].most_common(1)[0][0])
            used |= parts
            if len(chosen) == k:
                break
        return chosen


def grade_bands(texts: Iterable[str]) -> list[str]:
    """Grade bands mentioned in questions ("yr 7", "grade 2s", "kindergarten"), in band order."""
    bands: set[str] = set()
    for text in texts:
        for m in _GRADE.finditer(text):
            if m.group(3):
                bands.add("K-2")
                continue
            number = int(m.group(1) or m.group(2))
            if number <= 2:
                bands.add("K-2")
            elif number <= 5:
                bands.add("3-5")
            elif number <= 8:
                bands.add("6-8")
            elif number <= 13:
                bands.add("9-12")
    return [b for b in ("K-2", "3-5", "6-8", "9-12", "adult") if b in bands]
