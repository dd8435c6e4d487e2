"""Checking what a clerk types, one value at a time, before anything is signed or sent.

Each function takes the text or number as given (an argument, a CSV cell) and
returns it checked, or raises a ``FormatError`` (``KeyFileError`` for keys) that
says in plain words what is wrong, so ``redlist`` exits 2 and nothing changes.
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from pathlib import Path

from redlist.ledger import keyfile
from redlist.ledger.deeddate import format_date, parse_date
from redlist.ledger.entry import (
    ACCOUNT_CHARACTERS,
    MAX_ACCOUNT_LENGTH,
    PUBLIC_KEY_SIZE,
    ROLES,
    is_valid_account,
)
from redlist.ledger.errors import FormatError, KeyFileError
from redlist.ledger.i18n import N_, _, in_words
from redlist.ledger.text import rule_code_refusal, text_refusal

#: Longest free text (title, note, item, reason ...) accepted, in characters; far
#: below what would push an envelope past its 64 KiB limit.
MAX_TEXT_LENGTH = 2000

COUNCIL_WORDS = {
    "true": True,
    "yes": True,
    "1": True,
    "是": True,
    "false": False,
    "no": False,
    "0": False,
    "否": False,
}

_HEX_KEY = re.compile(r"[0-9A-Fa-f]{64}")
# A whole number as a clerk or a spreadsheet writes it: Excel saves a cell formatted
# with decimals as "5.0" or "5.00", which is still the whole number 5.
_WHOLE_NUMBER = re.compile(r"(?P<digits>[+-]?[0-9]+)(?:\.0*)?")
#: Largest magnitude of a number typed in: msgpack carries 64-bit integers.
MAX_NUMBER = 2**63 - 1


def check_text(value: str, what: str, *, required: bool = True) -> str:
    """``value`` as the log will hold it: without surrounding spaces, in NFC (the same
    letters typed on another system), one line, text the format allows (docs/format.md,
    "Text"), not too long, non-empty if required."""
    stripped = unicodedata.normalize("NFC", value.strip())
    if required and not stripped:
        raise FormatError(_("{what} must not be empty").format(what=what))
    if any(char in stripped for char in "\r\n"):
        raise FormatError(_("{what} must be a single line of text").format(what=what))
    refusal = text_refusal(stripped)
    if refusal is not None:
        raise FormatError(_("{what} {problem}").format(what=what, problem=in_words(refusal)))
    if len(stripped) > MAX_TEXT_LENGTH:
        raise FormatError(
            _("{what} is longer than {MAX_TEXT_LENGTH} characters").format(
                what=what, MAX_TEXT_LENGTH=MAX_TEXT_LENGTH
            )
        )
    return stripped


def check_rule_code(code: str, what: str = N_("the rule code")) -> str:
    """``code`` if it is a rule code the format allows (ASCII, like V01)."""
    stripped = check_text(code, what)
    refusal = rule_code_refusal(stripped)
    if refusal is not None:
        raise FormatError(
            _("{what} {typed!r} {problem}").format(
                what=what, typed=stripped, problem=in_words(refusal)
            )
        )
    return stripped


# A-Z to a-z and nothing else: the case folding of account ids (``fold_account``).
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_account(text: str) -> str:
    """The account id a person means by ``text``, in the log's one form (lower case).

    Exactly this is folded: surrounding white space is dropped, the text is put in
    Unicode NFKC (full-width letters, digits and punctuation typed with a Chinese input
    method become their ASCII forms: full-width DGC-0019 is ASCII DGC-0019), then the
    ASCII capitals A to Z become a to z. Nothing else changes, so what is still not an account id
    (other letters, spaces inside) is refused by ``check_account``, never guessed at.
    """
    return unicodedata.normalize("NFKC", text.strip()).translate(_ASCII_LOWER)


def check_account(account: str) -> str:
    """``account`` case-folded (``fold_account``), if it is then an account id of the
    allowed shape (DESIGN 3.4): ``DGC-0019`` and ``dgc-0019`` are one resident."""
    folded = fold_account(account)
    if not is_valid_account(folded):
        raise FormatError(
            _(
                "account id {account!r} is not valid{why}: use letters, digits, '.', '_' or '-', "
                "1 to 64 characters, starting with a letter or digit (never a name or ID number)"
            ).format(account=account, why=_why_not_an_account(account))
        )
    return folded


def _why_not_an_account(account: str) -> str:
    """The first character of ``account`` (as typed, white space around it dropped) that
    no folding makes part of an account id, named so that a clerk finds it in the cell:
    a full-width space or a Chinese character is hard to see in a quoted value."""
    for position, character in enumerate(account.strip(), start=1):
        folded = fold_account(character) if not character.isspace() else character
        usable = folded and all(each in ACCOUNT_CHARACTERS for each in folded)
        if usable and (position > 1 or folded[0].isalnum()):
            continue
        code = f"U+{ord(character):04X}"
        if character.isspace():
            return _(" (character {position} is a space, {code})").format(
                position=position, code=code
            )
        return _(" (character {position} is \u201c{character}\u201d, {code})").format(
            position=position, character=character, code=code
        )
    length = len(fold_account(account))
    if length > MAX_ACCOUNT_LENGTH:
        return _(" ({length} characters)").format(length=length)
    return ""


# A deed date as typed or saved by a spreadsheet: 2026-05-03, 2026/5/3, 2026年5月3日.
_TYPED_DATE = re.compile(r"([0-9]{4})(?:-|/|年)([0-9]{1,2})(?:-|/|月)([0-9]{1,2})日?")


def check_date(text: str, what: str = N_("the date")) -> str:
    """A deed date in the log's form ``YYYY-MM-DD``, from what a clerk typed.

    Accepted (after NFKC, so full-width digits count): ``2026-05-03``, ``2026-5-3``,
    ``2026/5/3`` (how Excel saves a date in a Chinese locale) and ``2026年5月3日``; the
    day must exist. Whether it lies in the window the town allows is the node's check.
    """
    stripped = unicodedata.normalize("NFKC", text.strip())
    match = _TYPED_DATE.fullmatch(stripped)
    if match is None:
        raise FormatError(
            _("{what} must be a day written YYYY-MM-DD (e.g. 2026-05-03), not {text!r}").format(
                what=what, text=text
            )
        )
    year, month, day = match.groups()
    try:
        return format_date(parse_date(f"{year}-{int(month):02d}-{int(day):02d}"))
    except FormatError:
        raise FormatError(
            _("{what} {strip!r} is not a day of the calendar").format(what=what, strip=text.strip())
        ) from None


def deed_date_arg(text: str) -> str:
    """An argparse ``type`` for ``--date``: ``check_date``."""
    try:
        return check_date(text)
    except FormatError as error:
        raise argparse.ArgumentTypeError(error.diagnostics()) from None


def check_cap(value: int, what: str) -> int:
    """A rule's cap (``max_qty``, ``max_per_month``): a whole number of at least 1."""
    if value < 1:
        raise FormatError(
            _("{what} must be at least 1, not {value}").format(what=what, value=value)
        )
    return value


def parse_integer(text: str, what: str) -> int:
    """A whole number written in decimal (``+``/``-`` allowed), or a clear error.

    ``5.0`` and ``5.00`` are 5 (a spreadsheet's number format); ``5.5`` is refused.
    """
    stripped = text.strip()
    match = _WHOLE_NUMBER.fullmatch(stripped)
    if match is None or len(match["digits"]) > 20:
        raise FormatError(
            _("{what} must be a whole number, not {text!r}").format(what=what, text=text)
        )
    value = int(match["digits"])
    if abs(value) > MAX_NUMBER:
        raise FormatError(
            _("{what} is far too large: {strip}").format(what=what, strip=text.strip())
        )
    return value


def whole_number(text: str) -> int:
    """An argparse ``type``: a whole number read as :func:`parse_integer` reads it.

    argparse puts the option's name before the message ("argument --qty: ...").
    """
    try:
        return parse_integer(text, _("the value"))
    except FormatError as error:
        raise argparse.ArgumentTypeError(error.diagnostics()) from None


def check_rule_points(points: int) -> int:
    if points == 0:
        raise FormatError(_("points must be a non-zero integer (negative for a deduction)"))
    return points


def check_positive(value: int, what: str) -> int:
    if value < 1:
        raise FormatError(
            _("{what} must be at least 1, not {value}").format(what=what, value=value)
        )
    return value


def check_target(target: int) -> int:
    if target < 1:
        raise FormatError(
            _("the target must be the entry number of an award, not {target}").format(target=target)
        )
    return target


def parse_council(text: str) -> bool:
    """Whether a rule needs the council: true/false, yes/no, 1/0 or 是/否."""
    value = COUNCIL_WORDS.get(text.strip().lower())
    if value is None:
        raise FormatError(
            _("council must be one of true/false/yes/no/1/0/是/否, not {text!r}").format(text=text)
        )
    return value


#: Each role as a message names it (the role itself in English; 网格员 and so on in Chinese).
ROLE_NAMES = {
    "grid": N_("grid"),
    "council": N_("council"),
    "admin": N_("admin"),
    "cashier": N_("cashier"),
}
#: Role names accepted in Chinese, and the role each stands for.
ROLE_ALIASES = {
    "网格员": "grid",
    "评议员": "council",
    "村委": "council",
    "管理员": "admin",
    "收银员": "cashier",
}


def parse_roles(text: str) -> tuple[str, ...]:
    """Comma-separated roles, e.g. ``grid,council`` or ``网格员，评议员``; each one of
    DESIGN 3.4's roles, once (``、`` and the full-width comma separate too)."""
    # Empty parts ("grid," or "grid,,council") are slips, not roles.
    parts = re.split(r"[,，、]", text)
    roles = tuple(
        ROLE_ALIASES.get(part.strip(), part.strip().lower()) for part in parts if part.strip()
    )
    if not roles:
        raise FormatError(
            _("give at least one role ({join})").format(join=", ".join(sorted(ROLES)))
        )
    for role in roles:
        if role not in ROLES:
            raise FormatError(
                _(
                    "{role!r} is not a role; roles are {join} (comma-separated, e.g. grid,council)"
                ).format(role=role, join=", ".join(sorted(ROLES)))
            )
    if len(set(roles)) != len(roles):
        raise FormatError(_("a role is listed twice in {text!r}").format(text=text))
    return roles


def read_public_key(text: str) -> bytes:
    """A raw public key from ``--pub``: a PEM key file (public or private) or 64 hex digits."""
    path = Path(text)
    if _HEX_KEY.fullmatch(text) and not path.exists():
        return bytes.fromhex(text)
    if not path.exists() and not path.is_symlink():
        raise KeyFileError(
            _("{text!r} is neither a key file nor a public key in hex ({value} hex digits)").format(
                text=text, value=2 * PUBLIC_KEY_SIZE
            )
        )
    return keyfile.read_public_key(path)
