"""Per-entry state packed in arrays, so that an in-memory state grows by bytes per entry.

A log's semantics must remember two things about every entry for the rest of the
log: its id (a later entry with the same id is refused) and, for an award or a
redemption, what a later objection or reversal needs (``state.TargetRecord``).
Kept as a dictionary of Python objects that costs some 400 bytes an entry; an
auditor of a county's ten million entries would need gigabytes (ADR 0030). Here:

* ``IdTable``: the ids of ``ID_SIZE`` bytes one after the other in a ``bytearray``
  indexed by seq (16 bytes an entry) and an open-addressing hash table of seq + 1
  in an ``array`` of 4-byte slots, at most two thirds full (6 to 12 bytes an entry).
  A slot is found by ``hash(id)``, which Python keys at random per process (SipHash),
  so a log cannot choose ids that collide in every auditor; a hit is compared with
  the whole stored id, so the answer is exact. Ids of another length (only tests
  make them) go to a plain dictionary.
* ``TargetTable``: arrays indexed by seq of the account (interned), the points, the
  qty, the seq of the reversal and the (kind, rule, month) triple (interned):
  28 bytes an entry. It stores a record's fields; ``state.MemoryState`` makes them
  ``TargetRecord`` values again.

Both hold seqs below 2**32 - 1 (a log of four billion entries does not fit an
auditor's memory anyway) and raise ``OverflowError`` beyond, changing nothing.

Per account (ADR 0035): ``AccountTable`` interns each account id once and numbers
it; ``BalanceTable`` keeps the balances in arrays indexed by that number (25 bytes
an account) and ``MonthCountTable`` the rules' monthly counts in a dictionary keyed
by one integer (the account number and the interned (rule, month) pair).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Mapping

from redlist.ledger.formatv1 import ID_SIZE

#: A target's fields in the order of ``state.TargetRecord``: kind, account, points,
#: rule, reversed_by, qty, month.
TargetFields = tuple[str, str, int, str, int | None, int, str]

#: 4-byte unsigned slots and seqs ("I" is 4 bytes on every platform Python supports).
_SEQ = "I"
#: The largest seq held: seq + 1 fits a slot.
_MAX_SEQ = 2**32 - 2
#: The range of the 8-byte ("q") columns.
_MIN_Q, _MAX_Q = -(2**63), 2**63 - 1
_INITIAL_SLOTS = 1 << 10
#: The most ids ``IdTable.reserve`` makes room for at once (8M slots, 32 MiB).
MAX_RESERVED = 1 << 22


class IdTable(Mapping[bytes, int]):
    """Entry id -> seq, in about 30 bytes an entry; see the module docstring.

    The semantics asks ``get`` for every entry's id and then, the entry accepted,
    ``put``s it: ``get`` remembers the free slot it stopped at for that id object, and
    a ``put`` of the same id object straight after uses it instead of probing again
    (anything else in between forgets it). ``reserve`` makes room for a known number
    of entries at once, sparing the doublings on the way.
    """

    def __init__(self) -> None:
        self._ids = bytearray()  # the id of seq s at [s * ID_SIZE, (s + 1) * ID_SIZE)
        self._slots = array(_SEQ, bytes(4 * _INITIAL_SLOTS))  # seq + 1, 0 for empty
        self._mask = _INITIAL_SLOTS - 1
        self._count = 0
        self._other: dict[bytes, int] = {}
        # (id, free slot) that the last ``get`` found the id absent at; () when none.
        self._absent: tuple[bytes, int] | tuple[()] = ()

    def __len__(self) -> int:
        return self._count + len(self._other)

    def __getitem__(self, entry_id: bytes) -> int:
        seq = self.get(entry_id)
        if seq is None:
            raise KeyError(entry_id)
        return seq

    def __iter__(self) -> Iterator[bytes]:
        ids = self._ids
        for stored in self._slots:
            if stored:
                offset = (stored - 1) * ID_SIZE
                yield bytes(ids[offset : offset + ID_SIZE])
        yield from self._other

    def get(self, entry_id: bytes, default: int | None = None) -> int | None:  # type: ignore[override]
        """The seq of ``entry_id``, or ``default`` when the table does not hold it."""
        if len(entry_id) != ID_SIZE:
            return self._other.get(entry_id, default)
        slots, ids, mask = self._slots, self._ids, self._mask
        index = hash(entry_id) & mask
        while True:
            stored = slots[index]
            if not stored:
                self._absent = (entry_id, index)
                return default
            offset = (stored - 1) * ID_SIZE
            if ids[offset : offset + ID_SIZE] == entry_id:
                return stored - 1
            index = (index + 1) & mask

    def put(self, entry_id: bytes, seq: int) -> None:
        """Record that entry ``seq`` has id ``entry_id`` (an id held already moves to ``seq``)."""
        absent, self._absent = self._absent, ()
        if len(entry_id) != ID_SIZE:
            self._other[entry_id] = seq
            return
        if not 0 <= seq <= _MAX_SEQ:
            raise OverflowError(f"seq {seq} is beyond the {_MAX_SEQ} an in-memory state holds")
        if 3 * (self._count + 1) > 2 * len(self._slots):
            self._rehash(2 * len(self._slots))
            absent = ()
        slots, ids = self._slots, self._ids
        if absent and absent[0] is entry_id:  # ``get`` just found its free slot
            index, stored = absent[1], 0
        else:
            # One probe: it stops at the id held already, or at the free slot for it.
            mask = self._mask
            index = hash(entry_id) & mask
            while True:
                stored = slots[index]
                if not stored:
                    break
                offset = (stored - 1) * ID_SIZE
                if ids[offset : offset + ID_SIZE] == entry_id:
                    break
                index = (index + 1) & mask
        start = seq * ID_SIZE
        if len(ids) == start:  # the usual case: the next seq
            ids += entry_id
        else:
            if len(ids) < start:
                ids.extend(bytes(start - len(ids)))
            ids[start : start + ID_SIZE] = entry_id
        if not stored:
            self._count += 1
        slots[index] = seq + 1

    def reserve(self, entries: int) -> None:
        """Make room for ``entries`` ids in all (at most ``MAX_RESERVED``: the number
        comes from data, and room is only saved time)."""
        wanted = min(entries, MAX_RESERVED)
        size = len(self._slots)
        while 2 * size < 3 * wanted:
            size *= 2
        if size > len(self._slots):
            self._rehash(size)

    def _rehash(self, size: int) -> None:
        self._absent = ()
        old = self._slots
        slots = self._slots = array(_SEQ, bytes(4 * size))
        mask = self._mask = size - 1
        ids = self._ids
        for stored in old:
            if stored:
                offset = (stored - 1) * ID_SIZE
                index = hash(bytes(ids[offset : offset + ID_SIZE])) & mask
                while slots[index]:
                    index = (index + 1) & mask
                slots[index] = stored


class AccountTable:
    """Account ids interned once: each gets a number, from 0 in order of first sight.

    The tables below hold account numbers, not ids, so an id is kept once however many
    balances, counts and records refer to it.
    """

    def __init__(self) -> None:
        self._names: list[str] = []
        self._numbers: dict[str, int] = {}
        #: The number of an account, or None when it has none (nothing is interned):
        #: the dictionary's own ``get``, called for every award without a Python frame.
        self.find: Callable[[str], int | None] = self._numbers.get

    def __len__(self) -> int:
        return len(self._names)

    def number(self, account: str) -> int:
        """The number of ``account``, given it now if it has none."""
        number = self._numbers.get(account)
        if number is None:
            number = self._numbers[account] = len(self._names)
            self._names.append(account)
        return number

    def name(self, number: int) -> str:
        return self._names[number]


#: An account's balance fields in the order of ``state.Balance``: earned, redeemed, entries.
BalanceFields = tuple[int, int, int]


class BalanceTable:
    """Account number -> its balance fields, in three arrays of 8-byte integers.

    An account holds a balance once one was put for it (``has``); the others read as
    zeros. Values out of the 8-byte range raise ``OverflowError`` and change nothing
    (the points rules keep balances within 2**53 anyway).
    """

    def __init__(self) -> None:
        self._earned = array("q")
        self._redeemed = array("q")
        self._entries = array("q")
        self._present = bytearray()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def has(self, number: int) -> bool:
        return number < len(self._present) and self._present[number] == 1

    def get(self, number: int) -> BalanceFields | None:
        if number >= len(self._present) or not self._present[number]:
            return None
        return self._earned[number], self._redeemed[number], self._entries[number]

    def put(self, number: int, earned: int, redeemed: int, entries: int) -> None:
        present = self._present
        if number >= len(present):
            if not (_MIN_Q <= earned <= _MAX_Q and _MIN_Q <= redeemed <= _MAX_Q):
                raise OverflowError("a balance beyond the packed columns")
            if not _MIN_Q <= entries <= _MAX_Q:
                raise OverflowError("a balance beyond the packed columns")
            missing = number - len(present)
            if missing:
                for column in (self._earned, self._redeemed, self._entries):
                    column.extend(array("q", bytes(8 * missing)))
                present.extend(bytes(missing))
            self._earned.append(earned)  # the usual case: the next account
            self._redeemed.append(redeemed)
            self._entries.append(entries)
            present.append(1)
            self._count += 1
            return
        before = self._earned[number], self._redeemed[number]
        try:
            self._earned[number] = earned
            self._redeemed[number] = redeemed
            self._entries[number] = entries
        except OverflowError:
            self._earned[number], self._redeemed[number] = before
            raise
        if not present[number]:
            present[number] = 1
            self._count += 1

    def numbers(self) -> Iterator[int]:
        """The numbers of the accounts that hold a balance, in order."""
        present = bytes(self._present)
        return (number for number in range(len(present)) if present[number])

    def copy(self) -> BalanceTable:
        """An independent copy (arrays are copied whole, a few bytes per account)."""
        other = BalanceTable()
        other._earned = array("q", self._earned)
        other._redeemed = array("q", self._redeemed)
        other._entries = array("q", self._entries)
        other._present = bytearray(self._present)
        other._count = self._count
        return other


class MonthCountTable:
    """(account number, rule, month) -> qty, for the rules' monthly caps.

    A plain dictionary keyed by one integer: the account number in the low 32 bits
    and the number of the (rule, month) pair (interned) above them. About 80 bytes a
    count, against some 230 for a tuple of three strings as the key. A qty of 0
    removes the count.
    """

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._pairs: list[tuple[str, str]] = []
        self._pair_numbers: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def get(self, number: int, rule: str, month: str) -> int:
        pair = self._pair_numbers.get((rule, month))
        if pair is None:
            return 0
        return self._counts.get(pair << 32 | number, 0)

    def put(self, number: int, rule: str, month: str, qty: int) -> None:
        pair = self._pair_numbers.get((rule, month))
        if pair is None:
            if not qty:
                return
            pair = self._pair_numbers[(rule, month)] = len(self._pairs)
            self._pairs.append((rule, month))
        if qty:
            self._counts[pair << 32 | number] = qty
        else:
            self._counts.pop(pair << 32 | number, None)

    def items(self) -> Iterator[tuple[int, str, str, int]]:
        """(account number, rule, month, qty) of every count."""
        pairs = self._pairs
        for key, qty in self._counts.items():
            rule, month = pairs[key >> 32]
            yield key & 0xFFFFFFFF, rule, month, qty


class TargetTable:
    """seq -> the fields of an award's or redemption's target record, 28 bytes an entry."""

    def __init__(self, accounts: AccountTable | None = None) -> None:
        self._account = array(_SEQ)  # account number + 1; 0: seq is no target
        self._points = array("q")
        self._qty = array("q")
        self._reversed_by = array(_SEQ)  # seq + 1; 0: not reversed
        self._shape = array(_SEQ)  # number of the (kind, rule, month) triple
        self._accounts = AccountTable() if accounts is None else accounts
        self._shapes: list[tuple[str, str, str]] = []
        self._shape_numbers: dict[tuple[str, str, str], int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def _columns(self) -> tuple[array[int], ...]:
        return (self._account, self._points, self._qty, self._reversed_by, self._shape)

    def seqs(self) -> Iterator[int]:
        """The seqs that hold a record, in order."""
        return (seq for seq, account in enumerate(self._account) if account)

    def get(self, seq: int) -> TargetFields | None:
        """The fields of ``seq``'s record, or None when it is no award or redemption."""
        if not 0 <= seq < len(self._account):
            return None
        account = self._account[seq]
        if not account:
            return None
        kind, rule, month = self._shapes[self._shape[seq]]
        reversed_by = self._reversed_by[seq]
        return (
            kind,
            self._accounts.name(account - 1),
            self._points[seq],
            rule,
            reversed_by - 1 if reversed_by else None,
            self._qty[seq],
            month,
        )

    def put(self, seq: int, fields: TargetFields) -> None:
        """Set the record of ``seq``; a value out of the arrays' range changes nothing."""
        kind, account, points, rule, reversed_by, qty, month = fields
        if seq < 0:
            raise ValueError("a target's seq is not negative")
        reversed_stored = 0 if reversed_by is None else reversed_by + 1
        # Checked before anything changes (comparisons: this runs for every award).
        if not (
            seq <= _MAX_SEQ
            and 0 <= reversed_stored <= _MAX_SEQ + 1
            and _MIN_Q <= points <= _MAX_Q
            and _MIN_Q <= qty <= _MAX_Q
        ):
            raise OverflowError("a target's seq or amounts are beyond the packed columns")
        number = self._accounts.find(account)
        if number is None:
            number = self._accounts.number(account)
        number += 1
        shape = (kind, rule, month)
        shape_number = self._shape_numbers.get(shape)
        if shape_number is None:
            self._shapes.append(shape)
            shape_number = self._shape_numbers[shape] = len(self._shapes) - 1
        size = len(self._account)
        if seq >= size:  # the usual case: the next seq
            if seq > size:
                for column in self._columns():
                    column.extend(array(column.typecode, bytes(column.itemsize * (seq - size))))
            self._account.append(number)
            self._points.append(points)
            self._qty.append(qty)
            self._reversed_by.append(reversed_stored)
            self._shape.append(shape_number)
            self._count += 1
            return
        if not self._account[seq]:
            self._count += 1
        self._account[seq] = number
        self._points[seq] = points
        self._qty[seq] = qty
        self._reversed_by[seq] = reversed_stored
        self._shape[seq] = shape_number


__all__ = [
    "MAX_RESERVED",
    "AccountTable",
    "BalanceFields",
    "BalanceTable",
    "IdTable",
    "MonthCountTable",
    "TargetFields",
    "TargetTable",
]
