"""knowledge/drafts.py: the one writer of draft entry files (Slack's "Save to KB", `coach kb draft-*`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.drafts import DraftInvalid, write_draft
from knowledge.entry import KnowledgeEntry
from knowledge.parser import load_folder

DRAFT = KnowledgeEntry(id="draft-shared-walls", title="Shared walls", kind="howto", questions=["What will they notice?"],
                       body="DRAFT: what the integrators answered.", extra={"status": "draft"})


def test_a_draft_is_written_where_the_importer_reads_it(tmp_path: Path):
    folder = tmp_path / "new" / "drafts"
    path = write_draft(DRAFT, folder)
    assert path == folder / "draft-shared-walls.md"
    [entry] = load_folder(folder).entries
    assert (entry.id, entry.title, entry.extra) == (DRAFT.id, DRAFT.title, {"status": "draft"})


def test_an_existing_draft_is_kept_unless_replaced_or_kept_beside(tmp_path: Path):
    path = write_draft(DRAFT, tmp_path)
    path.write_text(path.read_text() + "\nThe integrator's own edit.\n")
    with pytest.raises(FileExistsError) as exists:
        write_draft(DRAFT, tmp_path)
    assert exists.value.filename == str(path) and "own edit" in path.read_text()
    beside = write_draft(DRAFT, tmp_path, keep_both=True)
    assert beside.name == "draft-shared-walls-2.md" and "id: draft-shared-walls-2" in beside.read_text()
    assert write_draft(DRAFT, tmp_path, keep_both=True).name == "draft-shared-walls-3.md"
    assert write_draft(DRAFT, tmp_path, overwrite=True) == path and "own edit" not in path.read_text()


def test_a_draft_the_importer_would_reject_is_not_written(tmp_path: Path):
    broken = DRAFT.model_copy(update={"questions": []})  # model_copy does not validate; the importer does
    with pytest.raises(DraftInvalid) as invalid:
        write_draft(broken, tmp_path)
    assert invalid.value.problems and "questions" in str(invalid.value)
    assert list(tmp_path.iterdir()) == []
