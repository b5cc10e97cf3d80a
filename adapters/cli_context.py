"""What every `coach` command shares: the lazily built settings, the error console, the runtime builder.

Its own module so the command modules (`adapters/*_commands.py`, `adapters/slack/command.py`, ...)
import it without importing `adapters.cli`, which imports them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bot.settings import Settings, load_settings

err = Console(stderr=True, soft_wrap=True)


class Context:
    """Settings built once per command, lazily, so `--help` works with a broken config."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
            logging.basicConfig(level=self._settings.log_level if self._settings.log_level != "INFO" else "WARNING",
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        return self._settings


pass_ctx = click.make_pass_decorator(Context, ensure=True)


def import_progress() -> tuple[Progress, Callable[[int, int], None]]:
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=False)
    task = progress.add_task("Importing knowledge entries", total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


def runtime(ctx: Context, **kwargs):
    """Build the coach; on the very first run the starter knowledge base is imported with a progress bar."""
    from adapters.wiring import build_runtime, check_triage_files, open_store, read_source

    settings = ctx.settings
    check_triage_files(settings)
    first_run = False
    if kwargs.get("auto_starter", True):
        store = open_store(settings)
        first_run = store.count() == 0 and not read_source(settings)
    if first_run:
        err.print("[dim]First run: importing the starter knowledge base (once).[/dim]")
        progress, update = import_progress()
        with progress:
            return build_runtime(settings, progress=update, **kwargs)
    return build_runtime(settings, **kwargs)
