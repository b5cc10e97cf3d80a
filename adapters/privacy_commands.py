"""`coach privacy ...`: the school's student roster for the masker (stored as salted hashes only)."""

from __future__ import annotations

from pathlib import Path

import click


def _settings():  # type: ignore[no-untyped-def]
    from adapters.cli import Context

    return click.get_current_context().ensure_object(Context).settings


@click.group("privacy")
def privacy() -> None:
    """Privacy: what the coach masks before anything leaves the school's machine."""


@privacy.command("roster")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="drop the names loaded before instead of adding to them")
def roster(file: Path, replace: bool) -> None:
    """Load student names from FILE (the school's CSV export, or one name a line) so they are always masked.

    Only salted hashes of the names and their parts are stored (data directory, mode 0600); the
    file itself is not copied. Delete the export once it is loaded.
    """
    from bot.privacy.masker import forget_shared_maskers
    from bot.privacy.roster import Roster, parse_names

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    names = parse_names(file.read_text(encoding="utf-8-sig", errors="replace"))
    if not names:
        raise click.ClickException(f"no names found in {file}: expected a CSV with a name column "
                                   "(e.g. 'First Name', 'Surname', 'Full Name') or one name a line")
    current = Roster.load(settings.data_dir)
    if replace:
        current.hashes.clear()
    added = current.add(names)
    path = current.save(settings.data_dir)
    forget_shared_maskers()
    click.echo(f"{added} student name(s) loaded; {len(current)} salted hashes in {path} (0600). "
               "Running bots read the roster when they start.")
