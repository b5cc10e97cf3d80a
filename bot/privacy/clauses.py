"""Where a given name stands in a clause: "let Will upload", "and Mark had", "isn't working for Grace".

Given names that are also words ("Will", "Mark", "Grace", "Sky", "Jade") are masked only where a
person stands. These tests read spaCy tokens: the word before, the word after, and their tags.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from bot.privacy.cues import CHAT_WORDS, NAME_CUES
from bot.privacy.patterns import CLASS_CODE

# Verbs whose object does the next verb: "let Will upload", "help rahul reset", "ask Hope to".
CONTROL_VERBS = frozenset("let lets help helps helped helping make makes made ask asked remind reminded "
                          "allow allowed tell told get got".split())
# Words that open a clause, after which a capitalised given name and its verb are a person doing something.
CLAUSE_OPENERS = frozenset({"and", "but", ",", "that", "when", "because", "while", "so", "then", "-", "—", "–",
                            ":", ";", "(", "until", "after", "before", "if", "though", "although"})
# Prepositions a person follows at the end of a clause: "isn't working for Grace", "sat with Rose.".
CLOSING_PREPS = frozenset({"for", "with", "about", "to", "from"})
_BASE_VERB = {"VB"}
_FINITE = {"VBD", "VBZ", "MD"}
_POSSESSIVE = {"'s", "’s"}


def person_in_clause(doc, i: int, first_names: Collection[str], is_tool: Callable[[str], bool],  # noqa: ANN001
                     fold: Callable[[str], str], time_words: Collection[str], is_word: Callable[[str], bool]) -> bool:
    """Whether token `i`, a given name (or a word English does not know), stands where a person does in its clause."""
    tok = doc[i]
    low = tok.lower_
    given = fold(tok.text) in first_names
    # "let kids post": a plural or a chat word is no child's name, known to WordNet or not.
    unknown = not is_word(low) and not is_word(tok.lemma_.lower()) and tok.tag_ != "NNS" \
        and low not in NAME_CUES and low not in CHAT_WORDS
    if not (given or unknown) or low in time_words or is_tool(tok.text) or not tok.text.isalpha() \
            or len(tok.text) < 3 or tok.text.isupper():
        return False
    prev = doc[i - 1] if i > 0 else None
    nxt = doc[i + 1] if i + 1 < len(doc) else None
    cap = tok.text[:1].isupper()
    # "won't let Will upload", "please help rahul reset": the object of a control verb, then a bare verb.
    if prev is not None and prev.lower_ in CONTROL_VERBS and nxt is not None and nxt.tag_ in _BASE_VERB \
            and nxt.text.islower() and (given or not tok.text[:1].isupper()) \
            and (tok.pos_ not in {"PRON", "DET", "AUX"} or tok.text[:1].isupper()):
        return True
    # "move Grace from 9Sc3 to 10JW", "Lachlan in 7X reckons": a capitalised name placed in a class.
    if cap and nxt is not None and nxt.lower_ in {"in", "from", "to"} and i + 2 < len(doc) \
            and CLASS_CODE.fullmatch(doc[i + 2].text):
        return True
    if not cap or not given or i == tok.sent.start:
        return False
    # "and Mark had the same problem", "- Will's account": a capitalised given name mid-sentence, then its verb.
    if prev is not None and prev.lower_ in CLAUSE_OPENERS and nxt is not None \
            and (nxt.tag_ in _FINITE or nxt.text in _POSSESSIVE) and nxt.text.islower():
        return True
    if nxt is not None and nxt.text in _POSSESSIVE:
        return True  # "for Grace's project": a possessive mid-sentence is a person's
    # "isn't working for Grace", "sat with Rose.": a capitalised given name closing the clause after a preposition.
    return prev is not None and prev.lower_ in CLOSING_PREPS and (nxt is None or nxt.text in {".", "!", "?", ",", ";"})
