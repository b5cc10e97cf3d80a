"""Masking of student data before anything leaves the school's machine.

Teachers paste names, e-mail addresses, phone numbers and grades into chat. An LLM call,
a ticket or a handoff carries as little of that as it can: each private span becomes a
placeholder such as `[STUDENT-1]`, and the mapping stays local so a reply can be unmasked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
PHONE = re.compile(r"(?<![\w/])(?:\+?\d[\d\s().-]{7,}\d)(?![\w/])")
ID_NUMBER = re.compile(r"\b(?=[A-Z]*\d)[A-Z0-9]{6,}\b|\b\d{5,}\b")
# A capitalised name after a cue ("my student Jamie", "Jamie Lee in my class") is a student.
_CUE = (
    r"(?:student|pupil|learner|child|kid|boy|girl|son|daughter|named|called|"
    r"year \d+s?|yr \d+s?|grade \d+s?|gr \d+s?)"
)
NAME_AFTER_CUE = re.compile(rf"(?i:\b{_CUE})\s+(?:called\s+|named\s+)?([A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+)?)")
NAME_BEFORE_VERB = re.compile(
    r"\b([A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+)?)\s+(?=(?:in my|from my|who is in|in year|in grade|in yr|in gr)\b)"
)
NOT_NAMES = frozenset(
    "I I'm I've I'd Monday Tuesday Wednesday Thursday Friday Saturday Sunday Google Canvas Teams Slack "
    "Seesaw Padlet Kahoot Zoom Apple Microsoft Chromebook Chromebooks iPad iPads Year Grade English Maths "
    "Math Science History Geography French Spanish Art Music PE The A An And But So My Our We They She He "
    "Ms Mr Mrs Dr Miss Sir".split()
)


@dataclass
class Masked:
    """Masked text and the local mapping back to the original spans."""

    text: str
    mapping: dict[str, str] = field(default_factory=dict)

    def unmask(self, text: str) -> str:
        """Put the original spans back (only ever on the school's side)."""
        for placeholder, original in self.mapping.items():
            text = text.replace(placeholder, original)
        return text


class Masker:
    """Replaces e-mails, phone numbers, ID-like numbers and student names with placeholders."""

    def __init__(self, extra_names: list[str] | None = None) -> None:
        self.extra_names = [n for n in (extra_names or []) if n.strip()]

    def mask(self, text: str, known_names: list[str] | None = None) -> Masked:
        """Mask one text; names seen before in the conversation can be passed as `known_names`."""
        result = Masked(text)
        names = self._names(text, known_names)
        result.text = self._mask_into(text, names, result)
        return result

    def mask_many(self, texts: Sequence[str], known_names: list[str] | None = None) -> tuple[list[str], Masked]:
        """Mask several texts of one conversation with one mapping.

        A name found in any text is masked in all of them, and the same person or address gets
        the same placeholder everywhere, so `[STUDENT-1]` in the history is `[STUDENT-1]` in
        the new message too. Returns the masked texts and the shared mapping (its `text` is "").
        """
        result = Masked("")
        names: set[str] = set(known_names or [])
        for text in texts:
            names |= self._names(text, None)
        return [self._mask_into(text, names, result) for text in texts], result

    def _names(self, text: str, known_names: list[str] | None) -> set[str]:
        names = set(self.extra_names) | set(known_names or [])
        # Addresses first, so a name inside an e-mail address is not read as a student.
        stripped = PHONE.sub(" ", EMAIL.sub(" ", text))
        for pattern in (NAME_AFTER_CUE, NAME_BEFORE_VERB):
            for m in pattern.finditer(stripped):
                name = m.group(1)
                first = name.split()[0]
                if first not in NOT_NAMES and not first.startswith("["):
                    names.add(name)
                    names.add(first)  # "Jamie Lee" is later just "Jamie"
        return names

    @staticmethod
    def _mask_into(text: str, names: set[str], result: Masked) -> str:
        """Mask `text`, adding to `result.mapping` (placeholders already there are reused)."""
        by_value = {f"{tag[1:].split('-')[0]}:{value.lower()}": tag for tag, value in result.mapping.items()}

        def placeholder(kind: str, value: str) -> str:
            key = f"{kind}:{value.lower()}"
            if key not in by_value:
                n = sum(1 for tag in result.mapping if tag.startswith(f"[{kind}-")) + 1
                tag = f"[{kind}-{n}]"
                by_value[key] = tag
                result.mapping[tag] = value
            return by_value[key]

        out = EMAIL.sub(lambda m: placeholder("EMAIL", m.group(0)), text)
        out = PHONE.sub(lambda m: placeholder("PHONE", m.group(0)) if sum(c.isdigit() for c in m.group(0)) >= 8 else m.group(0), out)
        for name in sorted(names, key=len, reverse=True):
            out = re.sub(rf"\b{re.escape(name)}\b", lambda m: placeholder("STUDENT", m.group(0)), out)
        out = ID_NUMBER.sub(lambda m: m.group(0) if m.group(0).startswith("[") else placeholder("ID", m.group(0)), out)
        return out

    def names_in(self, text: str) -> list[str]:
        """Student names this masker would hide in `text`."""
        masked = self.mask(text)
        return [v for k, v in masked.mapping.items() if k.startswith("[STUDENT-")]
