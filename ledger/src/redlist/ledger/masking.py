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
"""

from __future__ import annotations

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
