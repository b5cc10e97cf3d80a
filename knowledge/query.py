"""The ask inside a teacher's message: which sentences carry the need.

A real message is a story, a complaint and half a question; the need is often one sentence
in the middle. Retrieval leans toward these sentences (knowledge/search.py) without dropping
the rest, which still says the year group, the subject and the tool.
"""

from __future__ import annotations

import re

_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
# Sentences that ask for something even without a question mark.
_ASKING = re.compile(
    r"\b(any (good )?(ideas|suggestions|tips|advice|thoughts)|(i|we)('d| would)? (love|like|want|need|hope|'m hoping|"
    r"am hoping|'m trying|am trying|'m looking|am looking|wonder|wondered|was wondering)|how (do|can|could|should|would|"
    r"might) |what (could|can|should|would|is|are|'s) |which |is there |where (do|can|should) |help me|looking for|"
    r"not sure (how|what|where|whether|if)|(has|have) anyone|ideas for|tips on)", re.I)
# A message shorter than this is one thought: nothing to pick out.
MIN_WORDS = 18


def sentences(text: str) -> list[str]:
    """The message's sentences (and lines), trimmed, empty ones dropped."""
    return [s.strip() for s in _SENTENCES.split(text) if s and s.strip()]


def ask_text(text: str) -> str | None:
    """The sentences that carry the ask, joined; None for a short message or one where every sentence asks."""
    if len(text.split()) < MIN_WORDS:
        return None
    parts = sentences(text)
    asking = [s for s in parts if "?" in s or _ASKING.search(s)]
    if not asking or len(asking) == len(parts):
        return None
    return " ".join(asking)
