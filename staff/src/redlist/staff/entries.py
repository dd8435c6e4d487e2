"""Entry bodies from what a clerk typed: the common fields, then one builder per kind.

Building an entry takes three steps, kept apart so each can be tested on its own:

1. *check* the clerk's values (``redlist.staff.values``; CSV files:
   ``redlist.staff.csvfiles``) and say in plain words what is wrong, before
   anything is signed or sent;
2. *build* the body with the ``redlist.ledger.entry`` classes, stamped with the
   log's origin, an entry id and the author's time (``Stamp``): this module;
3. *seal* it: sign the exact body bytes with every signer, in key id order
   (``redlist.staff.signing``).

Entry ids are 16 random bytes, except for the rows of an award sheet and bulk reversals,
whose ids are derived from what they say (``rowids``), and the rows of a rule catalogue
file (``csvfiles.row_entry_id``).

Free texts (a note, an item, an objection, a reason, the meeting that decided a rule)
never enter a body: it holds their commitments (DESIGN 9.2, ``textcommit``), each under a
fresh random 16-byte salt, and the texts travel beside the envelope. A builder returns a
:class:`Draft`: the body and its texts. A sheet row's salts are derived from the signer's
key instead (``derived_salt``), so that a re-run signs the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from redlist.ledger import deeddate, keyfile
from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import (
    ID_SIZE,
    Award,
    Body,
    KeyChange,
    Objection,
    Redeem,
    Reverse,
    RuleChange,
)
from redlist.ledger.i18n import _
from redlist.ledger.textcommit import SALT_SIZE, EntryText
from redlist.staff.values import (
    check_account,
    check_cap,
    check_date,
    check_positive,
    check_rule_code,
    check_rule_points,
    check_target,
    check_text,
)


def now_ms() -> int:
    """This machine's clock in ms since 1970 UTC: the author's time of a new entry."""
    return time.time_ns() // 1_000_000


def new_entry_id() -> bytes:
    """A fresh random 16-byte entry id."""
    return os.urandom(ID_SIZE)


@dataclass(frozen=True)
class Stamp:
    """The fields every body shares: the log it is meant for, its id, the author's time."""

    log: str
    id: bytes
    at: int

    @classmethod
    def fresh(cls, log: str = "") -> Stamp:
        """A new random id, stamped now; ``log`` may be filled in later (``addressed``)."""
        return cls(log, new_entry_id(), now_ms())


_Body = TypeVar("_Body", bound=Body)
#: Where a text's salt comes from: given the entry id and the field, 16 bytes.
SaltSource = Callable[[bytes, str], bytes]

_DERIVED_SALT_DOMAIN = b"redlist/staff-salt/v1\x00"


def random_salt(entry_id: bytes, name: str) -> bytes:
    """A fresh random salt (the entry id and field are not used)."""
    return os.urandom(SALT_SIZE)


def derived_salt(key: SigningKey) -> SaltSource:
    """Salts derived from ``key``'s secret seed, the entry id and the field: as
    unpredictable as random ones to anyone without the key, and the same every time the
    same key signs the same entry (a re-run of a CSV file signs the same bytes)."""

    def salt(entry_id: bytes, name: str) -> bytes:
        material = _DERIVED_SALT_DOMAIN + entry_id + name.encode("ascii")
        return hmac.new(key.seed, material, hashlib.sha256).digest()[:SALT_SIZE]

    return salt


@dataclass(frozen=True)
class Draft(Generic[_Body]):
    """A body ready to be signed, and the free texts it commits to, by field."""

    body: _Body
    texts: Mapping[str, EntryText] = field(default_factory=dict)


def _committed(
    stamp: Stamp, values: Mapping[str, str | None], salt: SaltSource
) -> dict[str, EntryText]:
    """The texts of ``values`` (field -> checked text, None: absent) under salts."""
    return {
        name: EntryText(text, salt(stamp.id, name))
        for name, text in values.items()
        if text is not None
    }


def _commitment(texts: Mapping[str, EntryText], name: str) -> bytes | None:
    text = texts.get(name)
    return None if text is None else text.commitment


def addressed(draft: Draft[_Body], log: str) -> Draft[_Body]:
    """``draft`` meant for the log named ``log``.

    Commands check and build a body first (so a typing mistake is reported
    without contacting the node), then learn the log's name from the node.
    """
    return Draft(dataclasses.replace(draft.body, log=log), draft.texts)


def key_add(stamp: Stamp, pub: bytes, name: str, roles: Sequence[str]) -> Draft[KeyChange]:
    return Draft(
        KeyChange(stamp.log, stamp.id, stamp.at, "add", pub, keyfile.check_name(name), tuple(roles))
    )


def key_revoke(stamp: Stamp, pub: bytes) -> Draft[KeyChange]:
    return Draft(KeyChange(stamp.log, stamp.id, stamp.at, "revoke", pub))


def rule_set(
    stamp: Stamp,
    code: str,
    title: str,
    module: str,
    points: int,
    council: bool,
    max_qty: int | None = None,
    max_per_month: int | None = None,
    decided: str | None = None,
    *,
    salt: SaltSource = random_salt,
) -> Draft[RuleChange]:
    """A rule set; ``decided`` names the meeting that voted it (a text, kept off the log)."""
    texts = _committed(stamp, {"decided": _optional_text(decided, "--decided")}, salt)
    body = RuleChange(
        stamp.log,
        stamp.id,
        stamp.at,
        "set",
        check_rule_code(code),
        check_text(title, _("the rule title")),
        check_text(module, _("the module")),
        check_rule_points(points),
        council,
        None if max_qty is None else check_cap(max_qty, "max_qty"),
        None if max_per_month is None else check_cap(max_per_month, "max_per_month"),
        _commitment(texts, "decided"),
    )
    return Draft(body, texts)


def rule_retire(stamp: Stamp, code: str) -> Draft[RuleChange]:
    return Draft(RuleChange(stamp.log, stamp.id, stamp.at, "retire", check_rule_code(code)))


def _optional_text(value: str | None, what: str) -> str | None:
    """``value`` checked, or None when absent or blank."""
    if value is None:
        return None
    return check_text(value, what, required=False) or None


def award(
    stamp: Stamp,
    account: str,
    rule: str,
    qty: int,
    note: str | None,
    date: str | None,
    *,
    salt: SaltSource = random_salt,
) -> Draft[Award]:
    """An award; ``date`` None leaves the deed date to be filled in (``dated``) once the
    log's time zone is known."""
    texts = _committed(stamp, {"note": _optional_text(note, _("the note"))}, salt)
    body = Award(
        stamp.log,
        stamp.id,
        stamp.at,
        check_account(account),
        check_rule_code(rule),
        check_positive(qty, "qty"),
        _commitment(texts, "note"),
        date="" if date is None else check_date(date),
    )
    return Draft(body, texts)


def today(at: int, tz: str) -> str:
    """The deed date of the day of ``at`` (ms) in the log's time zone ``tz``."""
    return deeddate.format_date(deeddate.day_of(at, deeddate.log_zone(tz)))


def dated(draft: Draft[Award], tz: str) -> Draft[Award]:
    """``draft`` with its deed date, the day of its ``at`` in ``tz`` if it has none yet."""
    body = draft.body
    if body.date:
        return draft
    return Draft(dataclasses.replace(body, date=today(body.at, tz)), draft.texts)


def redeem(
    stamp: Stamp, account: str, points: int, item: str, *, salt: SaltSource = random_salt
) -> Draft[Redeem]:
    texts = _committed(stamp, {"item": check_text(item, _("the item"))}, salt)
    body = Redeem(
        stamp.log,
        stamp.id,
        stamp.at,
        check_account(account),
        check_positive(points, _("the points redeemed")),
        texts["item"].commitment,
    )
    return Draft(body, texts)


def objection(
    stamp: Stamp, target: int, text: str, *, salt: SaltSource = random_salt
) -> Draft[Objection]:
    texts = _committed(stamp, {"text": check_text(text, _("the objection"))}, salt)
    body = Objection(stamp.log, stamp.id, stamp.at, check_target(target), texts["text"].commitment)
    return Draft(body, texts)


def reverse(
    stamp: Stamp, target: int, reason: str, *, salt: SaltSource = random_salt
) -> Draft[Reverse]:
    texts = _committed(stamp, {"reason": check_text(reason, _("the reason"))}, salt)
    body = Reverse(stamp.log, stamp.id, stamp.at, check_target(target), texts["reason"].commitment)
    return Draft(body, texts)
