"""Writing a draft knowledge entry to a file: the one place a draft (from Slack, a gap or an escalation) is written.

A draft is an ordinary entry file (`<id>.md` in the contract format, see knowledge/parser.py)
that an integrator finishes and imports with `coach kb import`; the callers mark it as a draft
(`status: draft`) before it gets here. What is written is checked by reading it back the way
the importer will, so a file `coach kb import` would reject is never left behind.
"""

from __future__ import annotations

import errno
from pathlib import Path

from knowledge.entry import KnowledgeEntry
from knowledge.parser import Problem, parse_text, render_entry

__all__ = ["DraftInvalid", "write_draft"]

MAX_ID_STEM = 76  # a renamed draft's id, "<stem>-<n>", stays within the entry id's length limit
MAX_COPIES = 1000


class DraftInvalid(ValueError):
    """The draft would not import: `problems` say why (the message joins them)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


def write_draft(entry: KnowledgeEntry, folder: Path, *, overwrite: bool = False, keep_both: bool = False) -> Path:
    """Write `entry` as `<folder>/<entry id>.md` and return the path; the folder is made when missing.

    An existing file is replaced only with `overwrite`; with `keep_both` the draft takes the next
    free name instead (`<id>-2.md`, `-3`, ..., its id renamed to match), so two integrators saving
    the same title at once cannot overwrite each other; otherwise an existing file raises
    `FileExistsError`. Raises `DraftInvalid` when the rendered file would not import, and
    `OSError` when it cannot be written.
    """
    attempts = MAX_COPIES if keep_both and not overwrite else 1
    for n in range(1, attempts + 1):
        entry_id = entry.id if n == 1 else f"{entry.id[:MAX_ID_STEM]}-{n}"
        text = render_entry(entry if n == 1 else entry.model_copy(update={"id": entry_id}))
        _check(text, entry_id)
        path = folder / f"{entry_id}.md"
        if n == 1 and not overwrite and not keep_both and path.exists():
            raise FileExistsError(errno.EEXIST, "a draft of that name exists", str(path))
        folder.mkdir(parents=True, exist_ok=True)
        try:
            # "x" unless replacing: a file that appeared since the check above is never overwritten.
            with path.open("w" if overwrite else "x", encoding="utf-8") as fh:
                fh.write(text)
            return path
        except FileExistsError:
            if not keep_both:
                raise
    raise OSError(f"too many drafts named {entry.id} in {folder}")


def _check(text: str, entry_id: str) -> None:
    parsed, problems = parse_text(text, entry_id)
    errors = [p for p in problems if p.severity == "error"]
    if parsed is None or errors:
        raise DraftInvalid(errors)
