"""Presidio's pattern recogniser for school data: class codes, student numbers, addresses, phones.

Patterns only (no language model): 4B, 9X2, 7/3 and year/set codes; student IDs, UPNs and
record numbers after their cues; street addresses and UK postcodes; phone-shaped numbers.
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from bot.privacy.kinds import CLASS_SHAPE, Kind

# -- patterns ------------------------------------------------------------------------------------

# Presidio's e-mail recogniser rejects some school domains (sch.uk); this one does not.
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# 4B, 9X2, 10C, 11A, 5/6B; "7/3" and "12/1" as year/form; a year's subject set, "12MAT2", "10Ma1", "9SCI3".
# Units and screen words are not classes.
CLASS_CODE = re.compile(r"(?<![\w/£$.-])" + CLASS_SHAPE + r"(?![\w/-])")
# A class code right after a word, perhaps after a comma: "kettleborough 5T", "owusu, 8J".
CLASS_NEXT = re.compile(r",?\s+" + CLASS_CODE.pattern)
NOT_CLASS = frozenset({"2D", "3D", "3G", "5G", "4K", "8K", "1080P", "GB", "MB", "KB", "TB", "AM", "PM",
                       "HD", "ST", "ND", "RD", "TH", "2FA", "3DS", "4WD", "2WD", "1TB", "4GB", "8GB", "5GHZ", "1ST", "2ND", "3RD", "4TH", "5TH", "6TH", "7TH", "8TH", "9TH"})
# A number after a student-record cue, a UPN (letter + 12 digits), or any bare run of 5+ digits.
STUDENT_CUE = re.compile(
    r"(?i:\b(?:student|pupil|learner|sis|admission|enrol?ment|enrollment|roll|candidate|exam)\s*(?:ids?|nos?|num|numbers?|codes?|#)\.?"
    r"|\bupn|\bsn|\bsis|\bids?|\bstudent\s+number|\bpupil\s+number)"
    r"(?:\s+(?i:is|was|=))?\s*[:#]?\s*([A-Z]{0,3}-?\d[\dA-Z-]{2,})\b")
# "students 4401 & 4402": numbers right after a plural or singular student word, and the ones joined to them.
STUDENT_WORD = re.compile(r"(?i:\b(?:students?|pupils?|learners?)\s+#?)(\d{3,})\b")
JOINED_NUMBER = re.compile(r"\s*(?:,|&|\band\b|\bor\b)\s*#?([A-Z]{0,2}-?\d{3,})\b")
# "#4471209": a number of four or more digits after a hash, unless it is a ticket's, a room's or a page's.
HASH_NUMBER = re.compile(r"(?<![\w&#])#\s?(\d{4,})\b")
NOT_HASH = re.compile(r"(?i:\b(?:ticket|issue|case|ref|reference|order|invoice|incident|request|room|page|slide|"
                      r"question|step|item|pr|job|version|build|error|code)s?\s*(?:no\.?|number)?\s*$)")
# "homeroom 204", "tutor group 9W": the number after a class cue is the class, not a room or a count.
CLASS_CUE = re.compile(r"(?i:\b(?:home\s?room|tutor\s+group|form\s+group|registration\s+group|reg\s+group|"
                       r"advisory|roll\s+class)\s+)([A-Z]?\d{1,4}[A-Z]{0,2}\d?)\b")
# "Year 8 set 2", "Yr 10 group 3": a year with its set is one class; "Year 9" alone is a year group.
YEAR_SET = re.compile(r"(?i:\b(?:year|yr|y|grade)\s?\d{1,2}\s+(?:set|group|band|stream|class)\s+\d{1,2}[a-z]?)\b")
UPN = re.compile(r"\b[A-Z]\d{12}\b")
# "8-1, 8-2, 8-3": forms of one year listed together; "Grade 8 (8-2)"; "Reception (RB)".
FORM_LIST = re.compile(r"(?<![\w-])(1[0-3]|[1-9])-[1-9](?![\w-])(?:\s*(?:,|&|\band\b)\s*(?:and\s+)?\1-[1-9](?![\w-]))+")
FORM = re.compile(r"(?<![\w-])(?:1[0-3]|[1-9])-[1-9](?![\w-])")
FORM_AFTER_YEAR = re.compile(r"(?i:\b(?:year|yr|grade)\s?\d{1,2}\s*)\(((?:1[0-3]|[1-9])-[1-9])\)")
EARLY_YEARS_CLASS = re.compile(r"(?i:\b(?:reception|nursery|foundation|prep|kindy|kindergarten)\s+)\(([A-Z][A-Z0-9]{1,2})\)")
# "P-004417", "MT-55012": a record number with its letters, or after "pupil ref".
PREFIXED_NUMBER = re.compile(r"(?<![\w-])[A-Z]{1,3}-\d{5,}\b|(?i:\b(?:student|pupil|learner)\s+(?:ref|reference)\.?\s*[:#]?\s*)"
                             r"([A-Z]{0,3}-?\d[\dA-Z-]{2,})\b")
LONG_NUMBER = re.compile(r"(?<![\d.,:/-])\d{5,}(?![\d.,:/]\d)")
# Phone numbers as written in the UK, US and Australia (and +CC international), 8+ digits.
PHONE = re.compile(r"(?<![\w/])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,5}\)[\s.-]?)?\d{2,6}(?:[\s.-]\d{2,6}){1,4}(?![\w/])")
_STREET_TYPES = (
    "street|st|road|rd|avenue|ave|lane|ln|drive|dr|close|court|ct|crescent|cres|way|place|pl|terrace|tce|grove|"
    "gardens|gdns|boulevard|blvd|parade|pde|highway|hwy|square|sq|row|mews|hill|walk|circle|cir|green|rise|"
    "view|park|crt|esplanade|promenade"
)
_CAP = r"[A-Z][\w'’-]*"
ADDRESS = re.compile(
    r"(?:(?i:\b(?:flat|unit|apt|apartment|suite)\s+)[\w/]+,?\s+)?"  # Flat 3, unit 4/17
    r"\b\d{1,5}[A-Za-z]?(?:/\d{1,5})?\s+"  # 14, 3/45, 12a
    rf"(?:{_CAP}\s+){{0,3}}{_CAP}\s+(?i:(?:{_STREET_TYPES})\b)\.?"  # Elm Street
    r"(?:,?\s+(?i:apt|apartment|unit|flat)\.?\s*[\w/]+)?"  # , Apt 2B
    rf"(?:,\s*{_CAP}(?:\s+{_CAP})?)?"  # , Springfield
    r"(?:,?\s+[A-Z]{2,3}\s+\d{4,5})?"  # OR 97201, QLD 4215
    r"(?:,?\s+[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2})?"  # LU2 7XY
)
POSTCODE_UK = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b")


def result(kind: Kind, start: int, end: int, score: float, name: str) -> RecognizerResult:
    """A Presidio result naming the recogniser that found it."""
    return RecognizerResult(entity_type=kind.entity, start=start, end=end, score=score,
                            recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: name,
                                                  RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: name})


class SchoolPatternRecognizer(EntityRecognizer):
    """Class codes, student numbers, street addresses and phone numbers by pattern."""

    name: str  # set by EntityRecognizer.__init__

    def __init__(self) -> None:
        super().__init__(supported_entities=[Kind.EMAIL.entity, Kind.CLASS_CODE.entity, Kind.STUDENT_NUMBER.entity,
                                             Kind.ADDRESS.entity, Kind.PHONE.entity],
                         name="SchoolPatternRecognizer", supported_language="en")

    def load(self) -> None:  # nothing to load: patterns only
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        """Every class code, student number, address and phone-shaped number in `text`."""
        out: list[RecognizerResult] = []
        name = self.name
        for m in EMAIL.finditer(text):
            out.append(result(Kind.EMAIL, m.start(), m.end(), 0.95, name))
        for m in CLASS_CODE.finditer(text):
            if m.group(0).upper() not in NOT_CLASS and not _is_time_or_date(text, m.start(), m.end()):
                out.append(result(Kind.CLASS_CODE, m.start(), m.end(), 0.7, name))
        for m in [*STUDENT_CUE.finditer(text), *STUDENT_WORD.finditer(text)]:
            out.append(result(Kind.STUDENT_NUMBER, m.start(1), m.end(1), 0.95, name))
            end = m.end()
            while (joined := JOINED_NUMBER.match(text, end)) is not None:  # "IDs 4471 and 4472"
                out.append(result(Kind.STUDENT_NUMBER, joined.start(1), joined.end(1), 0.9, name))
                end = joined.end()
        for m in HASH_NUMBER.finditer(text):
            if not NOT_HASH.search(text[max(0, m.start() - 30):m.start()]):
                out.append(result(Kind.STUDENT_NUMBER, m.start(1), m.end(1), 0.8, name))
        for m in CLASS_CUE.finditer(text):
            out.append(result(Kind.CLASS_CODE, m.start(1), m.end(1), 0.9, name))
        for m in YEAR_SET.finditer(text):
            out.append(result(Kind.CLASS_CODE, m.start(), m.end(), 0.9, name))
        for m in FORM_LIST.finditer(text):
            for f in FORM.finditer(m.group(0)):
                out.append(result(Kind.CLASS_CODE, m.start() + f.start(), m.start() + f.end(), 0.8, name))
        for m in [*FORM_AFTER_YEAR.finditer(text), *EARLY_YEARS_CLASS.finditer(text)]:
            out.append(result(Kind.CLASS_CODE, m.start(1), m.end(1), 0.85, name))
        for m in PREFIXED_NUMBER.finditer(text):
            group = 1 if m.group(1) else 0
            out.append(result(Kind.STUDENT_NUMBER, m.start(group), m.end(group), 0.85, name))
        for m in UPN.finditer(text):
            out.append(result(Kind.STUDENT_NUMBER, m.start(), m.end(), 0.9, name))
        for m in ADDRESS.finditer(text):
            out.append(result(Kind.ADDRESS, m.start(), m.end(), 0.9, name))
        for m in POSTCODE_UK.finditer(text):
            out.append(result(Kind.ADDRESS, m.start(), m.end(), 0.6, name))
        for m in PHONE.finditer(text):
            if sum(c.isdigit() for c in m.group(0)) >= 8:
                out.append(result(Kind.PHONE, m.start(), m.end(), 0.8, name))
        for m in LONG_NUMBER.finditer(text):
            # A bare run of digits identifies someone more often than not; a year does not.
            out.append(result(Kind.STUDENT_NUMBER, m.start(), m.end(), 0.5, name))
        return out


def _is_time_or_date(text: str, start: int, end: int) -> bool:
    value = text[start:end]
    if "/" in value:  # 7/3 is a form group; 12/03/2025 is a date
        return bool(re.match(r"/\d", text[end:end + 2])) or bool(re.search(r"\d/$", text[max(0, start - 3):start]))
    return False
