"""The masker on kinds of text it used to get wrong: names by their context, products by theirs.

Each case is written for the kind of failure, not copied from an evaluation set.
"""

from __future__ import annotations

import re

import pytest

from bot.privacy.masker import Masker


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker()


def masked(masker: Masker, text: str) -> str:
    return masker.mask(text).text


def assert_hidden(out: str, values: list[str]) -> None:
    for value in values:
        assert not re.search(rf"(?<![\w\[-]){re.escape(value)}(?![\w-])", out), f"{value!r} left in {out!r}"


def assert_kept(out: str, values: list[str]) -> None:
    for value in values:
        assert value in out, f"{value!r} masked in {out!r}"


@pytest.mark.parametrize("text, private", [
    ("Kwame in 11PHY3 can't open the simulation", ["11PHY3"]),
    ("moving Jo from 10Ma1 to 10Ma2 after the mock", ["10Ma1", "10Ma2"]),
])
def test_a_years_subject_set_is_a_class_code(masker, text, private):
    assert_hidden(masked(masker, text), private)
