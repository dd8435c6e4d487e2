"""Names, ID numbers and phone numbers as publicity and staff lists show them (DESIGN 3.7). Pure.

**Names** are masked by characters, never by surnames, as publicity notices do:

* a name of two characters keeps its first: 张三 → 张*;
* a longer one keeps its first and last: 李四光 → 李*光, 欧阳娜娜 → 欧**娜. A compound
  surname gets no exception: 欧阳华 → 欧*华 (the rule counts characters);
* a name of one character keeps it and gains one ``*``: 张 → 张*. A one-character
  name field is a surname alone (no given name stands by itself in Chinese), so it
  shows what a two-character name shows, and no more: the length of the real name is
  hidden, not revealed as "one character".

Names written in parts (Latin names with spaces, Uyghur and other transliterated names
with a middle dot: ``Anna Schmidt``, 阿依古丽·买买提) follow the same rule over the
whole name: the separators stay where they are and count as nothing, the first
character of the first part and the last character of the last part are kept, every
other character becomes ``*``: ``A*** ******t``, 阿***·**提. So a masked name never
shows more than two characters of a name, and never all of them: one kept character
when the name has two or fewer, first and last when it has more.

The mask is a function of the name alone: the same name always masks the same way.

**ID numbers** keep their first three and last three characters
(``110105199003071234`` → ``110************234``); **phone numbers** keep a mobile's
first three and last four digits (``138****5678``) and a landline's area code and last
four digits (``0631-***1234``). Those masks are for staff lists; publicity shows
neither (DESIGN 3.7).

**Published notes** are free text a clerk typed, and may name other people or give a
number ("reported by 李四, ID 3706…"). Before a note goes on the notice
(``mask_note``), every run of seven or more digits (an ID number, with its final X, a
mobile or a landline; single spaces or hyphens between groups of three digits or more
allowed, so a date is no such run) is hidden whole, and every
name of the register that it holds is masked as names are. ``hides_only`` tells
whether a shown note is a text with some of its characters hidden, and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: What replaces each hidden character.
MASK = "*"
#: Characters that separate the parts of a name: they stay in place and are no part of
#: what the rule counts (space, the middle dots of transliterated names, hyphen,
#: full stop and apostrophe of Latin names).
NAME_SEPARATORS = frozenset(" ·・•-.'")


def mask_name(name: str) -> str:
    """``name`` masked as DESIGN 3.7 says (see the module's docstring)."""
    positions = [index for index, character in enumerate(name) if character not in NAME_SEPARATORS]
    if not positions:
        return MASK
    if len(positions) == 1:
        return name + MASK
    kept = {positions[0]} if len(positions) == 2 else {positions[0], positions[-1]}
    return "".join(
        character if index in kept or character in NAME_SEPARATORS else MASK
        for index, character in enumerate(name)
    )


def mask_id_number(id_number: str) -> str:
    """An ID number with all but its first three and last three characters hidden."""
    if len(id_number) <= 6:
        return MASK * len(id_number)
    return id_number[:3] + MASK * (len(id_number) - 6) + id_number[-3:]


def mask_phone(phone: str) -> str:
    """A phone number with all but a mobile's first three and any number's last four digits
    (and a landline's area code) hidden."""
    area, dash, number = phone.rpartition("-")
    if dash:
        return f"{area}-{_keep_last(number, 4)}"
    if len(phone) == 11:
        return phone[:3] + MASK * 4 + phone[-4:]
    return _keep_last(phone, 4)


def _keep_last(digits: str, count: int) -> str:
    if len(digits) <= count:
        return MASK * len(digits)
    return MASK * (len(digits) - count) + digits[-count:]


#: Digits as a clerk may type them: ASCII, or full-width (U+FF10 to U+FF19).
_DIGIT = "0-9\uff10-\uff19"
#: An ID number's final check character, ASCII or full-width.
_CHECK_X = "Xx\uff38\uff58"
#: Groups of at least three digits, one space or hyphen between two groups (a phone
#: written 139 1234 5678 or 0631-8123456), with an ID number's final X: such a run of
#: seven digits or more is hidden whole. A date (2026-12-05) has groups of two and is
#: left alone.
_NUMBER_RUN = re.compile(
    f"(?<![{_DIGIT}])[{_DIGIT}]{{3,}}(?:[ \\-][{_DIGIT}]{{3,}})*"
    f"(?:[ \\-]?[{_CHECK_X}])?(?![{_DIGIT}])"
)
_DIGITS_IN_RUN = re.compile(f"[{_DIGIT}]")
_HIDDEN_IN_RUN = re.compile(f"[{_DIGIT}{_CHECK_X}]")
#: The fewest digits of a run that may be an ID or phone number (a landline's local part).
_LONG_RUN = 7


def _hide_long_run(match: re.Match[str]) -> str:
    run = match.group()
    if len(_DIGITS_IN_RUN.findall(run)) < _LONG_RUN:
        return run
    return _HIDDEN_IN_RUN.sub(MASK, run)


class NameMask:
    """The names of the register, to mask wherever a published note holds one (names of
    at least two characters: a lone surname would mask common words)."""

    def __init__(self, names: Iterable[str]) -> None:
        kept = sorted(
            {name for name in names if sum(c not in NAME_SEPARATORS for c in name) >= 2},
            key=lambda name: (-len(name), name),
        )
        self._pattern = re.compile("|".join(map(re.escape, kept))) if kept else None

    def apply(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda match: mask_name(match.group()), text)


def mask_note(text: str, names: NameMask | None = None) -> str:
    """``text`` as a notice may show it: numbers that may be ID or phone numbers hidden,
    and the register's names masked (see the module's docstring)."""
    hidden = _NUMBER_RUN.sub(_hide_long_run, text)
    return hidden if names is None else names.apply(hidden)


def hides_only(shown: str, text: str) -> bool:
    """Whether ``shown`` is ``text`` with some characters replaced by ``*`` and no other
    change (what ``mask_note`` may do to a note)."""
    return len(shown) == len(text) and all(a in (b, MASK) for a, b in zip(shown, text, strict=True))


def shows_number(text: str) -> bool:
    """Whether ``text`` shows a run of digits that may be an ID or phone number."""
    return any(
        len(_DIGITS_IN_RUN.findall(match.group())) >= _LONG_RUN
        for match in _NUMBER_RUN.finditer(text)
    )
