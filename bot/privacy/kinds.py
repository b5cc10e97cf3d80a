"""The kinds of private data the masker hides, and the placeholder each becomes."""

from __future__ import annotations

from enum import Enum


class Kind(str, Enum):
    """One kind of private detail; `tag` names its placeholder (`[NAME-1]`), `entity` its Presidio entity."""

    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    ADDRESS = "address"
    STUDENT_NUMBER = "student_number"
    CLASS_CODE = "class_code"

    @property
    def tag(self) -> str:
        return _TAGS[self]

    @property
    def entity(self) -> str:
        return _ENTITIES[self]

    @classmethod
    def from_entity(cls, entity: str) -> Kind | None:
        """The kind for a Presidio entity type, or None for one the masker does not hide."""
        return _BY_ENTITY.get(entity)


_TAGS = {Kind.NAME: "NAME", Kind.EMAIL: "EMAIL", Kind.PHONE: "PHONE", Kind.ADDRESS: "ADDRESS",
         Kind.STUDENT_NUMBER: "ID", Kind.CLASS_CODE: "CLASS"}
_ENTITIES = {Kind.NAME: "PERSON", Kind.EMAIL: "EMAIL_ADDRESS", Kind.PHONE: "PHONE_NUMBER",
             Kind.ADDRESS: "STREET_ADDRESS", Kind.STUDENT_NUMBER: "STUDENT_NUMBER", Kind.CLASS_CODE: "CLASS_CODE"}
_BY_ENTITY = {v: k for k, v in _ENTITIES.items()}
# Which kind wins where two overlap: an e-mail holds a name, an address holds a number.
PRIORITY = {Kind.EMAIL: 0, Kind.ADDRESS: 1, Kind.PHONE: 2, Kind.STUDENT_NUMBER: 3, Kind.NAME: 4, Kind.CLASS_CODE: 5}
# How a class code is written: 4B, 9X2, 10C, 5/6B; "7/3" as year/form; a year's subject set, "12MAT2", "10Ma1".
CLASS_SHAPE = r"(?:1[0-3]|[1-9])(?:/[1-9][0-9]?[A-Z]?|[A-Z]{1,3}[0-9]?|[A-Z][A-Za-z]{1,3}[0-9]{1,2})"
