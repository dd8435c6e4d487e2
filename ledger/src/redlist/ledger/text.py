"""What text may hold in format v1 (docs/format.md, "Text"). Pure.

Every text field of a body is Unicode in NFC form with no control, format (invisible,
bidirectional), private-use, unassigned or line-separator characters: such characters
let one entry print as another (a carriage return that hides the start of a line, a
right-to-left override that reverses a code, a zero-width space that makes two names
differ invisibly), and a string in another normal form is a second spelling of the
same words. Spaces are allowed, the ideographic space U+3000 included.

Identifiers are stricter, because people compare them by eye:

* a **rule code** is ASCII: a letter or digit, then letters, digits, ``.``, ``_``
  or ``-``, 1 to 32 characters (``V01``, ``env.pond-2``);
* a **key name** (the person a key belongs to) is 1 to 100 characters of letters,
  marks, digits, single spaces between words and the punctuation ``( ) （ ） · . - _
  ' & , /``; Latin letters never mix with Cyrillic or Greek ones (``Wang`` with a
  Cyrillic ``a``, U+0430, would look like ``Wang``).

:func:`shown` escapes what a terminal should never print raw, for text met
anywhere else (an older file, a node's message).
"""

from __future__ import annotations

import re
import unicodedata

from redlist.ledger.wording import N_, WordedError

#: General categories no text field may contain (control, format, surrogate,
#: private use, unassigned, line and paragraph separators).
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

#: What a clerk is told of a refused character, by its general category.
_KINDS = {
    "Cn": N_(
        "contains a character that is not in Unicode (unassigned) ({character}) at "
        "character {position}; remove it and type the text again"
    ),
    "Co": N_(
        "contains a private-use character (it shows differently on every computer) "
        "({character}) at character {position}; remove it and type the text again"
    ),
    "Cs": N_(
        "contains half of a broken character (a lone surrogate) ({character}) at "
        "character {position}; remove it and type the text again"
    ),
}
_CONTROL = N_(
    "contains an invisible or control character ({character}) at character {position}; "
    "remove it and type the text again"
)

RULE_CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
KEY_NAME_MAX = 100
_KEY_NAME_PUNCTUATION = frozenset("()（）·.-_'&,/")
#: Scripts whose letters look like Latin ones.
_LATIN_LOOKALIKES = ("CYRILLIC", "GREEK")


def text_problem(value: str) -> str | None:
    """Why ``value`` may not be a text field, in words a clerk can act on; None if it may."""
    refusal = text_refusal(value)
    return None if refusal is None else str(refusal)


def text_refusal(value: str) -> WordedError | None:
    """``text_problem`` worded for translation (``wording``); None if ``value`` may be text."""
    if not value.isprintable():
        for position, character in enumerate(value, start=1):
            category = unicodedata.category(character)
            if category in REFUSED_CATEGORIES:
                return WordedError(
                    _KINDS.get(category, _CONTROL),
                    character=_describe(character),
                    position=position,
                )
    if not unicodedata.is_normalized("NFC", value):
        return WordedError(
            N_("is not in Unicode normal form NFC (the same letters can be stored another way)")
        )
    return None


def rule_code_problem(code: str) -> str | None:
    """Why ``code`` may not be a rule code; None if it may."""
    refusal = rule_code_refusal(code)
    return None if refusal is None else str(refusal)


def rule_code_refusal(code: str) -> WordedError | None:
    """``rule_code_problem`` worded for translation (``wording``)."""
    if RULE_CODE_PATTERN.fullmatch(code) is None:
        return WordedError(
            N_(
                "must be 1 to 32 ASCII letters, digits, '.', '_' or '-', starting with a "
                "letter or digit (like V01)"
            )
        )
    return None


def key_name_problem(name: str) -> str | None:
    """Why ``name`` may not name a key's holder; None if it may."""
    refusal = key_name_refusal(name)
    return None if refusal is None else str(refusal)


def key_name_refusal(name: str) -> WordedError | None:
    """``key_name_problem`` worded for translation (``wording``)."""
    refusal = text_refusal(name)
    if refusal is not None:
        return refusal
    if len(name) > KEY_NAME_MAX:
        return WordedError(N_("is longer than {most} characters"), most=KEY_NAME_MAX)
    if name != name.strip(" ") or "  " in name:
        return WordedError(N_("must not start or end with a space or have two spaces in a row"))
    scripts: dict[str, tuple[int, str]] = {}  # each script's first letter, and where
    for position, character in enumerate(name, start=1):
        category = unicodedata.category(character)
        if character == " " or character in _KEY_NAME_PUNCTUATION:
            continue
        if category[0] not in "LMN":
            return WordedError(
                N_(
                    "may hold letters, digits, spaces and ( ) （ ） · . - _ ' & , / only, "
                    "not {character}"
                ),
                character=_describe(character),
            )
        if category[0] == "L":
            script = unicodedata.name(character, "").split(" ", 1)[0]
            scripts.setdefault(script, (position, character))
    lookalike = next((scripts[s] for s in _LATIN_LOOKALIKES if s in scripts), None)
    if "LATIN" in scripts and lookalike is not None:
        position, character = lookalike
        return WordedError(
            N_(
                "mixes Latin letters with Cyrillic or Greek ones that look alike: "
                "{character} at character {position}"
            ),
            character=_describe(character),
            position=position,
        )
    return None


def shown(value: str) -> str:
    """``value`` with every character :func:`text_problem` refuses written as ``\\u{XXXX}``."""
    if value.isprintable():
        return value
    return "".join(
        f"\\u{{{ord(character):04X}}}"
        if unicodedata.category(character) in REFUSED_CATEGORIES
        else character
        for character in value
    )


def _describe(character: str) -> str:
    name = unicodedata.name(character, "")
    code = f"U+{ord(character):04X}"
    return f"{code} {name}" if name else code
