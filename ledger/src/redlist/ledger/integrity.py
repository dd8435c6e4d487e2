"""The store's own integrity checks: what they report, and the record checks both share.

Is what LMDB holds exactly the log it claims to be? Two depths, both reading one
snapshot (a ``StoreReader``) and never writing:

* ``tailcheck.check_tail`` runs on every writable ``Log.open``: the newest entries,
  the tree's right border, the latest checkpoint and the head the next append
  builds on, in ``O(count + log n)`` reads however long the log.
* ``fullcheck.check_full`` checks everything, down to the tables derived from the
  entries, and returns a :class:`Report` with the first problem found.

This module holds their shared vocabulary: ``CHECKS`` (what each problem's
``check`` identifier means), :class:`Problem`, :class:`Report`, and the checks of
single records (the head, a leaf and its link, a Merkle node, a checkpoint) that
both depths apply. A check stops at the first problem by raising ``ProblemFound``,
which never leaves the two check modules.

What neither check can see: a store rolled back to an earlier commit as a whole is
itself a consistent, signed log. It is caught outside the store, by anyone holding a
later checkpoint: mirrors, witnesses, or ``redlist-verify --state``.

These modules read the store only through ``StoreReader``'s methods: they never see
a transaction or a key. They are storage-side, like ``store`` and ``log``, never
imported by the pure core or the verifier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from redlist.ledger import merkle
from redlist.ledger.entry import AnyBody, Envelope, Leaf, decode_body
from redlist.ledger.errors import FormatError, IntegrityError, NoteError
from redlist.ledger.note.checkpoint import SignedCheckpoint, open_checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.store import StoreReader

#: What each problem ``check`` means. Problems found by replaying the points
#: semantics carry that rule's identifier instead (``points.CHECKS``).
CHECKS = {
    "meta": "the ledger's metadata (format, origin, log key, size, head) is present and valid",
    "leaves": "exactly one leaf is stored for each seq from 0 to size - 1, none beyond",
    "leaf-format": "every leaf, its envelope and its body are well-formed format v1 bytes",
    "leaf-seq": "each leaf names its own position in the log",
    "chain": "each leaf's 'prev' is the leaf hash of the entry before it (zeros for entry 0)",
    "time": "the node's integration time never decreases from one entry to the next",
    "leaf-hash": "the stored level-0 Merkle node of each entry is that entry's leaf hash",
    "tree": "every stored Merkle node is the hash of its two children; none missing or extra",
    "checkpoint": "every stored checkpoint is signed by the log key, at its size, and the "
    "latest covers the whole log",
    "root": "the Merkle root at a checkpoint's size equals the root the checkpoint signs",
    "head": "the last leaf hash, last time and latest checkpoint in the metadata match the log",
    "config": "the town configuration in the metadata is the one the genesis set",
    "ids": "the entry-id index leads from every entry's id to that entry, from the place (level "
    "0 or a run) the log's size gives it, and holds nothing else",
    "keys": "the staff keys table is what the log's key entries made it",
    "rules": "the rules table is what the log's rule entries made it",
    "balances": "every account's stored balance is what the log's entries give",
    "targets": "the awards and redemptions table (for objections and reversals) matches the log",
    "account-entries": "each account's list of entries holds exactly the entries touching it",
    "month_counts": "each account's qty per rule and month of deed dates (for the rules' "
    "monthly caps) is what the log's unreversed awards give",
    "account_heads": "each account's latest entry and count of entries (where its list "
    "starts) are what the log gives",
}

_T = TypeVar("_T")


@dataclass(frozen=True)
class Problem:
    """The first thing found wrong: a ``check`` identifier (``CHECKS``), words, and a seq."""

    check: str
    message: str
    seq: int | None = None

    def describe(self) -> str:
        where = f"entry {self.seq}: " if self.seq is not None else ""
        return f"{where}{self.message} [{self.check}]"


@dataclass(frozen=True)
class Report:
    """What ``check_full`` checked, and the first problem (None when all is well)."""

    origin: str
    entries: int
    nodes: int
    checkpoints: int
    accounts: int
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        """One line for an operator: what was checked and found consistent, or the problem."""
        if self.problem is not None:
            return f"Problem found: {self.problem.describe()}"
        checkpoints = _count(self.checkpoints, "checkpoint")
        accounts = _count(self.accounts, "account")
        return (
            f"Checked {_count(self.entries, 'entry', 'entries')}: hash chain, Merkle tree, "
            f"{checkpoints} and the balances of {accounts} all consistent."
        )


class ProblemFound(Exception):
    """Carries the first problem out of the checks. Never leaves the check modules."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.describe())
        self.problem = problem


def fail(check: str, message: str, seq: int | None = None) -> NoReturn:
    raise ProblemFound(Problem(check, message, seq))


def scanned(check: str, records: Iterator[_T]) -> Iterator[_T]:
    """``records`` (a scan of the store), with a malformed key reported under ``check``."""
    try:
        yield from records
    except IntegrityError as exc:
        fail(check, str(exc), exc.seq)


def guarded(check: str, read: Callable[[], _T]) -> _T:
    """``read()`` (a read of the store), with a malformed key reported under ``check``."""
    try:
        return read()
    except IntegrityError as exc:
        fail(check, str(exc), exc.seq)


# ---------------------------------------------------------------------------
# The head


@dataclass(frozen=True)
class Head:
    """The metadata a log is opened with, each value checked for shape."""

    origin: str
    verifier_key: VerifierKey
    size: int
    last_time: int
    last_leaf_hash: bytes
    checkpoint: bytes


def read_head(reader: StoreReader) -> Head:
    try:
        stored = reader.head()
    except IntegrityError as exc:
        fail("meta", str(exc))
    try:
        origin = stored.origin.decode("utf-8")
    except UnicodeDecodeError:
        fail("meta", "the log's origin in the metadata is not valid UTF-8 text")
    try:
        verifier_key = VerifierKey.parse(stored.log_verifier_key.decode("utf-8"))
    except UnicodeDecodeError:
        fail("meta", "the log key in the metadata is not valid UTF-8 text")
    except NoteError as exc:
        fail("meta", f"the log key in the metadata is damaged ({exc.diagnostics()})")
    if verifier_key.name != origin:
        fail(
            "meta",
            f"the metadata names the log {origin!r} but its log key is for {verifier_key.name!r}",
        )
    if stored.size == 0:
        fail("meta", "the metadata says the log is empty; a log always holds its genesis")
    if len(stored.last_leaf_hash) != merkle.HASH_SIZE:
        fail("meta", "the last leaf hash in the metadata is not a 32-byte hash")
    return Head(
        origin,
        verifier_key,
        stored.size,
        stored.last_time,
        stored.last_leaf_hash,
        stored.checkpoint,
    )


def check_head(head: Head, last_hash: bytes, last_time: int) -> None:
    last = head.size - 1
    if head.last_leaf_hash != last_hash:
        fail(
            "head",
            f"the metadata records {short(head.last_leaf_hash)} as the last leaf hash, but "
            f"the last entry hashes to {short(last_hash)}",
            last,
        )
    if head.last_time != last_time:
        fail(
            "head",
            f"the metadata records {head.last_time} ms as the last time, but the last entry's "
            f"time is {last_time} ms",
            last,
        )


def check_latest(head: Head, stored: bytes) -> None:
    if head.checkpoint != stored:
        fail(
            "head",
            f"the latest checkpoint in the metadata is not the one stored for size {head.size}",
            head.size - 1,
        )


# ---------------------------------------------------------------------------
# Leaves


def decode_leaf(seq: int, raw: bytes) -> tuple[Leaf, Envelope, AnyBody]:
    """Decode leaf ``seq`` down to its body; every byte must be canonical format v1."""
    try:
        leaf = Leaf.from_bytes(raw)
        envelope = Envelope.from_bytes(leaf.envelope)
        body = decode_body(envelope.body)
    except FormatError as exc:
        fail("leaf-format", f"the stored leaf is not valid format v1 ({exc})", seq)
    if leaf.seq != seq:
        fail("leaf-seq", f"the leaf stored at this position says it is entry {leaf.seq}", seq)
    return leaf, envelope, body


def leaf_bytes(reader: StoreReader, seq: int) -> bytes:
    raw = reader.leaf(seq)
    if raw is None:
        fail("leaves", "this entry's leaf is missing from the store", seq)
    return raw


def check_link(seq: int, leaf: Leaf, prev_hash: bytes, prev_time: int) -> None:
    if leaf.prev != prev_hash:
        if seq == 0:
            fail("chain", "the first entry must link to 32 zero bytes, it does not", seq)
        fail(
            "chain",
            f"the hash chain is broken: this entry links to {short(leaf.prev)}, but entry "
            f"{seq - 1} hashes to {short(prev_hash)}",
            seq,
        )
    if leaf.time < prev_time:
        fail(
            "time",
            f"its time ({leaf.time} ms) is earlier than that of entry {seq - 1} ({prev_time} ms)",
            seq,
        )


def check_leaf_count(reader: StoreReader, size: int, *, locate: bool = False) -> None:
    """One leaf per entry of the recorded size; ``locate`` may walk every key to say
    which entry is amiss when the last leaf does not tell."""
    stored = reader.counts().leaves
    if stored == size:
        return
    message = f"the size recorded in the metadata is {size} entries, but {stored} leaves are stored"
    last = guarded("leaves", reader.last_leaf_seq)
    end = 0 if last is None else last + 1  # one past the last leaf
    if end > size:
        beyond = next(scanned("leaves", reader.leaf_seqs(size)))
        fail("leaves", f"{message}; leaves lie beyond it from here on", beyond)
    if end < size:
        fail("leaves", f"{message}; the leaves from here on are missing", end)
    if locate:  # the last leaf is where it belongs: the difference lies inside the log
        for expected, seq in enumerate(scanned("leaves", reader.leaf_seqs())):
            if seq != expected:
                fail(
                    "leaves", f"{message}; this is the first entry whose leaf is missing", expected
                )
    fail("leaves", message)


# ---------------------------------------------------------------------------
# The Merkle tree


def check_leaf_node(reader: StoreReader, seq: int, leaf_hash: bytes) -> None:
    stored = reader.stored_node(0, seq)
    if stored is None:
        fail("leaf-hash", "the Merkle tree has no node for this entry", seq)
    if stored != leaf_hash:
        fail(
            "leaf-hash",
            f"the Merkle tree holds {short(stored)} for this entry, but its leaf hashes to "
            f"{short(leaf_hash)}",
            seq,
        )


def check_node(reader: StoreReader, level: int, index: int) -> None:
    """Node ``(level, index)`` (level >= 1) must be the hash of its two stored children."""
    positions = ((level, index), (level - 1, 2 * index), (level - 1, 2 * index + 1))
    stored, left, right = (reader.stored_node(*position) for position in positions)
    for position, value in zip(positions, (stored, left, right), strict=True):
        if value is None:
            fail("tree", f"the Merkle tree lacks its {node_name(*position)}", first_leaf(*position))
    if stored != merkle.node_hash(left or b"", right or b""):
        fail(
            "tree",
            f"the stored Merkle {node_name(level, index)} is not the hash of its two halves",
            first_leaf(level, index),
        )


def expected_nodes(size: int) -> int:
    """Perfect subtrees of a tree of ``size`` leaves: ``size >> level`` at each level."""
    return 2 * size - size.bit_count()


def node_name(level: int, index: int) -> str:
    first = first_leaf(level, index)
    return f"node over entries {first} to {first + (1 << level) - 1}"


def first_leaf(level: int, index: int) -> int:
    return index << level


# ---------------------------------------------------------------------------
# Checkpoints


def open_stored_checkpoint(raw: bytes, key: VerifierKey, size: int) -> SignedCheckpoint:
    """The stored checkpoint for tree size ``size``, verified with the log key."""
    try:
        checkpoint = open_checkpoint(raw.decode("utf-8"), key)
    except (UnicodeDecodeError, NoteError) as exc:
        fail(
            "checkpoint",
            f"the checkpoint stored for size {size} does not verify ({exc})",
            size - 1,
        )
    if checkpoint.size != size:
        fail(
            "checkpoint",
            f"the checkpoint stored for size {size} is signed for size {checkpoint.size}",
            size - 1,
        )
    return checkpoint


def check_root(checkpoint: SignedCheckpoint, root: bytes, how: str) -> None:
    if checkpoint.root != root:
        fail(
            "root",
            f"the Merkle root of the first {checkpoint.size} entries ({how}) is {short(root)}, "
            f"but the checkpoint for that size signs {short(checkpoint.root)}",
            checkpoint.size - 1,
        )


def misplaced_checkpoint(stored_size: int, size: int) -> str:
    return (
        f"a checkpoint is stored for size {stored_size}, which is not a tree size of this log "
        f"of {size} entries"
    )


# ---------------------------------------------------------------------------
# Words


def short(value: bytes) -> str:
    return value[:8].hex() + "…"


def _count(number: int, singular: str, plural: str | None = None) -> str:
    word = singular if number == 1 else (plural or singular + "s")
    return f"{number:,} {word}"


__all__ = ["CHECKS", "Problem", "Report"]
