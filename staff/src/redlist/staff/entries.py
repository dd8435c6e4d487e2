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
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from redlist.ledger import deeddate, keyfile
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


def addressed(body: _Body, log: str) -> _Body:
    """``body`` meant for the log named ``log``.

    Commands check and build a body first (so a typing mistake is reported
    without contacting the node), then learn the log's name from the node.
    """
    return dataclasses.replace(body, log=log)


def key_add(stamp: Stamp, pub: bytes, name: str, roles: Sequence[str]) -> KeyChange:
    return KeyChange(
        stamp.log, stamp.id, stamp.at, "add", pub, keyfile.check_name(name), tuple(roles)
    )


def key_revoke(stamp: Stamp, pub: bytes) -> KeyChange:
    return KeyChange(stamp.log, stamp.id, stamp.at, "revoke", pub)


def rule_set(
    stamp: Stamp,
    code: str,
    title: str,
    module: str,
    points: int,
    council: bool,
    max_qty: int | None = None,
    max_per_month: int | None = None,
) -> RuleChange:
    return RuleChange(
        stamp.log,
        stamp.id,
        stamp.at,
        "set",
        check_rule_code(code),
        check_text(title, "the rule title"),
        check_text(module, "the module"),
        check_rule_points(points),
        council,
        None if max_qty is None else check_cap(max_qty, "max_qty"),
        None if max_per_month is None else check_cap(max_per_month, "max_per_month"),
    )


def rule_retire(stamp: Stamp, code: str) -> RuleChange:
    return RuleChange(stamp.log, stamp.id, stamp.at, "retire", check_rule_code(code))


def award(
    stamp: Stamp, account: str, rule: str, qty: int, note: str | None, date: str | None
) -> Award:
    """An award; ``date`` None leaves the deed date to be filled in (``dated``) once the
    log's time zone is known."""
    checked_note = check_text(note, "the note", required=False) if note is not None else ""
    return Award(
        stamp.log,
        stamp.id,
        stamp.at,
        check_account(account),
        check_rule_code(rule),
        check_positive(qty, "qty"),
        checked_note or None,
        date="" if date is None else check_date(date),
    )


def today(at: int, tz: str) -> str:
    """The deed date of the day of ``at`` (ms) in the log's time zone ``tz``."""
    return deeddate.format_date(deeddate.day_of(at, deeddate.log_zone(tz)))


def dated(body: Award, tz: str) -> Award:
    """``body`` with its deed date, the day of its ``at`` in ``tz`` if it has none yet."""
    return body if body.date else dataclasses.replace(body, date=today(body.at, tz))


def redeem(stamp: Stamp, account: str, points: int, item: str) -> Redeem:
    return Redeem(
        stamp.log,
        stamp.id,
        stamp.at,
        check_account(account),
        check_positive(points, "the points redeemed"),
        check_text(item, "the item"),
    )


def objection(stamp: Stamp, target: int, text: str) -> Objection:
    return Objection(
        stamp.log, stamp.id, stamp.at, check_target(target), check_text(text, "the objection")
    )


def reverse(stamp: Stamp, target: int, reason: str) -> Reverse:
    return Reverse(
        stamp.log, stamp.id, stamp.at, check_target(target), check_text(reason, "the reason")
    )
