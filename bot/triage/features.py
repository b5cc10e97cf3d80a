"""Cheap text features shared by training and serving: word and character n-grams, sentences.

The same `ngrams` function is the analyzer scikit-learn fits with and the one the numpy
model serves with, so the two can never disagree about what a feature is.
"""

from __future__ import annotations

import re

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})
# Words, Slack :shortcodes:, and single symbols outside ASCII (emoji) each count as a token.
_TOKEN = re.compile(r":[a-z0-9_+\-]+:|[a-z0-9]+(?:'[a-z]+)?|[^\x00-\x7f\s\w]")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+|(?<=[a-z0-9)])\s+-\s+(?=[A-Za-z])")
CHAR_SIZES = (3, 4, 5)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens, shortcodes and emoji."""
    return _TOKEN.findall(text.lower().translate(_APOSTROPHES))


def ngrams(text: str) -> list[str]:
    """Word unigrams and bigrams (`w:`) and in-word character n-grams (`c:`, for typos)."""
    words = tokens(text)
    out = [f"w:{w}" for w in words]
    out.extend(f"w:{a} {b}" for a, b in zip(words, words[1:]))
    for w in words:
        if len(w) < 3 or not w.isalnum():
            continue
        padded = f" {w} "
        for n in CHAR_SIZES:
            out.extend(f"c:{padded[i:i + n]}" for i in range(len(padded) - n + 1))
    return out


def sentences(text: str) -> list[str]:
    """The message split where a reader would pause; a one-sentence message gives itself."""
    parts = [p.strip() for p in _SENTENCE_END.split(text) if p and p.strip()]
    return parts or [text]
