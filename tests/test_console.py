"""Terminal chat: sources numbered under the reply, `/read N` shows a source's note through the core."""

from __future__ import annotations

import io
from collections.abc import Iterator

from rich.console import Console

from adapters.console import chat, read_event
from bot.models import Action, Reply, Route, Source


class Typed(Console):
    """A console whose input is a script of lines, recording what it printed."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(file=io.StringIO(), width=200, color_system=None)
        self._lines: Iterator[str] = iter(lines)

    def input(self, *args, **kwargs) -> str:  # noqa: A003 - rich's name
        try:
            return next(self._lines)
        except StopIteration:
            raise EOFError from None

    @property
    def printed(self) -> str:
        return self.file.getvalue()  # type: ignore[attr-defined]


def test_read_n_shows_the_note_of_a_source_without_a_link(coach):
    console = Typed(["how do I make a quick exit ticket in google forms?", "/read 1", "read more about padlet"])
    chat(coach, console)
    out = console.printed
    assert "[1] Quick digital exit tickets" in out and "/read 1 to read it here" in out
    assert out.count("Quick digital exit tickets") >= 2  # listed once under the reply, then the note's title
    assert "Two questions at the end of a lesson" in out  # the note itself
    # Only the command reads: a message that starts with "read" is a message, answered in a third panel.
    assert out.count("route: coaching") == 3 and "/read N reads source N" not in out


def test_read_event_needs_a_source_that_the_last_reply_offered():
    reply = Reply(text="What next?", route=Route.COACH, turn_id="t1",
                  sources=[Source(id="a", title="A"), Source(id="b", title="B", url="https://ex.org")])
    event = read_event("read 2", reply, "console-1", "you")
    assert event is not None and event.action is Action.READ_SOURCE and event.source_id == "b"
    assert read_event("read 3", reply, "console-1", "you") is None
    assert read_event("read", reply, "console-1", "you") is None
    assert read_event("read 1", None, "console-1", "you") is None
