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
auditor's memory anyway); ``array`` raises ``OverflowError`` beyond.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping

from redlist.ledger.formatv1 import ID_SIZE

#: A target's fields in the order of ``state.TargetRecord``: kind, account, points,
#: rule, reversed_by, qty, month.
TargetFields = tuple[str, str, int, str, int | None, int, str]

#: 4-byte unsigned slots and seqs ("I" is 4 bytes on every platform Python supports).
_SEQ = "I"
_INITIAL_SLOTS = 1 << 10


class IdTable(Mapping[bytes, int]):
    """Entry id -> seq, in about 30 bytes an entry; see the module docstring."""

    def __init__(self) -> None:
        self._ids = bytearray()  # the id of seq s at [s * ID_SIZE, (s + 1) * ID_SIZE)
        self._slots = array(_SEQ, bytes(4 * _INITIAL_SLOTS))  # seq + 1, 0 for empty
        self._mask = _INITIAL_SLOTS - 1
        self._count = 0
        self._other: dict[bytes, int] = {}

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
                return default
            offset = (stored - 1) * ID_SIZE
            if ids[offset : offset + ID_SIZE] == entry_id:
                return stored - 1
            index = (index + 1) & mask

    def put(self, entry_id: bytes, seq: int) -> None:
        """Record that entry ``seq`` has id ``entry_id`` (an id held already moves to ``seq``)."""
        if len(entry_id) != ID_SIZE:
            self._other[entry_id] = seq
            return
        earlier = self.get(entry_id)
        ids = self._ids
        end = (seq + 1) * ID_SIZE
        if len(ids) < end:
            ids.extend(bytes(end - len(ids)))
        ids[seq * ID_SIZE : end] = entry_id
        if earlier is not None:
            self._slots[self._find(entry_id)] = seq + 1
            return
        if 3 * (self._count + 1) > 2 * len(self._slots):
            self._rehash(2 * len(self._slots))
        self._slots[self._free(entry_id)] = seq + 1
        self._count += 1

    def _find(self, entry_id: bytes) -> int:
        slots, ids, mask = self._slots, self._ids, self._mask
        index = hash(entry_id) & mask
        while True:
            offset = (slots[index] - 1) * ID_SIZE
            if ids[offset : offset + ID_SIZE] == entry_id:
                return index
            index = (index + 1) & mask

    def _free(self, entry_id: bytes) -> int:
        slots, mask = self._slots, self._mask
        index = hash(entry_id) & mask
        while slots[index]:
            index = (index + 1) & mask
        return index

    def _rehash(self, size: int) -> None:
        old = self._slots
        self._slots = array(_SEQ, bytes(4 * size))
        self._mask = size - 1
        ids = self._ids
        for stored in old:
            if stored:
                offset = (stored - 1) * ID_SIZE
                self._slots[self._free(bytes(ids[offset : offset + ID_SIZE]))] = stored


class TargetTable:
    """seq -> the fields of an award's or redemption's target record, 28 bytes an entry."""

    def __init__(self) -> None:
        self._account = array(_SEQ)  # account number + 1; 0: seq is no target
        self._points = array("q")
        self._qty = array("q")
        self._reversed_by = array(_SEQ)  # seq + 1; 0: not reversed
        self._shape = array(_SEQ)  # number of the (kind, rule, month) triple
        self._accounts: list[str] = []
        self._account_numbers: dict[str, int] = {}
        self._shapes: list[tuple[str, str, str]] = []
        self._shape_numbers: dict[tuple[str, str, str], int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

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
            self._accounts[account - 1],
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
        array(_SEQ, [reversed_stored, seq + 1])  # OverflowError before anything changes
        array("q", [points, qty])
        number = self._account_numbers.get(account)
        if number is None:
            self._accounts.append(account)
            number = self._account_numbers[account] = len(self._accounts)
        shape = (kind, rule, month)
        shape_number = self._shape_numbers.get(shape)
        if shape_number is None:
            self._shapes.append(shape)
            shape_number = self._shape_numbers[shape] = len(self._shapes) - 1
        columns = (self._account, self._points, self._qty, self._reversed_by, self._shape)
        missing = seq + 1 - len(self._account)
        if missing == 1:
            for column in columns:
                column.append(0)
        elif missing > 1:
            for column in columns:
                column.extend(array(column.typecode, bytes(column.itemsize * missing)))
        if not self._account[seq]:
            self._count += 1
        self._account[seq] = number
        self._points[seq] = points
        self._qty[seq] = qty
        self._reversed_by[seq] = reversed_stored
        self._shape[seq] = shape_number


__all__ = ["IdTable", "TargetFields", "TargetTable"]
