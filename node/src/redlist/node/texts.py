"""The node's free texts (DESIGN 9.2): checked on Submit, kept before the append, read back.

A body holds commitments; the texts travel beside the envelopes and stay with the town
that recorded them, in ``DIR/texts.lmdb`` (``redlist.ledger.textstore``), never in the
log: a mirror receives leaves only, so it never holds a text.

On Submit (:meth:`NodeTexts.admit`), before anything is appended:

1. every decodable envelope's texts are checked against its commitments: a missing text,
   a text for a field the body does not commit to, or one that does not match refuses
   the batch (``BatchError`` around a ``TextError``, naming the envelope and the field).
   An undecodable envelope is left to the log, which refuses it in its own words;
2. the texts are stored, flushed to disk, before the batch goes to the log. A crash
   between the two leaves texts of entries the log never got: garbage, which
   :meth:`NodeTexts.clean_orphans` removes at the next start. The reverse order could
   lose the text of an acknowledged entry.

When the log then refuses the batch, :meth:`NodeTexts.settle` removes what it stored,
except a text another call in flight also sent, or one of an entry the log holds (an
identical envelope may be resubmitted).

Reading: :meth:`NodeTexts.texts_for` (one entry's texts by seq, for the monthly
publicity) and :meth:`NodeTexts.fill` (a page of a statement, for an authenticated
``GetAccount``). Calls are serialised in this process: one LMDB environment is never
opened twice at once by one process.

Commands that open a data directory (the node may be serving it: the store's lock
orders them) use :func:`bundle_texts` (``export --texts``), :func:`erase_entry` and
:func:`erase_account` (``redlist-node texts erase``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from redlist.ledger.append import Incoming, Submitted
from redlist.ledger.entry import (
    AnyBody,
    Award,
    Envelope,
    Leaf,
    Objection,
    Redeem,
    Reverse,
    RuleChange,
    decode_body,
)
from redlist.ledger.errors import BatchError, FormatError, IntegrityError, TextError
from redlist.ledger.i18n import _
from redlist.ledger.log import Log
from redlist.ledger.statement import AccountStatement
from redlist.ledger.textcommit import BundleText, EntryText, check_texts, commitments_of
from redlist.ledger.textstore import StoredText, TextKey, TextStore

#: The texts of each envelope of a batch, by field (an empty map for one without any).
BatchTexts = Sequence[Mapping[str, EntryText]]


@dataclass(frozen=True)
class Admitted:
    """What :meth:`NodeTexts.admit` stored for a batch: every key, and those it created."""

    keys: tuple[TextKey, ...]
    created: tuple[TextKey, ...]


def body_of_leaf(leaf: bytes) -> AnyBody:
    """The body of the entry in ``leaf`` (stored bytes: a failure is damage)."""
    try:
        return decode_body(Envelope.from_bytes(Leaf.from_bytes(leaf).envelope).body)
    except FormatError as error:
        raise IntegrityError(
            _("a stored entry cannot be read: {error}").format(error=error)
        ) from None


def checked_texts(envelopes: Sequence[Incoming], texts: BatchTexts) -> list[StoredText]:
    """The texts of a batch to store, once each is checked against its envelope's body.

    ``envelopes`` are bytes or decoded already (``append.decode_each``, as Submit
    does, so the log does not decode them again). ``texts`` is aligned with
    ``envelopes`` or empty (no texts at all). Raises ``BatchError`` (check ``text``)
    at the first envelope whose texts are wrong."""
    records: list[StoredText] = []
    for index, envelope in enumerate(envelopes):
        given = texts[index] if texts else {}
        if isinstance(envelope, Submitted):
            body = envelope.body
        else:
            try:
                body = decode_body(Envelope.from_bytes(envelope).body)
            except FormatError:
                continue  # the log refuses it, naming what is wrong with it
        try:
            check_texts(body, given)
        except TextError as error:
            raise BatchError(error, index=index) from None
        if given:  # most entries come with none: no generator, no sort for them
            records.extend(StoredText(body.id, name, text) for name, text in sorted(given.items()))
    return records


class NodeTexts:
    """The free texts of the node serving ``log`` from ``data_dir``."""

    def __init__(self, data_dir: Path, log: Log) -> None:
        self.data_dir = data_dir
        self._log = log
        self._lock = threading.Lock()
        #: How many calls in flight sent each text: it is not removed while one still may
        #: be appended.
        self._in_flight: Counter[TextKey] = Counter()

    # -- Submit ---------------------------------------------------------------

    def admit(self, envelopes: Sequence[Incoming], texts: BatchTexts) -> Admitted:
        """Check the texts of a batch and store them durably (blocking). Raises
        ``BatchError`` for a wrong text; ``StoreError`` when they cannot be stored."""
        records = checked_texts(envelopes, texts)
        if not records:
            return Admitted((), ())
        keys = tuple(TextKey(r.entry_id, r.field, r.text.commitment) for r in records)
        with self._lock:
            with TextStore.open(self.data_dir, write=True) as store:
                created = tuple(store.put(records, only_new=True))
            self._in_flight.update(keys)
        return Admitted(keys, created)

    def settle(self, admitted: Admitted, *, refused: bool) -> None:
        """The call that stored ``admitted`` is answered; ``refused``: nothing of its
        batch was appended, so the texts it created go, unless still needed."""
        if not admitted.keys:
            return
        with self._lock:
            self._in_flight.subtract(admitted.keys)
            for key in admitted.keys:
                if self._in_flight[key] <= 0:
                    del self._in_flight[key]
            if not refused:
                return
            unneeded = [
                key
                for key in admitted.created
                if key not in self._in_flight and not self._holds(key)
            ]
            if unneeded:
                with TextStore.open(self.data_dir, write=True) as store:
                    store.remove(unneeded)

    def clean_orphans(self) -> int:
        """Remove every stored text whose entry is not in the log with that commitment
        (a crash between storing texts and the append; a refused batch). Run it before
        serving; returns how many were removed."""
        with self._lock, TextStore.open(self.data_dir, write=True) as store:
            orphans = [key for key in store.stored_keys() if not self._holds(key)]
            if orphans:
                store.remove(orphans)
        return len(orphans)

    def _holds(self, key: TextKey) -> bool:
        """Whether the log holds the entry of ``key`` with exactly that commitment."""
        found = self._log.entry(key.entry_id)
        if found is None:
            return False
        return commitments_of(body_of_leaf(found[1])).get(key.field) == key.commitment

    # -- reading --------------------------------------------------------------

    def texts_for(self, seq: int) -> dict[str, str]:
        """The texts of entry ``seq`` the node holds, by field (an erased one is absent)."""
        ((_seq, leaf),) = list(self._log.leaves(seq, seq + 1))
        body = body_of_leaf(leaf)
        found: dict[str, str] = {}
        with self._lock, TextStore.open(self.data_dir) as store:
            for name, commitment in commitments_of(body).items():
                text = store.get(body.id, name, commitment)
                if text is not None:
                    found[name] = text.text
        return found

    def decided_texts(self, seqs: Sequence[int]) -> dict[int, str]:
        """For each of ``seqs`` that is a ``rule set`` with a ``decided`` text the node
        holds, that text: the meeting that voted the rule, public like the catalogue."""
        found: dict[int, str] = {}
        with self._lock, TextStore.open(self.data_dir) as store:
            for seq in seqs:
                ((_, leaf),) = list(self._log.leaves(seq, seq + 1))
                body = body_of_leaf(leaf)
                if isinstance(body, RuleChange) and body.decided is not None:
                    text = store.get(body.id, "decided", body.decided)
                    if text is not None:
                        found[seq] = text.text
        return found

    def fill(self, statement: AccountStatement) -> AccountStatement:
        """``statement`` with the note or item text of each entry the node holds, and
        ``texts_withheld`` false: for a reader entitled to them."""
        entries = list(statement.entries)
        if any(entry.text_commitment is not None for entry in entries):
            with self._lock, TextStore.open(self.data_dir) as store:
                for position, entry in enumerate(entries):
                    if entry.text_commitment is None:
                        continue
                    text = store.get(entry.entry_id, entry.text_field, entry.text_commitment)
                    if text is not None:
                        entries[position] = entry.with_text(text.text)
        return replace(statement, entries=tuple(entries), texts_withheld=False)


# -- export and erasure (commands that open the data directory) ------------------------


@dataclass(frozen=True)
class Erasure:
    """What an erasure removed: the texts deleted, and the (seq, field) it covered."""

    deleted: int
    fields: tuple[tuple[int, str], ...]


#: Commitments looked up per opening of the store while exporting: the store's lock is
#: held briefly, so a serving node's writes never wait long for an export.
_LOOKUPS_PER_OPEN = 1000


def bundle_texts(data_dir: Path, log: Log, start: int, end: int) -> Iterator[BundleText]:
    """The texts the node holds of entries ``[start, end)``, in seq order and field order:
    the lines of a texts file (an erased text is left out)."""
    wanted: list[tuple[int, bytes, str, bytes]] = []
    leaves = log.leaves(start, end)
    try:
        for seq, leaf in leaves:
            body = body_of_leaf(leaf)
            for name, commitment in sorted(commitments_of(body).items()):
                wanted.append((seq, body.id, name, commitment))
            if len(wanted) >= _LOOKUPS_PER_OPEN:
                yield from _looked_up(data_dir, wanted)
                wanted = []
    finally:
        if isinstance(leaves, Generator):
            leaves.close()
    yield from _looked_up(data_dir, wanted)


def _looked_up(data_dir: Path, wanted: Sequence[tuple[int, bytes, str, bytes]]) -> list[BundleText]:
    found: list[BundleText] = []
    if not wanted:
        return found
    with TextStore.open(data_dir) as store:
        for seq, entry_id, name, commitment in wanted:
            text = store.get(entry_id, name, commitment)
            if text is not None:
                found.append(BundleText(seq, name, text))
    return found


def erase_entry(data_dir: Path, log: Log, seq: int, field: str | None, now_ms: int) -> Erasure:
    """Erase the texts of entry ``seq`` (only its ``field`` when given), with tombstones
    and a scrub of the store's files. ``TextError`` when the entry has no such text."""
    if not 0 <= seq < log.size:
        raise TextError(
            _("the log has no entry {seq} (it has {size} entries)").format(seq=seq, size=log.size)
        )
    ((_seq, leaf),) = list(log.leaves(seq, seq + 1))
    body = body_of_leaf(leaf)
    committed = commitments_of(body)
    if field is not None and field not in committed:
        held = ", ".join(sorted(committed)) or "none"
        raise TextError(
            _("entry {seq} ({kind}) has no free text '{field}' (its free texts: {held})").format(
                seq=seq, kind=body.kind, field=field, held=held
            ),
            field=field,
        )
    if not committed:
        raise TextError(
            _("entry {seq} ({kind}) holds no free text").format(seq=seq, kind=body.kind)
        )
    names = [field] if field is not None else sorted(committed)
    with TextStore.open(data_dir, write=True) as store:
        deleted = store.erase([(body.id, name) for name in names], now_ms)
    return Erasure(deleted, tuple((seq, name) for name in names))


def erase_account(data_dir: Path, log: Log, account: str, now_ms: int) -> Erasure:
    """Erase every text of ``account``'s entries: its awards' notes, its redemptions'
    items, and the texts of objections and reversals that target them. One pass over the
    log (a targeted entry always comes before what targets it), one scrub."""
    ours: set[int] = set()
    fields: list[tuple[int, bytes, str]] = []
    leaves = log.leaves(0, log.size)
    try:
        for seq, leaf in leaves:
            body = body_of_leaf(leaf)
            if isinstance(body, Award | Redeem):
                if body.account != account:
                    continue
                ours.add(seq)
            elif not (isinstance(body, Objection | Reverse) and body.target in ours):
                continue
            fields.extend((seq, body.id, name) for name in sorted(commitments_of(body)))
    finally:
        if isinstance(leaves, Generator):
            leaves.close()
    if not fields:
        return Erasure(0, ())
    with TextStore.open(data_dir, write=True) as store:
        deleted = store.erase([(entry_id, name) for _, entry_id, name in fields], now_ms)
    return Erasure(deleted, tuple((seq, name) for seq, _, name in fields))
