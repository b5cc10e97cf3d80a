"""The labelled corpus the router learns from: JSON Lines files a school can extend.

Each line is `{"text": "...", "category": "<category>", "family": "<id>"}`; `family` groups
rewordings of one situation so that cross-validation never tests on a sibling of a training
message. Any other field (`style`, `note`) is kept for people and ignored here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.triage.categories import LEARNED, Category

# Fewer examples than this and a category cannot be learned, let alone cross-validated.
MIN_PER_CATEGORY = 5
MAX_TEXT_CHARS = 4000


class TriageConfigError(ValueError):
    """Triage data or phrases are missing or malformed; the message says which file and line."""


@dataclass(frozen=True)
class Example:
    """One labelled message."""

    text: str
    category: Category
    family: str
    source: str  # file:line, for error messages and `coach triage check`


def _parse_line(raw: str, where: str) -> Example:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TriageConfigError(f"{where}: not valid JSON ({exc.msg}, column {exc.colno})") from None
    if not isinstance(item, dict):
        raise TriageConfigError(f"{where}: must be a JSON object with text and category")
    text, category = item.get("text"), item.get("category")
    if not isinstance(text, str) or not text.strip():
        raise TriageConfigError(f"{where}: 'text' must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise TriageConfigError(f"{where}: 'text' is {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    try:
        label = Category(str(category))
    except ValueError:
        names = ", ".join(c.value for c in LEARNED)
        raise TriageConfigError(f"{where}: unknown category {category!r}; use one of {names}") from None
    if label not in LEARNED:
        raise TriageConfigError(f"{where}: {label.value!r} depends on the conversation and is decided by "
                                "rules; it cannot be learned from single messages")
    family = item.get("family")
    return Example(text=" ".join(text.split()), category=label,
                   family=str(family) if family not in (None, "") else where, source=where)


def load_corpus(folder: Path) -> list[Example]:
    """Every example in `folder/*.jsonl`, in file order; duplicates (same text) kept once.

    Raises `TriageConfigError` naming the file and line of the first problem, or when a
    category has fewer than `MIN_PER_CATEGORY` examples.
    """
    if not folder.is_dir():
        raise TriageConfigError(f"{folder}: the triage corpus folder is missing")
    return load_corpus_files(sorted(folder.glob("*.jsonl")), str(folder))


def load_corpus_files(files: Sequence[Path], label: str = "the triage corpus") -> list[Example]:
    """Every example in `files`, in the order given; as `load_corpus`, `label` names the whole in errors.

    A problem on a line names the file's full path and the line, so a school can tell its own
    file from a packaged one.
    """
    if not files:
        raise TriageConfigError(f"{label}: holds no *.jsonl files; triage has nothing to learn from")
    examples: list[Example] = []
    seen: dict[str, Example] = {}
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TriageConfigError(f"{path}: cannot read ({exc})") from None
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                # The file name alone is the line's identity (a family default, so the shipped model's key).
                example = _parse_line(raw, f"{path.name}:{number}")
            except TriageConfigError as exc:
                raise TriageConfigError(f"{path.parent}/{exc}") from None
            earlier = seen.get(example.text.lower())
            if earlier is not None:
                if earlier.category is not example.category:
                    raise TriageConfigError(f"{example.source}: the same text is labelled "
                                            f"{earlier.category.value!r} at {earlier.source}")
                continue
            seen[example.text.lower()] = example
            examples.append(example)
    counts = {c: 0 for c in LEARNED}
    for e in examples:
        counts[e.category] += 1
    short = [f"{c.value} ({n})" for c, n in counts.items() if n < MIN_PER_CATEGORY]
    if short:
        raise TriageConfigError(f"{label}: too few examples for {', '.join(short)}; "
                                f"each category needs at least {MIN_PER_CATEGORY}")
    return examples


def corpus_digest(examples: list[Example]) -> str:
    """A hash of the texts, labels and families: the trained model is cached under it."""
    h = hashlib.sha256()
    for e in examples:
        h.update(f"{e.category.value}\t{e.family}\t{e.text}\n".encode())
    return h.hexdigest()[:16]
