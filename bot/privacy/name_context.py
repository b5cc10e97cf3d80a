"""What a capitalised word is, by its context: a student's name, or a product a school uses.

A mixin of `Masker` (bot/privacy/masker.py): names are widened to the whole person ("Uncle Femi",
"van der Berg", "ben harrow 3P") and trimmed of words that are not part of them; product names are
recognised by what stands around them ("uses Roblox Studio", "Otus, Schoology and Canvas"). It reads
the word lists `Masker` loads on first use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from bot.privacy.kinds import CLASS_SHAPE, PRIORITY, Kind
from bot.privacy.roster import Roster, fold

NOT_NAMES = frozenset(
    "i i'm i've i'd monday tuesday wednesday thursday friday saturday sunday january february march "
    "july september october november december year grade yr gr reception kindergarten english maths math "
    "science history geography french spanish german art music pe drama computing ict hi hello hey thanks thank "
    "ok okay please sorry mr mrs ms miss sir dr mum mom dad the a an and but so my our we they she he his her "
    "their team staff class teacher head deputy senco sen ehcp iep send dsl ta lsa it itself help urgent "
    "yes yeah yep nope nah idk tbh btw fyi lol omg imo".split())
# Family words a child's relative is named by: "Uncle Femi", "grandpa joe" (the whole is the person).
KIN = frozenset("uncle auntie aunty aunt grandpa grandad granddad grandma granny nan nana nanna gran".split())
# Surname particles: after "van der" the next word is the surname whatever its case; "Ffion ap Rhys".
PARTICLES = frozenset("van der von den de del della di da du la le al el bin ibn ap ab ferch verch binti bint ter ten "
                      "dos das ní nic".split())
# Seasons, months and feasts name a time before these: "Autumn term", "Summer holidays", "May half-term".
TIME_WORDS = frozenset("spring summer autumn fall winter christmas easter whitsun january february march april may "
                       "june july august september october november december".split())
PERIOD_AFTER = re.compile(r"[ -](?i:term|terms|half[ -]?term|half|semester|break|holidays?|hols|fair|concert|"
                          r"fete|show|production|camp|school|trip|residential|exams?|mocks?)\b")
# Words a product's name ends with: "Carousel Learning", "Edulink One", "Smiling Mind", "Sparx Maths".
PRODUCT_SUFFIXES = frozenset(
    "learning maths math reader one pro plus go max mini lite studio academy edu education online hub cloud "
    "connect suite classroom mind app apps tracker pay reading science english kids junior jr games game labs lab "
    "tv books docs live".split())
# Items of one list: "Otus, Schoology and Canvas", "Jamf vs Mosyle".
LIST_JOIN = re.compile(r"\s*(?:,\s*(?:and\s+|or\s+)?|\s(?:and|or|&|vs\.?|versus|/)\s)\s*")
# Initials of school roles, not of a maker: "our TA Sarah", "the SENCO Mrs Hill".
ROLES = frozenset("ta tas lsa senco sendco dsl ddsl hod hoy slt smt it ict pe re dt mfl sen send eal pshe rse "
                  "nqt ect pgce ks ks1 ks2 ks3 ks4 gcse sats mis cpd inset ehcp iep ceo cfo mat".split())
# "Aditya in 3D": after a child, a code of a class's shape is the class, even one that reads as a unit.
CLASS_AFTER_NAME = re.compile(r"\s+(?:in|from)\s+(" + CLASS_SHAPE + r")(?![\w/-])")
# A class code just after a word: "ben harrow 3P", "flo baptiste, 4K".
CLASS_AFTER = re.compile(r"\s*,?\s*(?:in\s+|from\s+)?" + CLASS_SHAPE + r"\b")


# The other half of a hyphenated product name: "Bee-Bot", "Blue-Bot", "Pro-Pad".
_PRODUCT_PARTS = frozenset({"bot", "bots", "book", "books", "pad", "board", "kit", "cam", "box", "link", "net"})


def family_plural(word: str, surnames: Collection[str], first_names: Collection[str],
                  is_common: Callable[[str], bool]) -> bool:
    """'Pearsons', 'Okafors': a surname made plural for its family, not a common word's plural."""
    low = fold(word)
    if not word[:1].isupper() or not low.endswith("s"):
        return False
    stems = [low[:-1]] + ([low[:-2]] if low.endswith("es") else [])
    return any(stem in surnames and stem not in first_names and not is_common(stem) for stem in stems)


class NameContext:
    """Decides, from the words around it, whether a span is a person or a product."""

    # Set by Masker: its tool matcher and roster in __init__, the word lists on first use.
    tools: Callable[[str], bool]
    roster: Roster | None
    salt: bytes
    words: frozenset[str]
    first_names: frozenset[str]
    surnames: frozenset[str]
    stop_words: frozenset[str]
    common: frozenset[str]

    def _products_by_company(self, text: str, names: list[tuple[int, int, Kind]],
                             products: set[tuple[int, int, Kind]], tools: list[tuple[int, int]]) -> set[tuple[int, int, Kind]]:
        """Names that are listed with products ('Otus, Schoology and Canvas', 'Jamf vs Mosyle'), or share the
        spelling of one found as a product in the same text ('if Newsela has...', 'the Newsela login')."""
        found: set[tuple[int, int, Kind]] = set()
        known = [(a, b) for a, b, _ in products] + tools
        changed = True
        while changed:
            changed = False
            for s in names:
                if s in found or self._on_roster(text[s[0]:s[1]]):
                    continue
                value = text[s[0]:s[1]]
                same = any(text[a:b] == value for a, b in known)
                # A word in lower case joins a list of products only through a named tool ("loom or smth"):
                # a lower-case word found beside a product ("a Canva infographic and mateo") is no product.
                # A capitalised name joins only a product written as one: "the school wifi, and Mark had" is two clauses.
                beside = [(a, b) for a, b in known if text[a:a + 1].isupper()] if value[:1].isupper() else tools
                joined = any(LIST_JOIN.fullmatch(text[b:s[0]]) or LIST_JOIN.fullmatch(text[s[1]:a]) for a, b in beside)
                if same or joined:
                    found.add(s)
                    known.append((s[0], s[1]))
                    changed = True
        return found

    def _acronym(self, value: str) -> bool:
        """'CPOMS', 'ERR_NAME_NOT_RESOLVED': capitals of three or more letters that no name is written as.

        With digits it is a record's code ('BHA0012'), which stays hidden."""
        low = fold(value)
        return value.isupper() and " " not in value and sum(c.isalpha() for c in value) >= 3 \
            and not any(c.isdigit() for c in value) \
            and low not in self.first_names and low not in self.surnames and not self._on_roster(value)

    def _time_phrase(self, text: str, start: int, end: int) -> bool:
        """'Autumn term', 'the Summer holidays', 'May half-term': a season or month naming a time, not a girl."""
        value = text[start:end]
        return value.lower() in TIME_WORDS and not self._on_roster(value) and bool(PERIOD_AFTER.match(text, end))

    def _tool_context(self, text: str, start: int, end: int) -> bool:
        """'uses Roblox Studio', 'PowerSchool', 'Bee-Bot': a product, not a person (roster names excepted)."""
        value = text[start:end]
        words = value.split()
        if len(words) >= 2 and not any(self._on_roster(w) for w in words) and all(
                w.lower() in self.common and w.lower() not in self.first_names for w in words):
            return True  # "Snap Map", "Purple Mash": two ordinary words capitalised are a product
        if self._on_roster(value.split()[0]) or re.search(r"['’]s?$", value) or text[end:end + 1] in {"'", "’"}:
            return False  # a possessive is a person's: "Angus Fraser's Chromebook"
        if re.search(r"[a-z][A-Z]", value) and not re.search(r"\b(?:Mc|Mac|O'|O’|De|La|Le|Di|Da|Van)[A-Z]", value):
            return True
        after = re.match(r"-([A-Z]\w*)", text[end:end + 20])
        before_part = re.search(r"([A-Z]\w*)-$", text[max(0, start - 20):start])
        for part in (after, before_part):
            if part and (self.tools(part.group(1)) or part.group(1).lower() in _PRODUCT_PARTS
                         or value.lower() in _PRODUCT_PARTS):
                return True  # "Bee-Bot", "Blue-Bot"; "Ava-Rose" is a child
        low = value.lower()
        if len(words) == 1 and value[:1].isupper() and low.endswith("s") and low not in self.words \
                and self._is_word(low) and low not in self.first_names and low not in self.surnames:
            return True  # "Duolingo for Schools": a plural English noun is a product's word, not a person
        if re.search(r"\b(?:send|sends|sent|give|gives|gave|buy|buys|bought|lend|lends|lent|show|shows|showed|offer|"
                     r"offers|offered)\s+(?:him|her|them|me|us)\s+$", text[max(0, start - 30):start], re.I):
            return True  # "sends him Robux": what is given, not who
        if re.search(r"(?:^|\s)(?:the|a|an)\s+(?:actual|real|new|old|original|free|paid|official|same)\s+$",
                     text[max(0, start - 30):start], re.I):
            return True  # "the actual Alexa", "the free Quizlet"
        nxt_word = re.match(r"\s+([A-Za-z][\w]*)", text[end:])
        prev_word = re.search(r"([A-Za-z][\w]*)\s+$", text[:start])
        if nxt_word and nxt_word.group(1)[:1].isupper() and (
                nxt_word.group(1).lower() in PRODUCT_SUFFIXES or re.fullmatch(r"[A-Z][a-z]+\d+", nxt_word.group(1))):
            return True  # "Carousel Learning", "Edulink One", "Lexia Core5": a product's name and its edition
        if prev_word and prev_word.group(1)[:1].isupper() and len(words) == 1 and (
                (value.lower() in PRODUCT_SUFFIXES and prev_word.group(1).lower() not in self.first_names)
                or (value.lower() in self.common and value.lower() not in self.first_names
                    and prev_word.group(1).lower() in self.common and prev_word.group(1).lower() not in self.first_names
                    and prev_word.group(1).lower() not in NOT_NAMES)):
            return True  # "Bedrock Learning", "Education Perfect": capitalised ordinary words together
        if prev_word and re.fullmatch(r"[A-Z]{2,5}", prev_word.group(1)) and prev_word.group(1).lower() not in ROLES:
            return True  # "CRB Cunninghams", "DJI Tello": a maker's initials before a product
        if re.match(r"\s+(?:login|logins|log-in|account|accounts|homework|streak|app|licen[cs]es?|subscription|dashboard|"
                    r"password|passwords|quiz|quizzes|course|courses|integration|rollout|update|premium|points)\b",
                    text[end:end + 20]):
            return True  # "the Newsela login", "Seneca homework": a product and its feature
        before = text[max(0, start - 30):start].lower()
        if re.search(r"(?:\bvs\.?|\bversus|\be\.g\.,?|\bplay|\bplaying|\btrial|\btrialling|\binstall|\binstalled|"
                     r"\bdownload|\bdownloaded|\bout of|\blog into|\blogged into|\bsign into|\bsubscribe to|"
                     r"\bupdate|\bupdated|\bupdating|\breinstall|\breinstalled|\buninstall|\buninstalled|\blaunch|"
                     r"\blaunched|\brelaunch|\bsync|\bsynced|\bsyncing|\bwhitelist|\bwhitelisted|\ballowlist|"
                     r"\ballowlisted|\bconfigure|\bconfigured|\bpulling from|\bsynced with|\bexported from)\s+$", before) \
                or re.match(r"\s+(?:vs\.?|versus)\s", text[end:end + 10]):
            return True  # "Jamf vs Mosyle", "e.g. Headspace", "play Slope", "to trial Classkick", "update Skyward"
        if re.search(r"(?:^|\s)(?:the|a|an|our|their|your)\s+(?:(?-i:[A-Z])[\w-]*\s+)?$", text[max(0, start - 30):start], re.I) and not re.match(r"\s+(?:in|from)\s", text[end:end + 8]) \
                and not re.match(r"\s+(?:family|household|twins|siblings)\b", text[end:end + 12]) \
                and not (len(words) == 1 and family_plural(value, self.surnames, self.first_names, self.common.__contains__)):
            return True  # "the Mathspace rollout", "a DJI Tello": products take articles, children do not
        prev = re.search(r"([\w.:-]+)\s+$", text[:start])
        nxt = re.match(r"\s+([\w.:-]+)", text[end:])
        if (prev and self.tools(prev.group(1))) or (nxt and self.tools(nxt.group(1)) and nxt.group(1)[:1].isupper()):
            return True  # "Roblox Studio", "Scratch Jr", "Microsoft Whiteboard"
        joined = re.search(r"([\w.:-]+)\s*(?:,|and|or|&)\s*$", text[:start])
        if joined and self.tools(joined.group(1)) and joined.group(1)[:1].isupper():
            return True  # "on Sparx and Seneca"
        if re.search(r"\b(?:use|uses|using|used|bought|into|via|through|work on|on|in|with|licen[cs]e for|rollout of)\s+$",
                     before) and not re.match(r"['’]s?\b", text[end:end + 2]):
            following = text[end:end + 20]
            # "sat with Ayla in 4B" is a child; "homework on Seneca" is an app.
            return not re.match(r"\s+(?:in|from)\s+\S", following) and not before.rstrip().endswith("with") \
                and not (before.rstrip().endswith("in") and not re.match(r"\s*(?:[.!?]|$)", following))
        return False

    def _widen_names(self, text: str, spans: list[tuple[int, int, Kind]]) -> list[tuple[int, int, Kind]]:
        """'Tamsin [Hall]', '[Ruby]-Jean': a capitalised unknown word touching a name is part of it."""
        out = []
        for start, end, kind in spans:
            if kind is Kind.NAME:
                lower = text[start:end].islower()
                while True:
                    m = re.search(r"([A-Za-z][^\W\d_]*(?:[-'’][^\W\d_]+)*)([ -])$", text[:start])
                    if not m or self._not_a_name(m.group(1)) or not self._name_before(m.group(1), lower, m.group(2)):
                        break
                    start = m.start(1)
                while True:
                    m = re.match(r"((?:['\"’”)])?[ -])([A-Za-z][^\W\d_]*(?:['’-][^\W\d_]+)*)(?!['’]?\w)", text[end:])
                    if not m or (m.group(1) != "-" and not self._name_after(text[start:end], m.group(2), lower,
                                                                            text[end + m.end(2):])):
                        break
                    end += m.end(2)
            out.append((start, end, kind))
        return resolve_spans(out)

    def _name_before(self, word: str, lower: bool, joiner: str) -> bool:
        """Whether `word`, right before a name, is part of it: 'Tamsin [Hall]', 'Uncle [Femi]', 'Precious [Okonjo]'."""
        low = word.lower()
        if re.search(r"['’]s$", word):
            return False  # "Reggie's grandad": the owner is another person
        if joiner == "-" and word[:1].isupper():
            return True
        if low in KIN:  # "Uncle Dev", "grandpa joe": how a family names the person, so part of it
            return True
        if word[:1].isupper():
            return not self._is_word(low) or (low in self.first_names and low not in self.common) \
                or (low in self.first_names and low not in NOT_NAMES)
        # "patience owusu": a lower-case given name before a lower-case name found
        return lower and low in self.first_names and not self._stop(low)

    def _name_after(self, value: str, word: str, lower: bool, rest: str) -> bool:
        """Whether `word`, right after the name `value`, is its surname: 'Soo-ah Park', 'miles daventry'."""
        low = word.lower()
        if self._not_a_name(word) or self._stop(low) or re.search(r"['’]s?$", value):
            return False  # after a possessive comes the thing owned: "Jasmine's epipen"
        if value.split()[-1].lower() in PARTICLES:
            return True  # "van der berg"
        if low in PARTICLES and word.islower() and value[:1].isupper() and re.match(r" [A-Z][^\W\d_]", rest) \
                and not self.tools(rest.split()[0]):
            return True  # "Ffion ap Rhys", "Ana dos Santos": a particle between the given name and the surname
        if word[:1].isupper():
            return not self._is_word(low) or (low in self.surnames and not self.tools(word)
                                              and low not in PRODUCT_SUFFIXES)
        # "august lindqvist", "ben harrow 3P": after a name written in lower case, a lower-case word
        # English does not know, or a surname before a class
        if not re.fullmatch(r"[^\W\d_]+(?:-[^\W\d_]+)*", word) or re.match(r"['’]", rest):
            return False  # "can't", "haven't": a contraction, not a surname
        return lower and (not self._is_word(low) or (bool(CLASS_AFTER.match(rest)) and low in self.surnames))

    def _is_word(self, low: str) -> bool:
        """An English word in any inflection ('keeps', 'forgetting'): WordNet's index holds the lemmas."""
        if low in self.words:
            return True
        for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"),
                             ("d", "")):
            if low.endswith(suffix) and len(low) > len(suffix) + 2:
                stem = low[: -len(suffix)] + repl
                if stem in self.words or (suffix in {"ed", "ing"} and len(stem) > 2 and stem[-1] == stem[-2]
                                          and stem[:-1] in self.words):
                    return True
        return False

    def _stop(self, low: str) -> bool:
        return low in self.stop_words or low in NOT_NAMES

    # -- internals -----------------------------------------------------------------------------

    def _on_roster(self, word: str) -> bool:
        return self.roster is not None and len(word) >= 2 and word in self.roster

    def _trim_name(self, text: str, start: int, end: int) -> tuple[int, int]:
        """Drop tool names, titles and non-name words at the edges of a PERSON span."""
        value = text[start:end]
        if self.tools(value):  # a product is never a name, even where a listed student shares it
            return start, start
        words = list(re.finditer(r"[^\s,;:()]+", value))
        keep = [w for w in words if not self._not_a_name(w.group(0))]
        # spaCy sometimes takes the verb before a name into it ("remove Sam"): a lower-case common word leads no name.
        while len(keep) > 1 and keep[0].group(0).islower() and keep[0].group(0) in self.common \
                and keep[0].group(0) not in self.first_names and not self._on_roster(keep[0].group(0)):
            keep.pop(0)
        if not keep:
            return start, start
        return start + keep[0].start(), start + keep[-1].end()

    def _not_a_name(self, word: str) -> bool:
        w = word.strip(".,!?;:\"'’").lower()
        w = re.sub(r"['’]s?$", "", w)
        if self._on_roster(w):
            return False
        return not w or w in NOT_NAMES or self.tools(w) or not any(c.isalpha() for c in w) or w.startswith("[")

    def _name_values(self, text: str, spans: list[tuple[int, int, Kind]]) -> set[str]:
        """Each name found, and its parts: 'Zainab Hussain' is later just 'Zainab'."""
        names: set[str] = set()
        for start, end, kind in spans:
            if kind is not Kind.NAME:
                continue
            value = re.sub(r"['’]s?$", "", text[start:end]).strip()
            if not value:
                continue
            names.add(value)
            for part in re.split(r"[\s]+", value):
                part = re.sub(r"['’]s?$", "", part)
                if value.islower() and " " in value and len(part) >= 2 and not self._not_a_name(part) \
                        and part.lower() not in PARTICLES and not self._stop(part):
                    names.add(part)  # "winter garcia" written so: "winter" alone is the same child
                elif len(part) >= 2 and not self._not_a_name(part) and part.lower() not in self.words and part.lower() != "will":
                    names.add(part)
                elif len(part) >= 3 and part[:1].isupper() and not self._not_a_name(part):
                    names.add(part)  # a word-name ("Grace") only where it is written capitalised
        return names


def resolve_spans(spans: list[tuple[int, int, Kind]]) -> list[tuple[int, int, Kind]]:
    """Non-overlapping spans: the higher-priority kind wins, then the longer span; adjacent names join."""
    ordered = sorted(spans, key=lambda s: (PRIORITY[s[2]], -(s[1] - s[0]), s[0]))
    taken: list[tuple[int, int, Kind]] = []
    for s in ordered:
        if all(s[1] <= t[0] or s[0] >= t[1] for t in taken):
            taken.append(s)
    return sorted(taken)


def join_names(text: str, spans: list[tuple[int, int, Kind]]) -> list[tuple[int, int, Kind]]:
    """'Sofia' and 'Martinez' side by side are one person."""
    out: list[tuple[int, int, Kind]] = []
    for s in spans:
        if out and s[2] is Kind.NAME and out[-1][2] is Kind.NAME and text[out[-1][1]:s[0]] == " ":
            out[-1] = (out[-1][0], s[1], Kind.NAME)
        else:
            out.append(s)
    return out
