"""The school's roster of student names, kept only as salted hashes.

`coach privacy roster FILE` reads names from the school's export (CSV or one name a line) and
stores, for each name and each part of it, a salted SHA-256 of its folded form (lower case,
accents removed). The masker hashes the words of a message the same way, so a listed student
is masked in any case or spelling of accents, and no name is ever stored in clear.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import secrets
import unicodedata
from collections.abc import Iterable
from pathlib import Path

SALT_FILE = "privacy-salt"
ROSTER_FILE = "roster-hashes.json"
# Column headings a school export uses for names; any other column is ignored.
# Titles and particles are not names of their own: "Mrs", "van", "der" would mask ordinary words.
_NOT_PARTS = frozenset("mr mrs ms miss mx dr sir van von der den de da di du la le el al bin ben".split())
NAME_COLUMNS = ("name", "full name", "student name", "first name", "forename", "given name", "preferred name",
                "surname", "last name", "family name", "legal first name", "legal surname")


def fold(word: str) -> str:
    """Lower case, accents removed, curly apostrophes straightened: 'Lucía' and 'lucia' fold alike."""
    text = unicodedata.normalize("NFKD", word.replace("’", "'")).encode("ascii", "ignore").decode()
    return text.lower().strip(" .,'\"")


# Letters Unicode does not decompose into a base letter and an accent: "Małgorzata", "Søren", "Yılmaz".
_LETTERS = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ı": "i", "đ": "d", "Đ": "D", "ß": "ss",
                          "æ": "ae", "Æ": "Ae", "œ": "oe", "Œ": "Oe", "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D"})
_POSSESSIVE = re.compile(r"(?:'s|s')$")


def fold_name(word: str) -> str:
    """`fold`, with the letters Unicode keeps whole spelt in ASCII too: 'Małgorzata' folds to 'malgorzata'."""
    return fold(word.translate(_LETTERS))


def load_salt(data_dir: Path) -> bytes:
    """The install's secret salt (created 0600 on first use)."""
    path = data_dir / SALT_FILE
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    data_dir.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_bytes(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(salt.hex())
    return salt


def digest(salt: bytes, value: str) -> str:
    """The salted hash of one folded value."""
    return hashlib.sha256(salt + fold(value).encode()).hexdigest()


def parse_names(text: str) -> list[str]:
    """Names from a CSV export (name columns only) or a plain list (one a line)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    head = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
    columns = [i for i, h in enumerate(head) if h in NAME_COLUMNS]
    if columns:
        names = []
        for row in csv.reader(io.StringIO("\n".join(lines[1:]))):
            parts = [row[i].strip() for i in columns if i < len(row) and row[i].strip()]
            if parts:
                names.append(" ".join(parts))
        return names
    return [line.strip() for line in lines]


class Roster:
    """Salted hashes of the students' names and of each part of them."""

    def __init__(self, salt: bytes, hashes: Iterable[str] = ()) -> None:
        self.salt = salt
        self.hashes = set(hashes)

    def __len__(self) -> int:
        return len(self.hashes)

    def __contains__(self, word: str) -> bool:
        """Whether a word or name is listed, whatever its accents, and as a possessive ("Maya's")."""
        if not self.hashes:
            return False
        folded = fold_name(word)
        candidates = {folded, fold(word)}
        bare = _POSSESSIVE.sub("", folded.replace("’", "'"))
        if bare != folded and len(bare) >= 2:
            candidates.add(bare)
        return any(digest(self.salt, c) in self.hashes for c in candidates)

    def add(self, names: Iterable[str]) -> int:
        """Add names (and each of their parts of two or more letters); returns how many names."""
        n = 0
        for name in names:
            # Both foldings are stored: rosters loaded before "ł" became "l" keep matching, and so do new ones.
            added = False
            for folded in dict.fromkeys((fold_name(name), fold(name))):
                parts = [p for p in folded.replace(",", " ").split() if len(p) >= 2 and p.strip(".") not in _NOT_PARTS]
                if not parts:
                    continue
                added = True
                self.hashes.add(digest(self.salt, " ".join(parts)))
                for part in parts:
                    self.hashes.add(digest(self.salt, part))
                    for piece in part.split("-"):  # lily-mae → lily, mae
                        if len(piece) >= 2:
                            self.hashes.add(digest(self.salt, piece))
            n += added
        return n

    @classmethod
    def load(cls, data_dir: Path) -> Roster:
        """The roster stored in the data directory (empty when none was loaded)."""
        path = data_dir / ROSTER_FILE
        salt = load_salt(data_dir)
        if not path.exists():
            return cls(salt)
        return cls(salt, json.loads(path.read_text()).get("hashes", []))

    def save(self, data_dir: Path) -> Path:
        """Write the hashes, readable by the coach's user only."""
        path = data_dir / ROSTER_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"hashes": sorted(self.hashes)}, f)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        return path
