"""Presidio recognisers for what teachers type about students.

Presidio's own recognisers find e-mail addresses, phone numbers (through `phonenumbers`) and
people (spaCy's named entities). A school chat adds what they miss: class codes (4B, 9X2, 7/3),
student numbers (student ID 204517, UPN, SN), street addresses, and names written the way
teachers write them: in lower case ("my student olivia"), as possessives ("sienna's iPad"),
and in lists ("travis, kenzie and brody"). The name recogniser reads the spaCy document
Presidio already made, so a message is parsed once; the pattern recogniser is in `patterns.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from bot.privacy.cues import (  # noqa: F401  (NAME_CUES and CHAT_WORDS were imported from here)
    CHAT_WORDS,
    DEVICE_WORDS,
    FAMILY,
    NAME_CUES,
    PRODUCT_BEFORE,
    REPORTING,
    SEPARATORS,
    TITLES,
    after_person_cue,
    class_after,
    greeted,
    in_my_group,
    person_slot,
    verb_next,
    word_matcher,
)
from bot.privacy.kinds import Kind
from bot.privacy.clauses import person_in_clause
from bot.privacy.name_context import TIME_WORDS, family_plural
from bot.privacy.patterns import CLASS_CODE, CLASS_NEXT, SchoolPatternRecognizer, result  # noqa: F401  (re-exported)
from bot.privacy.roster import fold_name
from bot.privacy.tools import tool_matcher  # noqa: F401  (where the masker's callers found it)


class SchoolNameRecognizer(EntityRecognizer):
    """Names spaCy's entities miss: after a cue, possessives, lists, lower case, and roster names.

    `is_word(w)` says whether a lower-case word is ordinary English (spaCy's lemma tables);
    `is_tool(span)` whether a span is a tool or app the school uses; `on_roster(span)` whether
    it is a name on the school's roster (salted hashes only).
    """

    name: str  # set by EntityRecognizer.__init__

    def __init__(self, *, is_word: Callable[[str], bool], is_tool: Callable[[str], bool],
                 on_roster: Callable[[str], bool] | None = None, first_names: Collection[str] = (),
                 surnames: Collection[str] = (), is_common: Callable[[str], bool] | None = None,
                 is_proper: Callable[[str], bool] | None = None) -> None:
        super().__init__(supported_entities=[Kind.NAME.entity], name="SchoolNameRecognizer", supported_language="en")
        self.first_names = first_names
        self.surnames = surnames
        self.is_word = is_word
        # "Common" English excludes nouns that are also given names or surnames (WordNet lists
        # "olivia" and "robinson"): a capitalised one of those is a person.
        self.is_common = is_common or is_word
        self.is_tool = is_tool
        self.on_roster = on_roster
        # WordNet words that are nouns and nothing else, and not a common noun's plural: "aditi", "faisal".
        self.is_proper = is_proper or (lambda w: False)

    def load(self) -> None:  # the spaCy document comes from Presidio's NLP engine
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        """Name spans found by the rules above (each token of a multi-word name is one span)."""
        if nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        doc = nlp_artifacts.tokens
        found: dict[int, float] = {}  # token index → score
        people = {t.i for t in doc if t.ent_type_ == "PERSON"}  # spaCy's own recogniser reports these

        def nameish(tok) -> bool:  # noqa: ANN001  (a spaCy token)
            w = tok.text
            if not w[:1].isalpha() or len(w) < 2 or self.is_tool(w) or tok.like_url or tok.like_email \
                    or any(c.isdigit() for c in w):  # "Y7", "P6", "KS3": year groups, not people
                return False
            if w.lower() in TITLES or tok.is_stop or w.lower() in NAME_CUES or w.lower() in CHAT_WORDS:
                return False
            return True

        def unknown_word(tok) -> bool:  # noqa: ANN001
            return not self.is_word(tok.text.lower()) and not self.is_word(tok.lemma_.lower())

        def surname_after(i: int, score: float) -> None:
            # "Liam O'Connor", "Lucía Herrera": a capitalised word right after a name is its surname.
            j = i + 1
            while j < len(doc) and j <= i + 2 and doc[j].text[:1].isupper() and nameish(doc[j]) \
                    and doc[j].pos_ == "PROPN":
                found.setdefault(j, score)
                j += 1

        for i, tok in enumerate(doc):
            low = tok.text.lower()
            if low in self.first_names and tok.text[:1].isupper() and i == tok.sent.start and verb_next(doc, i) \
                    and not self.is_tool(tok.text):
                found[i] = 0.7  # "Will can't hear": a given name that is also a word, as the subject
                continue
            if tok.text[:1].isupper() and fold_name(tok.text) in self.first_names and greeted(doc, i) \
                    and not self.is_tool(tok.text):
                found[i] = 0.75  # "Thanks Will, that fixed it": spoken to by name, whatever else the word means
                continue
            if person_in_clause(doc, i, self.first_names, self.is_tool, fold_name, TIME_WORDS, self.is_word):
                found[i] = 0.7  # "let Will upload", "and Mark had", "isn't working for Grace"
                surname_after(i, 0.7)
                continue
            if not nameish(tok):
                # A cue word: the next word (or two, if capitalised) is a name, in any case.
                if low in NAME_CUES or (low in TITLES and i + 1 < len(doc)):
                    j = i + 1
                    while j < len(doc) and (doc[j].text in {",", "called", "named", ":", "-", "("} or (
                            doc[j].text in {"'s", "’s", "is"} and j + 1 < len(doc) and doc[j + 1].text[:1].isupper())):
                        j += 1  # "my pupil's Kelechi" (is), not "the student's grades"
                    apposed = j > i + 1 and doc[j - 1].text in {",", "(", ":"}
                    if j < len(doc) and nameish(doc[j]) and (
                            (apposed and fold_name(doc[j].text) in self.first_names) or
                            # "my student joy has been quiet": a given name that is also a word, then its verb
                            (fold_name(doc[j].text) in self.first_names and verb_next(doc, j)) or
                            doc[j].text[:1].isupper() or unknown_word(doc[j]) or doc[j].pos_ == "PROPN"
                            or low in TITLES or low in {"named", "called"} or not self.is_common(doc[j].lower_)):
                        if doc[j].pos_ in {"VERB", "AUX", "ADP", "DET", "PRON", "ADV", "SCONJ", "CCONJ", "NUM"} \
                                and doc[j].text[:1].islower() and (self.is_common(doc[j].lower_)
                                                                   or self.is_common(doc[j].lemma_.lower())):
                            continue
                        found[j] = 0.85
                        surname_after(j, 0.85)
                continue
            if self.on_roster is not None and self.on_roster(tok.text):
                found[i] = 1.0
                continue
            cap = tok.text[:1].isupper()
            asc = fold_name(tok.text)  # "Zoë", "Şule", "Małgorzata" are looked up as "zoe", "sule", "malgorzata"
            if tok.text.isupper() and len(tok.text) >= 3 and asc not in self.first_names and asc not in self.surnames:
                continue  # "IXL", "CPOMS": an acronym is a product or an office, not a child
            if i in people:
                continue
            if in_my_group(doc, i) and not self.is_tool(tok.text) and len(tok.text) >= 3 and (
                    asc in self.first_names or unknown_word(tok)) \
                    and not (i > 0 and (doc[i - 1].like_num or doc[i - 1].lower_ in PRODUCT_BEFORE)):
                found[i] = 0.75  # "amber in my tutor group keeps ...": a child placed in the teacher's class
                surname_after(i, 0.75)
                continue
            if cap and i > 0 and doc[i - 1].lower_ == "the" and not self.is_tool(tok.text) \
                    and family_plural(tok.text, self.surnames, self.first_names, self.is_common):
                found[i] = 0.75  # "the Pearsons can't log in": a family by its surname
                continue
            if cap and 0 < i < len(doc) - 1 and doc[i - 1].lower_ == "the" and doc[i + 1].lower_ in FAMILY \
                    and not self.is_tool(tok.text):
                found[i] = 0.8  # "the Rainbow family's trip": a surname
                continue
            if cap and i >= 2 and doc[i - 1].lower_ in {"him", "her", "them"} \
                    and doc[i - 2].lemma_.lower() in {"call", "name", "nickname"} and not self.is_tool(tok.text):
                found[i] = 0.8  # "we call him Seun"
                continue
            parts = [p for p in asc.split("-") if p]
            given = asc in self.first_names or (len(parts) > 1 and parts[0] in self.first_names)
            accented = not tok.text.isascii() and tok.text.isalpha()
            # "Dvořák" folds to a word WordNet knows; as written, and as a name no common word shares, it is a person.
            unknown = unknown_word(tok) and not self.is_common(asc)
            if after_person_cue(doc, i) and not tok.text.isupper() and (
                    (given and not self.is_common(low)) or (unknown and (cap or accented or tok.pos_ == "PROPN"))):
                found[i] = 0.7  # "for Ananya", "working with zara", "told me that mason", "helping björn"
                surname_after(i, 0.7)
                continue
            if given and tok.text.islower() and i > 0 and doc[i - 1].lower_ in {"for", "with"} \
                    and (i + 1 == len(doc) or doc[i + 1].text in {".", "!", "?", ",", ";"}) and low not in TIME_WORDS:
                found[i] = 0.65  # "unlock the iPad for ruby": a given name closing the clause after 'for'
                continue
            if after_person_cue(doc, i) and cap and tok.pos_ == "PROPN" and i != tok.sent.start \
                    and tok.ent_iob_ == "B" and tok.ent_type_ in {"PERSON", "GPE", "NORP", "LOC"} \
                    and doc[i - 1].lower_ not in {"and", "&"} and self.is_proper(low) and not self.is_tool(tok.text):
                # "tutoring with Aditi": WordNet lists some given names as a goddess or a king, nouns
                # and nothing else; written capitalised where a person stands, one is a person.
                found[i] = 0.7
                surname_after(i, 0.7)
                continue
            if cap and (unknown or given) and not self.is_tool(tok.text) and verb_next(doc, i) \
                    and (i == tok.sent.start or doc[i - 1].lower_ in REPORTING) \
                    and any(t.lower_ in {"he", "his", "him", "she", "her", "hers"} for t in tok.sent):
                found[i] = 0.65  # "Olly has a plan that says he ...", "saying Chiamaka got ... her": a he or she
                surname_after(i, 0.65)
                continue
            if cap and accented and unknown and not self.is_tool(tok.text):
                found[i] = 0.7  # "Dvořák twins", "Nguyễn's parents": English words seldom carry these letters
                surname_after(i, 0.7)
                continue
            if given and not cap and not self.is_common(low) and i + 1 < len(doc) and doc[i + 1].text in {"'s", "’s"}:
                found[i] = 0.7  # "about tristan's laptop": a given name's possessive, in lower case
                continue
            if given and (not tok.is_stop or cap) and i == tok.sent.start and verb_next(doc, i):
                found[i] = 0.7  # "Will can't hear", "amber's parents", "ash keeps changing"
                continue
            if given and not tok.is_stop and cap and not self.is_common(low):
                found[i] = 0.75
                surname_after(i, 0.75)
                continue
            if given and not tok.is_stop and (not self.is_word(low) or (cap and person_slot(doc, i))
                                             or (cap and i + 1 < len(doc) and doc[i + 1].text[:1].isupper()
                                                 and fold_name(doc[i + 1].text) in self.surnames)):
                # A given name English does not otherwise use, in any case; "Grace" or "Will" only
                # where a person stands, or before a surname.
                found[i] = 0.75
                surname_after(i, 0.75)
                continue
            if i + 1 < len(doc) and doc[i + 1].text[:1].isupper() == cap and fold_name(doc[i + 1].text) in self.surnames \
                    and (unknown_word(tok) or given) and tok.tag_ != "NNS" and not doc[i + 1].is_stop \
                    and (cap or not self.is_common(doc[i + 1].lower_)) and nameish(doc[i + 1]) and not self.is_tool(f"{tok.text} {doc[i + 1].text}"):
                found[i] = found[i + 1] = 0.7  # "Aaliyah Robinson": an unknown word before a surname
                continue
            if unknown and tok.text.isalpha() and not self.is_tool(tok.text) \
                    and CLASS_NEXT.match(text, tok.idx + len(tok.text)):
                found[i] = 0.75  # "oscar kettleborough 5T", "owusu, 8J": a word English does not know, before a class
                continue
            if (cap or (not self.is_common(low) and tok.tag_ != "NNS")) and class_after(doc, i) and not self.is_tool(tok.text):
                found[i] = 0.8  # "June in 3J", "Storm in 3S"
                continue
            if cap and 0 < i < len(doc) - 1 and doc[i - 1].text == "," and doc[i + 1].text in {",", ".", "!", "?"} \
                    and (any(t.lower_ in NAME_CUES | {"mine", "ours"} for t in doc[max(0, i - 7):i])
                         or (unknown and not self.is_tool(tok.text))):
                found[i] = 0.7  # "The new girl in 5P, Paisley, needs ..."
                continue
            if i == tok.sent.start and tok.tag_ in {"NN", "NNP"} and verb_next(doc, i) and low not in DEVICE_WORDS \
                    and any(t.lower_ in {"he", "his", "him", "she", "her", "hers"} for t in tok.sent):
                found[i] = 0.6  # "ash keeps changing his Kahoot name": a bare singular subject that is a he or she
                continue
            if cap and i == tok.sent.start and tok.dep_ in {"nsubj", "nsubjpass"} and unknown_word(tok):
                found[i] = 0.6  # "Ayla keeps switching the Teams language"
                continue
            if not cap and tok.pos_ in {"PROPN", "NOUN"} and unknown_word(tok) and len(tok.text) >= 3 \
                    and tok.dep_ in {"nsubj", "nsubjpass", "conj", "poss", "appos", "ROOT", "dep", "npadvmod"} \
                    and tok.text.isalpha() and not (i > 0 and doc[i - 1].lower_ in {"a", "an", "the", "some", "any"}) \
                    and not (i + 1 < len(doc) and doc[i + 1].pos_ in {"NOUN", "PROPN"} and doc[i + 1].text.islower()):
                # "travis, kenzie and brody": a lower-case word English does not know, where a person stands.
                found[i] = 0.6
            elif cap and tok.pos_ == "PROPN" and (not self.is_word(low) or person_slot(doc, i)):
                if person_slot(doc, i):
                    found[i] = 0.7
                    surname_after(i, 0.7)
        # Lists: a word joined by "and" or a comma to a name is a name too ("Lola, Ned and Percy").
        changed = True
        while changed:
            changed = False
            for i, tok in enumerate(doc):
                if i in found or not nameish(tok) or not (tok.text[:1].isupper() or unknown_word(tok)
                                                          or fold_name(tok.text) in self.first_names):
                    continue
                for j in (i - 2, i + 2):
                    if 0 <= j < len(doc) and (j in found or j in people) and doc[min(i, j) + 1].text in {",", "and", "&", "or"} \
                            and doc[j].text[:1].isupper() == tok.text[:1].isupper():
                        found[i] = 0.6
                        changed = True
                        break
        self._lists(doc, found, nameish)
        self._brackets(doc, found, nameish, people)
        self._parallel(doc, found, people, nameish, unknown_word)
        return [result(Kind.NAME, doc[i].idx, doc[i].idx + len(doc[i].text), score, self.name)
                for i, score in sorted(found.items())]

    def _lists(self, doc, found: dict[int, float], nameish: Callable) -> None:  # noqa: ANN001
        """'grace, hope and joy': a list of three or more single words, most of them given names, is children."""
        i = 0
        while i < len(doc):
            items = [i]
            j = i
            while j + 2 < len(doc) and doc[j + 1].text in {",", "and", "&", "or"}:
                k = j + 2
                if doc[k].lower_ == "and" and doc[j + 1].text == ",":
                    k += 1  # the Oxford comma: "bryce, kobe, and tyson"
                if k >= len(doc) or not doc[k].is_alpha:
                    break
                items.append(k)
                j = k
            if len(items) >= 3 and all(k + 1 >= len(doc) or not doc[k + 1].is_alpha or doc[k + 1].is_punct
                                       or doc[k + 1].lower_ in {"and", "or", "are", "is", "were", "r", "keep", "all"}
                                       for k in items):
                names = sum(1 for k in items if k in found or fold_name(doc[k].text) in self.first_names)
                if 2 * names > len(items):
                    for k in items:
                        if k not in found and not self.is_tool(doc[k].text) and (nameish(doc[k]) or (
                                fold_name(doc[k].text) in self.first_names and doc[k].lower_ not in TITLES)):
                            found[k] = 0.6
            i = j + 1

    def _brackets(self, doc, found: dict[int, float], nameish: Callable, people: set[int]) -> None:  # noqa: ANN001
        """'Paddy (Padraig Mulholland, 9N)', 'Oyin (Oyinlola Bakare)': a name and its other form in brackets."""
        named = set(found) | people
        for i in range(len(doc) - 2):
            if doc[i + 1].text != "(":
                continue
            inner = [k for k in range(i + 2, min(i + 5, len(doc))) if doc[k].text[:1].isupper() and nameish(doc[k])
                     and not self.is_tool(doc[k].text)]
            inner = [k for n, k in enumerate(inner) if k == i + 2 + n]  # the capitalised words right after "("
            if not inner:
                continue
            outer = doc[i].text[:1].isupper() and nameish(doc[i]) and not self.is_tool(doc[i].text)
            if i in named and any(k not in named for k in inner) and all(
                    not self.is_word(doc[k].lower_) or fold_name(doc[k].text) in self.first_names or fold_name(doc[k].text) in self.surnames
                    for k in inner):
                for k in inner:
                    found.setdefault(k, 0.7)
            elif outer and i not in named and any(k in named for k in inner):
                found[i] = 0.7

    def _parallel(self, doc, found: dict[int, float], people: set[int], nameish: Callable,  # noqa: ANN001
                  unknown_word: Callable) -> None:
        """'Reggie — iPad 13, Noor — iPad 14': a word standing where a name stands in a repeated pattern."""
        shapes = set()
        for i in list(found) + sorted(people):
            if 0 < i < len(doc) and doc[i - 1].text in SEPARATORS or (i + 1 < len(doc) and doc[i + 1].text in SEPARATORS):
                shapes.add((doc[i - 1].text if i > 0 else "", doc[i + 1].text if i + 1 < len(doc) else ""))
        if not shapes:
            return
        for i, tok in enumerate(doc):
            if i in found or i in people or not tok.text[:1].isupper() or not nameish(tok) or self.is_tool(tok.text) \
                    or not (unknown_word(tok) or fold_name(tok.text) in self.first_names):
                continue
            prev = doc[i - 1].text if i > 0 else ""
            nxt = doc[i + 1].text if i + 1 < len(doc) else ""
            if any((prev == a and prev in SEPARATORS and (nxt == b or not nxt or nxt in SEPARATORS))
                   or (nxt == b and nxt in SEPARATORS and prev == a) for a, b in shapes):
                found[i] = 0.6
