"""The resident register's values and the rules for what a clerk types into them (DESIGN 9.1). Pure.

The register is beside the log, never in it (DESIGN 3.7): per account a resident's
name, ID number, phone, village, household and legal basis for scoring and
publication. This module holds the values and checks them; the storage is
:mod:`redlist.ledger.registerstore`.

What each field accepts (each checker returns the value as stored, or raises
``FormatError`` with a plain sentence a clerk can act on):

* **account**: the log's account id (DESIGN 3.4), lower case. What people type is
  case-folded: surrounding spaces dropped, full-width forms made ASCII (NFKC), ASCII
  letters lowered (``DGC-0001`` is ``dgc-0001``).
* **name**: required; NFC; 1 to 64 letters (any script), combining marks, single spaces
  and the separators ``· ・ • - . '`` between them; no digits, no control characters.
* **ID number**: optional; the 18-character resident identity number of GB 11643-1999:
  17 digits, then the ISO 7064 MOD 11-2 check character (a digit or ``X``, a lower-case
  ``x`` is upper-cased), with a real birth date (YYYYMMDD at characters 7 to 14) from
  1900 and not after today. Old 15-digit numbers are refused: they carry no check
  character, and every holder has had an 18-digit card since 2013.
* **phone**: optional; a mainland mobile number, 11 digits ``1[3-9]XXXXXXXXX`` (stored as
  the 11 digits; ``+86`` or ``86`` before it, spaces and hyphens inside are dropped), or
  a landline with its area code, stored as ``AREA-NUMBER``: the area code is 0 and two or
  three more digits, the local number 7 or 8 digits not starting with 0 or 1 (those
  begin service numbers such as 110): ``0631-5201234``, ``010-82345678``. Written
  without the hyphen, the area code is three digits when it starts with 01 or 02
  (Beijing, Shanghai, Tianjin, Chongqing and the 02x cities) and four otherwise, as the
  national numbering plan assigns them.
* **village**: required, **household**: optional; one line of text, at most 64 characters.
  A household is named within its village (two villages may both have a household 12).
* **basis**: empty, ``consent`` (the resident agreed; 同意) or ``statute`` (a law or
  regulation provides for it; 法定), case-insensitive.
* **kind**: what the account is: ``person`` (个人, the default when empty),
  ``household`` (家庭) or ``organisation`` (组织: an enterprise, a cooperative, one of
  the "new organisations" a town scores), case-insensitive.
* **basis date**: required with a basis, refused without one; a real date not after
  today, written ``YYYY-MM-DD`` or as a spreadsheet or a person writes it (``2024/3/5``,
  ``2024-3-5``, ``2024.3.5``, ``2024年3月5日``); stored as ``YYYY-MM-DD``.

"Today" is :func:`latest_today`: the date somewhere on Earth has already reached, so no
clerk in any time zone has today's date refused as "in the future".
"""

from __future__ import annotations

import datetime
import itertools
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from redlist.ledger import codec
from redlist.ledger.errors import FormatError
from redlist.ledger.formatv1 import is_valid_account
from redlist.ledger.masking import NAME_SEPARATORS, mask_name
from redlist.ledger.text import text_refusal
from redlist.ledger.wording import N_, WordedError, words

CONSENT = "consent"
STATUTE = "statute"
#: The legal bases a resident's scoring and publication may rest on.
BASES = (CONSENT, STATUTE)
#: Other words accepted for a basis (a Chinese sheet's words), lower case.
BASIS_ALIASES = {"同意": CONSENT, "法定": STATUTE}
#: Each basis as a refusal names it (translated where shown).
BASIS_WORDS = {CONSENT: words(N_("consent")), STATUTE: words(N_("statute"))}
PERSON, HOUSEHOLD, ORGANISATION = "person", "household", "organisation"
#: What an account of the register may be; a record without a kind is a person.
KINDS = (PERSON, HOUSEHOLD, ORGANISATION)
#: Other words accepted for a kind (a Chinese sheet's words, the American spelling).
KIND_ALIASES = {
    "个人": PERSON,
    "家庭": HOUSEHOLD,
    "组织": ORGANISATION,
    "organization": ORGANISATION,
}
#: How publicity names each kind.
KIND_LABELS = {PERSON: "个人", HOUSEHOLD: "家庭", ORGANISATION: "组织"}
NAME_MAX = 64
PLACE_MAX = 64
ID_NUMBER_LENGTH = 18
#: ISO 7064 MOD 11-2 weights of the first 17 characters (2^(17-i) mod 11).
_ID_WEIGHTS = tuple(pow(2, 17 - index, 11) for index in range(17))
_ID_CHECK = "10X98765432"
_EARLIEST_BIRTH = datetime.date(1900, 1, 1)
_MOBILE = re.compile(r"(?:\+?86)?(1[3-9][0-9]{9})")
_LANDLINE_SPLIT = re.compile(r"(0[0-9]{2,3})-([2-9][0-9]{6,7})")
_LANDLINE_JOINED = re.compile(r"0[0-9]{9,11}")
_DATE = re.compile(r"([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})")
# A date as Chinese is written: 2024年3月5日.
_CHINESE_DATE = re.compile(r"([0-9]{4})年([0-9]{1,2})月([0-9]{1,2})日")
# How a spreadsheet writes a long number it has turned into a float: 1.10105E+17.
_SCIENTIFIC = re.compile(r"[0-9](?:\.[0-9]+)?[eE]\+?[0-9]+")
_RECORD_TEXTS = ("name", "id", "phone", "village", "household", "basis", "basis_date")
#: The latest UTC offset in use (Kiribati's Line Islands, UTC+14).
_LATEST_OFFSET = datetime.timedelta(hours=14)


def latest_today(now_ms: int) -> datetime.date:
    """The latest date anywhere on Earth at ``now_ms`` (ms since the epoch, UTC)."""
    now = datetime.datetime.fromtimestamp(now_ms / 1000, datetime.UTC)
    return (now + _LATEST_OFFSET).date()


@dataclass(frozen=True)
class Resident:
    """One resident of the register. Empty text means "not known" for the optional fields.

    ``changed_ms`` is when the record was last written (ms since the epoch, UTC).
    """

    account: str
    name: str
    id_number: str
    phone: str
    village: str
    household: str
    basis: str
    basis_date: str
    changed_ms: int
    kind: str = PERSON

    @property
    def publishable(self) -> bool:
        """True when the resident has a legal basis for scoring and publication."""
        return bool(self.basis)

    def masked(self) -> MaskedResident:
        """What publicity may show of this resident."""
        return MaskedResident(
            self.account, mask_name(self.name), self.village, self.household, self.kind
        )

    def same_data(self, other: Resident) -> bool:
        """True when ``other`` holds the same data (whenever each was written)."""
        return replace(other, changed_ms=self.changed_ms) == self

    def to_bytes(self) -> bytes:
        """The stored record (canonical msgpack; the account is the record's key). A
        person's record has no ``kind`` (records written before kinds existed are people)."""
        value: dict[str, Any] = {
            "name": self.name,
            "id": self.id_number,
            "phone": self.phone,
            "village": self.village,
            "household": self.household,
            "basis": self.basis,
            "basis_date": self.basis_date,
            "changed": self.changed_ms,
        }
        if self.kind != PERSON:
            value["kind"] = self.kind
        return codec.encode(value)

    @classmethod
    def from_bytes(cls, account: str, data: bytes) -> Resident:
        """The resident stored under ``account``; ``FormatError`` if the record is not one."""
        value = codec.decode(data, f"register record of {account}")
        if not isinstance(value, dict):
            raise FormatError(f"the register record of {account} is not a map")
        try:
            texts = {key: _text_field(value, key) for key in _RECORD_TEXTS}
            changed = value["changed"]
        except KeyError as missing:
            raise FormatError(f"the register record of {account} lacks {missing}") from None
        if type(changed) is not int:
            raise FormatError(f"the register record of {account} has no time of change")
        kind = value.get("kind", PERSON)
        if kind not in KINDS:
            raise FormatError(f"the register record of {account} has no valid kind")
        return cls(
            account,
            texts["name"],
            texts["id"],
            texts["phone"],
            texts["village"],
            texts["household"],
            texts["basis"],
            texts["basis_date"],
            changed,
            kind,
        )


@dataclass(frozen=True)
class MaskedResident:
    """What the register lets publicity (and the verifier's publicity check) know of a
    resident: the account, the masked name (DESIGN 3.7), village and household. Never an ID
    or phone number."""

    account: str
    masked_name: str
    village: str
    household: str
    kind: str = PERSON


@dataclass(frozen=True)
class Tombstone:
    """An erased resident: only the account and when it was erased, no personal data."""

    account: str
    erased_ms: int

    @property
    def erased_on(self) -> str:
        """The UTC date of the erasure, ``YYYY-MM-DD``."""
        moment = datetime.datetime.fromtimestamp(self.erased_ms / 1000, datetime.UTC)
        return moment.date().isoformat()


@dataclass(frozen=True)
class Household:
    """A household of a village and its members' accounts (in account order)."""

    village: str
    household: str
    members: tuple[str, ...]


def resident_from_cells(
    cells: Mapping[str, str], today: datetime.date, changed_ms: int
) -> Resident:
    """A resident from the text of each field (keys: :data:`FIELDS`), every field checked.

    Raises ``RowError`` naming every field that is wrong, so that a clerk puts a row
    right in one go.
    """
    checked: dict[str, str] = {}
    problems: list[FieldError] = []
    for field, check in _CHECKERS.items():
        try:
            checked[field] = check(cells.get(field, ""), today)
        except FormatError as error:
            problems.append(FieldError(field, error))
    if problems:
        raise RowError(tuple(problems))
    basis, basis_date = checked["basis"], checked["basis_date"]
    if basis and not basis_date:
        problem = WordedError(
            N_("is empty; a basis ({basis}) needs the date it was given or took effect"),
            basis=BASIS_WORDS[basis],
        )
        raise RowError((FieldError("basis_date", problem),))
    if basis_date and not basis:
        problem = WordedError(N_("is empty, but a basis date is given; give the basis too"))
        raise RowError((FieldError("basis", problem),))
    return Resident(changed_ms=changed_ms, **checked)


class FieldError(FormatError):
    """A field of a resident that cannot be used: ``field`` names it (:data:`FIELDS`),
    ``error`` says why (show it with ``i18n.in_words``)."""

    def __init__(self, field: str, error: FormatError) -> None:
        super().__init__(str(error))
        self.field = field
        self.error = error


class RowError(FormatError):
    """Every field of one resident's row that cannot be used, in the order of
    :data:`FIELDS` (at least one)."""

    def __init__(self, problems: tuple[FieldError, ...]) -> None:
        super().__init__("; ".join(f"{problem.field} {problem}" for problem in problems))
        self.problems = problems


def check_account(text: str, _today: datetime.date | None = None) -> str:
    """An account id as typed, case-folded, or ``FormatError``."""
    folded = _ascii_lower(unicodedata.normalize("NFKC", text).strip())
    if not folded:
        raise WordedError(N_("is empty; every resident needs the account id the log uses"))
    if not is_valid_account(folded) or folded != folded.lower():
        raise WordedError(
            N_(
                "{typed!r} is not an account id: use 1 to 64 lower-case letters, digits, '.', "
                "'_' or '-', starting with a letter or digit (like dgc-0001)"
            ),
            typed=folded,
        )
    return folded


def check_name(text: str, _today: datetime.date | None = None) -> str:
    """A resident's name as stored (NFC), or ``FormatError``."""
    name = unicodedata.normalize("NFC", text.strip())
    if not name:
        raise WordedError(N_("is empty; every resident needs a name"))
    refusal = text_refusal(name)
    if refusal is not None:
        raise refusal
    if len(name) > NAME_MAX:
        raise WordedError(N_("is longer than {most} characters"), most=NAME_MAX)
    for character in name:
        if character in NAME_SEPARATORS:
            continue
        category = unicodedata.category(character)
        if category[0] not in "LM":
            raise WordedError(
                N_(
                    "may hold letters, single spaces and the separators · ・ • - . ' only, "
                    "not {character!r}"
                ),
                character=character,
            )
    if name[0] in NAME_SEPARATORS or name[-1] in NAME_SEPARATORS:
        raise WordedError(N_("must start and end with a letter"))
    if any(a in NAME_SEPARATORS and b in NAME_SEPARATORS for a, b in itertools.pairwise(name)):
        raise WordedError(N_("has two separators (spaces, dots or hyphens) in a row"))
    return name


def check_id_number(text: str, today: datetime.date) -> str:
    """An 18-character GB 11643-1999 ID number (or empty), or ``FormatError``."""
    number = _digits_typed(text).upper()
    if not number:
        return ""
    if "*" in number:
        raise WordedError(_MASKED_HINT, typed=number)
    if _SCIENTIFIC.fullmatch(number):
        raise WordedError(_SCIENTIFIC_HINT, typed=number)
    if len(number) == 15 and number.isdigit():
        raise WordedError(
            N_(
                "is an old 15-digit ID number, which cannot be checked; use the 18-digit "
                "number on the resident's current ID card"
            )
        )
    if len(number) != ID_NUMBER_LENGTH or not (number[:17].isdigit() and number[17] in _ID_CHECK):
        raise WordedError(
            N_("must be 18 characters, 17 digits then a digit or X; {typed!r} is not"),
            typed=number,
        )
    expected = id_check_character(number[:17])
    if number[17] != expected:
        raise WordedError(
            N_(
                "has the check character {given}, but its first 17 digits need {expected}: "
                "a digit was mistyped; compare it with the ID card"
            ),
            given=number[17],
            expected=expected,
        )
    try:
        birth = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise WordedError(
            N_("holds no real birth date (characters 7 to 14 read {digits})"),
            digits=number[6:14],
        ) from None
    if not _EARLIEST_BIRTH <= birth <= today:
        raise WordedError(
            N_("holds a birth date ({birth}) that cannot be right"), birth=birth.isoformat()
        )
    return number


def id_check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits of an ID number."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def check_phone(text: str, _today: datetime.date | None = None) -> str:
    """A mainland mobile or landline number (or empty) as stored, or ``FormatError``."""
    typed = _digits_typed(text).replace(" ", "")
    if not typed:
        return ""
    if "*" in typed:
        raise WordedError(_MASKED_HINT, typed=typed)
    if _SCIENTIFIC.fullmatch(typed):
        raise WordedError(_SCIENTIFIC_HINT, typed=typed)
    mobile = _MOBILE.fullmatch(typed.replace("-", ""))
    if mobile is not None:
        return mobile.group(1)
    split = _LANDLINE_SPLIT.fullmatch(typed)
    if split is not None:
        return f"{split.group(1)}-{split.group(2)}"
    if _LANDLINE_JOINED.fullmatch(typed):
        area_length = 3 if typed[1] in "12" else 4
        joined = f"{typed[:area_length]}-{typed[area_length:]}"
        if _LANDLINE_SPLIT.fullmatch(joined):
            return joined
    raise WordedError(
        N_(
            "{typed!r} is not a phone number in mainland China: give a mobile number of 11 "
            "digits starting with 13 to 19, or a landline with its area code, like "
            "0631-5201234"
        ),
        typed=text.strip(),
    )


def check_village(text: str, _today: datetime.date | None = None) -> str:
    return _place(text, required=True)


def check_household(text: str, _today: datetime.date | None = None) -> str:
    return _place(text, required=False)


def check_basis(text: str, _today: datetime.date | None = None) -> str:
    """``consent``, ``statute`` or empty, or ``FormatError``."""
    word = text.strip().lower()
    word = BASIS_ALIASES.get(word, word)
    if word and word not in BASES:
        raise WordedError(
            N_(
                "{typed!r} is not a legal basis: write consent (同意), statute (法定), or "
                "leave it empty"
            ),
            typed=text.strip(),
        )
    return word


def check_kind(text: str, _today: datetime.date | None = None) -> str:
    """``person`` (also for empty), ``household`` or ``organisation``, or ``FormatError``."""
    word = unicodedata.normalize("NFKC", text).strip().lower()
    word = KIND_ALIASES.get(word, word) or PERSON
    if word not in KINDS:
        raise WordedError(
            N_(
                "{typed!r} is not a kind of account: write person (个人), household (家庭) "
                "or organisation (组织); empty is person"
            ),
            typed=text.strip(),
        )
    return word


def check_basis_date(text: str, today: datetime.date) -> str:
    """A real date not after ``today`` (or empty), as ``YYYY-MM-DD``, or ``FormatError``."""
    typed = _digits_typed(text)
    if not typed:
        return ""
    match = _DATE.fullmatch(_CHINESE_DATE.sub(_dashed, typed))
    if match is None:
        raise WordedError(N_("{typed!r} is not a date; write it as YYYY-MM-DD"), typed=text.strip())
    try:
        date = datetime.date(*(int(part) for part in match.groups()))
    except ValueError:
        raise WordedError(
            N_("{typed!r} is not a date in the calendar"), typed=text.strip()
        ) from None
    if date > today:
        raise WordedError(N_("{date} lies in the future"), date=date.isoformat())
    return date.isoformat()


_CHECKERS: dict[str, Callable[[str, datetime.date], str]] = {
    "account": check_account,
    "name": check_name,
    "id_number": check_id_number,
    "phone": check_phone,
    "village": check_village,
    "household": check_household,
    "basis": check_basis,
    "basis_date": check_basis_date,
    "kind": check_kind,
}
#: Every field of a resident but its time of change, in the order of the register's CSV.
FIELDS = tuple(_CHECKERS)
#: The fields a register file may leave out (their column empty everywhere).
OPTIONAL_FIELDS = ("kind",)
_SCIENTIFIC_HINT = N_(
    "was turned into a number by the spreadsheet (it shows as {typed}) and has lost "
    "digits; format the column as Text and type the numbers again"
)
_MASKED_HINT = N_(
    "{typed!r} is a masked number, as 'residents list' shows it: give the whole number, "
    "or the register would lose it"
)


def _place(text: str, *, required: bool) -> str:
    value = unicodedata.normalize("NFC", text.strip())
    if not value:
        if required:
            raise WordedError(N_("is empty; every resident belongs to a village"))
        return ""
    if any(character in value for character in "\r\n"):
        raise WordedError(N_("must be a single line of text"))
    refusal = text_refusal(value)
    if refusal is not None:
        raise refusal
    if len(value) > PLACE_MAX:
        raise WordedError(N_("is longer than {most} characters"), most=PLACE_MAX)
    return value


def _dashed(match: re.Match[str]) -> str:
    return "-".join(match.groups())


def _digits_typed(text: str) -> str:
    """Full-width digits and letters as ASCII, without surrounding spaces."""
    return unicodedata.normalize("NFKC", text).strip()


def _ascii_lower(text: str) -> str:
    return "".join(character.lower() if character.isascii() else character for character in text)


def _text_field(value: dict[Any, Any], key: str) -> str:
    field = value[key]
    if not isinstance(field, str):
        raise KeyError(key)
    return field
