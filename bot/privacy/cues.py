"""Cue words and token positions the name recogniser reads: who a word stands where a person stands.

"my student olivia", "for Ananya", "Thanks Will,", "amber in my tutor group", "June in 3J": tests on
spaCy tokens and the word lists behind them, used by `SchoolNameRecognizer` (bot/privacy/recognizers.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from bot.privacy.patterns import CLASS_CODE

# Words after which the next word is a person: "my student olivia", "a boy called Rowan".
NAME_CUES = frozenset(
    "student students pupil pupils learner learners child kid kids boy girl son daughter named called nephew niece "
    "brother sister twin twins mum mom dad mother father parent grandma grandad granny nan auntie aunt uncle "
    "carer guardian".split())
# Lower-case chat and device words WordNet does not know; never names.
CHAT_WORDS = frozenset(
    "mic mics wifi app apps login logins logon email emails laptop laptops ipad ipads admin admins password passwords "
    "username usernames url urls pdf pdfs usb hdmi lol ok okay pls plz thx tbh btw asap fyi imo iirc lmk idk omg "
    "hw homework uni sen senco ehcp iep ks1 ks2 ks3 ks4 yr yrs chromebook chromebooks wifi bluetooth dm dms gif gifs "
    "emoji emojis selfie selfies vid vids smartboard whiteboard touchscreen trackpad webcam headphones headset "
    "lanyard dongle charger chargers google youtube gmail zoom teams slack etc vs aka tho thru id ids upn sis num no nos number".split())
# Things that "keep crashing" at the start of a chat message; never a person.
DEVICE_WORDS = frozenset(
    "projector printer laptop screen board tablet computer pc phone keyboard mouse speaker camera internet network "
    "server account password display tv monitor charger app website site sound audio video microphone tablet "
    "everything nothing something everyone someone nobody anyone homework lesson class school wifi ipad "
    "chromebook device software update system page link file folder document doc slide sheet form quiz".split())
# Words after which a person often stands: "sat with Thandeka", "a seat for Daniyal", "give Abdi".
PERSON_CUES = frozenset(
    "for with and & helping help helped give gave tell ask asked thank thanks email emailed ring rang call phone "
    "meet met paired pair beside behind near both let remove add move unlock including except besides".split())
# "the Rainbow family": a capitalised word before these is a surname.
FAMILY = frozenset("family family's familys household twins siblings".split())
# Punctuation that sets out a list of people one per item: "Monday — Amara; Tuesday — Finn".
SEPARATORS = frozenset({"—", "–", ";", ":", "-", ","})
# Titles: "Mrs Fitzgerald" is a person whatever spaCy says.
TITLES = frozenset("mr mrs ms miss mx dr sir".split())
# Greetings and thanks: "Thanks Will," or "Hi Grace!" speaks to a person by name.
GREETINGS = frozenset("thanks thank thx cheers hi hey hiya hello dear morning afternoon evening congrats bye".split())
# What a class a child belongs to is called: "amber in my tutor group", "Hope from our form".
GROUP_WORDS = frozenset("class form tutor group set reg registration homeroom year period lesson lessons "
                        "house team cohort".split())
# Words a product follows, a child seldom: "a video from Clickview in my class", "15 yo in my class".
PRODUCT_BEFORE = frozenset("from on onto into via using use uses used through of".split())
# Verbs that report what someone did: "saying Chiamaka got", "said Olly has".
REPORTING = frozenset("saying said says say that".split())


def after_person_cue(doc, i: int) -> bool:  # noqa: ANN001
    """The word before is one a person follows: 'with X', 'for X', 'told me (that) X'."""
    j = i - 1
    if j >= 1 and doc[j].lower_ == "that" and doc[j - 1].lower_ in {"me", "us"}:
        j -= 1
    if j >= 1 and doc[j].lower_ in {"me", "us"} and doc[j - 1].lower_ in {"told", "tells", "tell", "said", "asked"}:
        return True
    return j == i - 1 and j >= 0 and doc[j].lower_ in PERSON_CUES


def greeted(doc, i: int) -> bool:  # noqa: ANN001
    """'Thanks Will,', 'Hi Grace!', 'thank you Hope.': a word spoken to, between a greeting and a stop."""
    if i == 0 or (i + 1 < len(doc) and not doc[i + 1].is_punct):
        return False
    prev = doc[i - 1].lower_
    return prev in GREETINGS or (prev == "you" and i >= 2 and doc[i - 2].lower_ == "thank")


def in_my_group(doc, i: int) -> bool:  # noqa: ANN001
    """'X in my tutor group', 'X from our class': the word before is a child of the teacher's group."""
    if i + 3 >= len(doc) or doc[i + 1].lower_ not in {"in", "from"} \
            or doc[i + 2].lower_ not in {"my", "our", "the", "your", "her", "his"}:
        return False
    return any(t.lower_ in GROUP_WORDS for t in doc[i + 3:i + 5])


def verb_next(doc, i: int) -> bool:  # noqa: ANN001
    """The next token is a finite verb, a modal or a possessive: 'X keeps', 'X can't', "X's"."""
    if i + 1 >= len(doc):
        return False
    nxt = doc[i + 1]
    return nxt.tag_ in {"VBZ", "VBD", "MD", "POS"} or nxt.text in {"'s", "’s", "'", "’"}


def class_after(doc, i: int) -> bool:  # noqa: ANN001
    """'X in 4B' / 'X from 5C' / 'X (7/3)'."""
    for k in (i + 1, i + 2):
        if k < len(doc) and doc[k].lower_ not in {"in", "from", "("} and k == i + 1:
            return False
        if k == i + 2 and k < len(doc):
            return bool(CLASS_CODE.fullmatch(doc[k].text)) or (k + 2 < len(doc) and doc[k].text + doc[k + 1].text
                                                               + doc[k + 2].text == CLASS_CODE.pattern and False)
    return False


def person_slot(doc, i: int) -> bool:  # noqa: ANN001
    """A capitalised word used the way a person's name is: possessive, subject of a person's verb, 'X in 4B'."""
    tok = doc[i]
    nxt = doc[i + 1] if i + 1 < len(doc) else None
    if nxt is not None and nxt.text in {"'s", "’s", "'", "’"}:
        return True
    if nxt is not None and nxt.lower_ in {"in", "from"} and i + 2 < len(doc) and CLASS_CODE.fullmatch(doc[i + 2].text):
        return True
    if tok.dep_ in {"nsubj", "nsubjpass"} and tok.head.pos_ in {"VERB", "AUX"} and i == tok.sent.start:
        return True
    if nxt is not None and nxt.lower_ in {"and", ","} and i + 2 < len(doc) and doc[i + 2].text[:1].isupper() \
            and doc[i + 2].pos_ == "PROPN":
        return True
    return False


def word_matcher(words: Collection[str]) -> Callable[[str], bool]:
    """A test for "is this an ordinary English word"."""
    return lambda w: w in words
