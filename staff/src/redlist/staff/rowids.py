"""Entry ids of a sheet's rows, derived from what each row says: the spec of ``submit``'s
never-twice guarantee and of ``reverse``'s (docs/format.md, "Ids of a sheet's rows";
docs/adr/0026-row-ids-from-what-a-row-says.md).

**An award row.** Its id is the first 16 bytes of SHA-256 of::

    b"redlist/staff/award-row/v3" 0x00 ‖ msgpack([log, account, rule, qty, date, occurrence])

as a canonical msgpack array (``codec.encode``: str as msgpack str, integers in their
shortest form), where

* ``log`` is the origin of the log the entry is meant for;
* ``account`` is the account id case-folded (``values.fold_account``: ``DGC-0019`` is
  ``dgc-0019``);
* ``rule`` is the rule code as checked (surrounding spaces dropped, NFC);
* ``qty`` is the whole number (an empty cell is 1, ``5.0`` is 5);
* ``date`` is the deed date as the log holds it, ``YYYY-MM-DD`` (``2026/5/3`` is
  ``2026-05-03``; an empty cell is the day the row is sent, in the log's time zone);
* ``occurrence`` is 1 for the first row of the sheet saying exactly this
  (``log, account, rule, qty, date``), 2 for the second, and so on, counting in the
  sheet's order.

Everything in the id is also in the award's body, public in the log. The **note is not**:
the log holds only a salted commitment to it (DESIGN 9.2), and an id computed from its
words would let anyone test a guessed note ("helped 王奶奶") against a row's id, which the
salt exists to prevent. So the note describes a deed without identifying it: a row whose
note alone was corrected is the deed already recorded (under its first note), and two
rows differing only in their notes are two occurrences of one deed.

Nothing else enters: not the file's bytes, name, encoding, line endings or order of
rows, not the row number, not who signs, not when. So a sheet saved again (CRLF,
spaces, a byte order mark, rows sorted, Excel's date format) gives the same ids; an
edited account, rule, qty or date gives a new id (a new deed); two identical deeds in
one sheet are two ids; a sheet with three of them where there were two has one id more.

**A reversal** of entry ``target``: the first 16 bytes of SHA-256 of
``b"redlist/staff/reversal/v1" 0x00 ‖ msgpack([log, target])``. An entry is reversed
at most once, so every reversal of it may share one id: a second attempt finds the
first rather than recording anything.

The domain strings keep these ids apart from each other, from random ids (16 random
bytes, never equal in practice) and from the ids of earlier versions (v2 hashed the
note's words).
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from redlist.ledger import codec
from redlist.ledger.entry import ID_SIZE
from redlist.ledger.i18n import _

AWARD_ROW_DOMAIN = b"redlist/staff/award-row/v3\x00"
REVERSAL_DOMAIN = b"redlist/staff/reversal/v1\x00"


@dataclass(frozen=True)
class Deed:
    """What an award row says, normalised as the log will hold it (see the module
    docstring): two rows are the same deed exactly when their ``identity``s are equal;
    the ``note`` describes the deed and does not enter its id."""

    log: str
    account: str
    rule: str
    qty: int
    date: str
    note: str

    @property
    def identity(self) -> tuple[str, str, str, int, str]:
        """What identifies the deed: everything but the note, all public in the log."""
        return (self.log, self.account, self.rule, self.qty, self.date)

    def entry_id(self, occurrence: int) -> bytes:
        """The entry id of the ``occurrence``-th row (from 1) of a sheet saying this."""
        if occurrence < 1:
            raise ValueError(
                _("an occurrence counts from 1, not {occurrence}").format(occurrence=occurrence)
            )
        material = codec.encode([*self.identity, occurrence])
        return hashlib.sha256(AWARD_ROW_DOMAIN + material).digest()[:ID_SIZE]


def occurrences(keys: Iterable[Hashable]) -> list[int]:
    """For each key in order, how many times it has appeared so far (1 the first time)."""
    seen: dict[Hashable, int] = {}
    numbers: list[int] = []
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
        numbers.append(seen[key])
    return numbers


def reversal_id(log: str, target: int) -> bytes:
    """The entry id of the reversal of entry ``target`` in the log ``log``."""
    material = codec.encode([log, target])
    return hashlib.sha256(REVERSAL_DOMAIN + material).digest()[:ID_SIZE]
