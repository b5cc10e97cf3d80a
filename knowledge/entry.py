"""The knowledge entry: the contract integrators write (shared/contracts/knowledge-format.md)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from enum import Enum
from typing import Any

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

ID_PATTERN = re.compile(r"^[a-z0-9-]{3,80}$")
GRADE_BANDS = ("K-2", "3-5", "6-8", "9-12", "adult")
KNOWN_FIELDS = (
    "id", "title", "kind", "tags", "subjects", "grades", "samr",
    "questions", "links", "owner", "updated",
)


def _raise_items(problems: list[str]) -> None:
    # One line per list item, so the parser can report `questions[2]: ...` for each.
    if problems:
        raise ValueError("\n".join(problems))


class Kind(str, Enum):
    STRATEGY = "strategy"
    TOOL = "tool"
    FRAMEWORK = "framework"
    HOWTO = "howto"
    POLICY = "policy"
    SUPPORT = "support"


class Samr(str, Enum):
    SUBSTITUTION = "substitution"
    AUGMENTATION = "augmentation"
    MODIFICATION = "modification"
    REDEFINITION = "redefinition"


class Link(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=200)
    url: str

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        # Kept as written (no normalising) so an export reproduces the file exactly.
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value.strip()


class KnowledgeEntry(BaseModel):
    """One curated coaching resource."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str = Field(min_length=1, max_length=200)
    kind: Kind
    tags: list[str] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)
    grades: list[str] = Field(default_factory=list)
    samr: Samr | None = None
    questions: list[str] = Field(min_length=1, max_length=8)
    links: list[Link] = Field(default_factory=list)
    owner: str | None = None
    updated: date | None = None
    body: str
    extra: dict[str, Any] = Field(default_factory=dict, description="unknown front-matter fields, kept")

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not ID_PATTERN.match(value):
            raise ValueError("must be 3 to 80 lowercase letters, digits or '-'")
        return value

    @field_validator("tags", "subjects")
    @classmethod
    def _short_strings(cls, value: list[Any]) -> list[str]:
        out, problems = [], []
        for i, item in enumerate(value):
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                problems.append(f"[{i}] must be a string")
                continue
            text = str(item).strip()
            if not text or len(text) > 80:
                problems.append(f"[{i}] must be 1 to 80 characters")
            out.append(text)
        _raise_items(problems)
        return out

    @field_validator("grades")
    @classmethod
    def _grade_bands(cls, value: list[str]) -> list[str]:
        _raise_items([f"[{i}] {band!r} is not one of {', '.join(GRADE_BANDS)}"
                      for i, band in enumerate(value) if band not in GRADE_BANDS])
        return value

    @field_validator("questions")
    @classmethod
    def _socratic(cls, value: list[str]) -> list[str]:
        _raise_items([f"[{i}] must end with '?'" for i, q in enumerate(value)
                      if not isinstance(q, str) or not q.strip().endswith("?")])
        return [q.strip() for q in value]

    @field_validator("body")
    @classmethod
    def _body(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip() + "\n"

    def content_hash(self) -> str:
        """A stable hash of every field, so an unchanged entry is never re-embedded."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()[:32]

    def canonical_json(self) -> str:
        """All fields as sorted JSON: what the store keeps to give the entry back exactly."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "KnowledgeEntry":
        return cls.model_validate_json(text)

    def applies_to_grade(self, band: str) -> bool:
        return not self.grades or band in self.grades

    def applies_to_subject(self, subject: str) -> bool:
        wanted = subject.strip().lower()
        subjects = [s.lower() for s in self.subjects]
        return not subjects or "any" in subjects or wanted in subjects

    def first_link(self) -> Link | None:
        return self.links[0] if self.links else None
