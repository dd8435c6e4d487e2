"""The store's own integrity check: is what LMDB holds exactly the log it claims to be?

Two depths, both reading one snapshot (a ``StoreReader``) and never writing:

* :func:`check_tail` runs on every writable ``Log.open``. It re-reads the last
  ``count`` leaves (decoding each canonically, checking seq, hash chain and time),
  compares their hashes with the stored level-0 Merkle nodes, recomputes every
  stored node those leaves completed (which includes the right border of the tree)
  from its children, and checks that the tree's root equals the root in the latest
  checkpoint, whose signature it verifies with the log's key. It also checks the
  head the next append builds on: the size, last leaf hash and last time in the
  metadata, and the number of leaves and nodes stored. The cost is
  ``O(count + log n)`` reads however long the log, so opening stays fast. A failure
  refuses the open with an ``IntegrityError`` naming the seq and the problem.

* :func:`check_full` checks everything: every leaf (canonical form, seq, chain, time,
  hash against the tree), every stored Merkle node recomputed from its children,
  every stored checkpoint (signature, size, and root against the tree rebuilt from
  the leaves), the metadata, and the tables derived from the entries (``ids``,
  ``keys``, ``rules``, ``balances``, ``targets``, ``account_entries`` and the town
  configuration), re-derived by replaying the points semantics and compared byte
  for byte. It returns a :class:`Report` with the first problem found, or a summary.

Memory of the full check. The leaves, nodes, checkpoints and the two per-entry
indexes (``ids``, ``account_entries``) are streamed and checked as the replay writes
them, so they cost nothing to hold; the replay keeps in memory what the semantics
needs to decide the next entry: the keys, rules, balances (one per account) and
targets (one per award or redemption). That is proportional to the log's accounts
and awards, acceptable for an offline check, unlike ``check_tail`` which must stay
bounded. Every entry's signatures are verified again, one core at a time.

What neither check can see: a store rolled back to an earlier commit as a whole is
itself a consistent, signed log. It is caught outside the store, by anyone holding a
later checkpoint: mirrors, witnesses, or ``redlist-verify --state``.

This module reads the store through ``StoreReader``: it is storage-side, like
``store`` and ``log``, never imported by the pure core or the verifier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from redlist.ledger import merkle
from redlist.ledger.entry import ZERO_HASH, AnyBody, Envelope, Leaf, decode_body
from redlist.ledger.errors import (
    FormatError,
    IntegrityError,
    NoteError,
    RuleViolation,
)
from redlist.ledger.note import Checkpoint, VerifierKey, open_checkpoint
from redlist.ledger.points import apply_entry
from redlist.ledger.state import Balance, MemoryState, config_to_bytes
from redlist.ledger.store import (
    FORMAT_MARKER,
    META_CHECKPOINT,
    META_CONFIG,
    META_FORMAT,
    META_LAST_LEAF_HASH,
    META_LAST_TIME,
    META_LOG_VERIFIER_KEY,
    META_ORIGIN,
    META_SIZE,
    StoreReader,
    account_entry_key,
    int_from_key,
    int_key,
    node_key,
    rule_key,
)

#: Leaves ``check_tail`` re-reads by default: the last few batches of a busy node.
TAIL_LEAVES = 64

#: A progress callback: ``(stage, done, total)``, stage one of ``STAGES``.
Progress = Callable[[str, int, int], None]
STAGES = ("entries", "tree", "tables")
# Progress is reported every this many items (and at the end of each stage).
_PROGRESS_EVERY = 4096

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
    "ids": "the entry-id index leads from every entry's id to that entry, and holds nothing else",
    "keys": "the staff keys table is what the log's key entries made it",
    "rules": "the rules table is what the log's rule entries made it",
    "balances": "every account's stored balance is what the log's entries give",
    "targets": "the awards and redemptions table (for objections and reversals) matches the log",
    "account-entries": "each account's list of entries holds exactly the entries touching it",
}

_META_NAMES = frozenset(
    {
        META_FORMAT,
        META_ORIGIN,
        META_SIZE,
        META_LAST_TIME,
        META_LAST_LEAF_HASH,
        META_CHECKPOINT,
        META_CONFIG,
        META_LOG_VERIFIER_KEY,
    }
)
_INT_SIZE = 8
_NODE_KEY_SIZE = 1 + _INT_SIZE


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
    """What :func:`check_full` checked, and the first problem (None when all is well)."""

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


class _Found(Exception):
    """Carries the first problem out of the checks. Never leaves this module."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.describe())
        self.problem = problem


def _fail(check: str, message: str, seq: int | None = None) -> NoReturn:
    raise _Found(Problem(check, message, seq))


# ---------------------------------------------------------------------------
# Entry points


def check_tail(
    reader: StoreReader, *, count: int = TAIL_LEAVES, data_dir: Path | None = None
) -> None:
    """Check the newest ``count`` leaves and the tree's head; see the module docstring.

    With ``count`` 0 only the head is checked against the last leaf.

    Raises ``IntegrityError`` (with the seq, when one applies) on the first problem;
    ``data_dir`` only makes its advice name the directory to run the full check on.
    """
    try:
        _check_tail(reader, max(count, 0))
    except _Found as found:
        problem = found.problem
        where = "DIR" if data_dir is None else str(data_dir)
        raise IntegrityError(
            f"the stored log fails its integrity check: "
            f"{problem.describe()}. Run `redlist-node check --data {where} --full` for a "
            "full report.",
            problem.seq,
        ) from None


def check_full(
    reader: StoreReader,
    *,
    verifier_key: VerifierKey | None = None,
    progress: Progress | None = None,
) -> Report:
    """Check the whole store; return a report holding the first problem, if any.

    ``verifier_key``, when given (for example from the data directory's ``log.pub``),
    must equal the key stored in the ledger. LMDB failures while reading leave as
    ``StoreError`` from the reader's transaction.
    """
    check = _FullCheck(reader, progress)
    try:
        check.run(verifier_key)
    except _Found as found:
        return check.report(found.problem)
    return check.report(None)


# ---------------------------------------------------------------------------
# Pieces shared by both checks


@dataclass(frozen=True)
class _Head:
    """The metadata a log is opened with, each value checked for shape."""

    origin: str
    verifier_key: VerifierKey
    size: int
    last_time: int
    last_leaf_hash: bytes
    checkpoint: bytes


def _read_head(reader: StoreReader) -> _Head:
    origin_bytes = _require_meta(reader, META_ORIGIN)
    key_bytes = _require_meta(reader, META_LOG_VERIFIER_KEY)
    try:
        origin = origin_bytes.decode("utf-8")
    except UnicodeDecodeError:
        _fail("meta", "the log's origin in the metadata is not valid UTF-8 text")
    try:
        verifier_key = VerifierKey.parse(key_bytes.decode("utf-8"))
    except UnicodeDecodeError:
        _fail("meta", "the log key in the metadata is not valid UTF-8 text")
    except NoteError as exc:
        _fail("meta", f"the log key in the metadata is damaged ({exc.diagnostics()})")
    if verifier_key.name != origin:
        _fail(
            "meta",
            f"the metadata names the log {origin!r} but its log key is for {verifier_key.name!r}",
        )
    size = _meta_int(reader, META_SIZE, "size")
    if size == 0:
        _fail("meta", "the metadata says the log is empty; a log always holds its genesis")
    last_time = _meta_int(reader, META_LAST_TIME, "last time")
    last_leaf_hash = _require_meta(reader, META_LAST_LEAF_HASH)
    if len(last_leaf_hash) != merkle.HASH_SIZE:
        _fail("meta", "the last leaf hash in the metadata is not a 32-byte hash")
    checkpoint = _require_meta(reader, META_CHECKPOINT)
    return _Head(origin, verifier_key, size, last_time, last_leaf_hash, checkpoint)


def _require_meta(reader: StoreReader, name: bytes) -> bytes:
    value = reader.meta(name)
    if value is None:
        _fail("meta", f"the ledger's metadata lacks its '{name.decode()}' record")
    return value


def _meta_int(reader: StoreReader, name: bytes, what: str) -> int:
    value = _require_meta(reader, name)
    if len(value) != _INT_SIZE:
        _fail("meta", f"the {what} in the metadata is not an 8-byte number")
    return int_from_key(value)


def _decode_leaf(seq: int, raw: bytes) -> tuple[Leaf, Envelope, AnyBody]:
    """Decode leaf ``seq`` down to its body; every byte must be canonical format v1."""
    try:
        leaf = Leaf.from_bytes(raw)
        envelope = Envelope.from_bytes(leaf.envelope)
        body = decode_body(envelope.body)
    except FormatError as exc:
        _fail("leaf-format", f"the stored leaf is not valid format v1 ({exc})", seq)
    if leaf.seq != seq:
        _fail("leaf-seq", f"the leaf stored at this position says it is entry {leaf.seq}", seq)
    return leaf, envelope, body


def _check_link(seq: int, leaf: Leaf, prev_hash: bytes, prev_time: int) -> None:
    if leaf.prev != prev_hash:
        if seq == 0:
            _fail("chain", "the first entry must link to 32 zero bytes, it does not", seq)
        _fail(
            "chain",
            f"the hash chain is broken: this entry links to {_short(leaf.prev)}, but entry "
            f"{seq - 1} hashes to {_short(prev_hash)}",
            seq,
        )
    if leaf.time < prev_time:
        _fail(
            "time",
            f"its time ({leaf.time} ms) is earlier than that of entry {seq - 1} ({prev_time} ms)",
            seq,
        )


def _check_leaf_node(reader: StoreReader, seq: int, leaf_hash: bytes) -> None:
    stored = reader.txn.get(node_key(0, seq), db=reader.tables.nodes)
    if stored is None:
        _fail("leaf-hash", "the Merkle tree has no node for this entry", seq)
    if stored != leaf_hash:
        _fail(
            "leaf-hash",
            f"the Merkle tree holds {_short(stored)} for this entry, but its leaf hashes to "
            f"{_short(leaf_hash)}",
            seq,
        )


def _check_node(reader: StoreReader, level: int, index: int) -> None:
    """Node ``(level, index)`` (level >= 1) must be the hash of its two stored children."""
    keys = (
        node_key(level, index),
        node_key(level - 1, 2 * index),
        node_key(level - 1, 2 * index + 1),
    )
    stored, left, right = (reader.txn.get(key, db=reader.tables.nodes) for key in keys)
    for key, value in zip(keys, (stored, left, right), strict=True):
        if value is None:
            _fail("tree", f"the Merkle tree lacks its {_node(key)}", _first_leaf(key))
    if stored != merkle.node_hash(left or b"", right or b""):
        _fail(
            "tree",
            f"the stored Merkle {_node(keys[0])} is not the hash of its two halves",
            index << level,
        )


def _open_checkpoint(raw: bytes, key: VerifierKey, size: int) -> Checkpoint:
    """The stored checkpoint for tree size ``size``, verified with the log key."""
    try:
        checkpoint = open_checkpoint(raw.decode("utf-8"), key)
    except (UnicodeDecodeError, NoteError) as exc:
        _fail(
            "checkpoint",
            f"the checkpoint stored for size {size} does not verify ({exc})",
            size - 1,
        )
    if checkpoint.size != size:
        _fail(
            "checkpoint",
            f"the checkpoint stored for size {size} is signed for size {checkpoint.size}",
            size - 1,
        )
    return checkpoint


def _check_root(checkpoint: Checkpoint, root: bytes, how: str) -> None:
    if checkpoint.root != root:
        _fail(
            "root",
            f"the Merkle root of the first {checkpoint.size} entries ({how}) is {_short(root)}, "
            f"but the checkpoint for that size signs {_short(checkpoint.root)}",
            checkpoint.size - 1,
        )


def _check_head(head: _Head, last_hash: bytes, last_time: int) -> None:
    last = head.size - 1
    if head.last_leaf_hash != last_hash:
        _fail(
            "head",
            f"the metadata records {_short(head.last_leaf_hash)} as the last leaf hash, but "
            f"the last entry hashes to {_short(last_hash)}",
            last,
        )
    if head.last_time != last_time:
        _fail(
            "head",
            f"the metadata records {head.last_time} ms as the last time, but the last entry's "
            f"time is {last_time} ms",
            last,
        )


def _check_leaf_count(reader: StoreReader, size: int, *, locate: bool = False) -> None:
    """One leaf per entry of the recorded size; ``locate`` may walk every key to say
    which entry is amiss when the last leaf does not tell."""
    stored = _stored_entries(reader, "leaves")
    if stored == size:
        return
    message = f"the size recorded in the metadata is {size} entries, but {stored} leaves are stored"
    cursor = reader.txn.cursor(db=reader.tables.leaves)
    end = int_from_key(cursor.key()) + 1 if cursor.last() else 0  # one past the last leaf
    if end > size and cursor.set_range(int_key(size)):
        _fail("leaves", f"{message}; leaves lie beyond it from here on", int_from_key(cursor.key()))
    if end < size:
        _fail("leaves", f"{message}; the leaves from here on are missing", end)
    if locate:  # the last leaf is where it belongs: the difference lies inside the log
        for expected, key in enumerate(cursor.iternext(values=False) if cursor.first() else ()):
            if key != int_key(expected):
                _fail(
                    "leaves", f"{message}; this is the first entry whose leaf is missing", expected
                )
    _fail("leaves", message)


def _check_latest(head: _Head, stored: bytes) -> None:
    if head.checkpoint != stored:
        _fail(
            "head",
            f"the latest checkpoint in the metadata is not the one stored for size {head.size}",
            head.size - 1,
        )


def _misplaced_checkpoint(key: bytes, size: int) -> str:
    where = f"for size {int_from_key(key)}" if len(key) == _INT_SIZE else f"under key {key.hex()}"
    return f"a checkpoint is stored {where}, which is not a tree size of this log of {size} entries"


def _stored_entries(reader: StoreReader, table: str) -> int:
    return reader.txn.stat(getattr(reader.tables, table))["entries"]


def _expected_nodes(size: int) -> int:
    """Perfect subtrees of a tree of ``size`` leaves: ``size >> level`` at each level."""
    return 2 * size - size.bit_count()


# ---------------------------------------------------------------------------
# The tail check


def _check_tail(reader: StoreReader, count: int) -> None:
    head = _read_head(reader)
    size = head.size
    start = max(0, size - count)
    prev_hash, prev_time = ZERO_HASH, 0
    if start > 0:  # the leaf just before the window anchors its chain
        anchor = _leaf_bytes(reader, start - 1)
        prev_hash = merkle.leaf_hash(anchor)
        prev_time = _decode_leaf(start - 1, anchor)[0].time
        _check_leaf_node(reader, start - 1, prev_hash)
    for seq in range(start, size):
        raw = _leaf_bytes(reader, seq)
        leaf = _decode_leaf(seq, raw)[0]
        _check_link(seq, leaf, prev_hash, prev_time)
        prev_hash, prev_time = merkle.leaf_hash(raw), leaf.time
        _check_leaf_node(reader, seq, prev_hash)
    _check_leaf_count(reader, size)
    _check_head(head, prev_hash, prev_time)
    # Every node completed by an entry of the window, up to the right border.
    level = 1
    while (1 << level) <= size:
        first = max(0, ((start + (1 << level)) >> level) - 1)
        for index in range(first, size >> level):
            _check_node(reader, level, index)
        level += 1
    stored_nodes = _stored_entries(reader, "nodes")
    if stored_nodes != _expected_nodes(size):
        _fail(
            "tree",
            f"a tree of {size} entries has {_expected_nodes(size)} nodes, but "
            f"{stored_nodes} are stored",
        )
    try:
        root = merkle.root_at(reader.nodes(), size)
    except IntegrityError as exc:
        _fail("tree", str(exc))
    stored = reader.txn.get(int_key(size), db=reader.tables.checkpoints)
    if stored is None:
        _fail("checkpoint", f"no checkpoint is stored for the log's size ({size})")
    _check_root(_open_checkpoint(stored, head.verifier_key, size), root, "from the stored tree")
    _check_latest(head, stored)
    cursor = reader.txn.cursor(db=reader.tables.checkpoints)
    if cursor.last() and cursor.key() != int_key(size):
        _fail("checkpoint", _misplaced_checkpoint(cursor.key(), size))


def _leaf_bytes(reader: StoreReader, seq: int) -> bytes:
    raw = reader.leaf(seq)
    if raw is None:
        _fail("leaves", "this entry's leaf is missing from the store", seq)
    return raw


# ---------------------------------------------------------------------------
# The full check


class _ReplayState(MemoryState):
    """The verifier's in-memory state, except for the two per-entry indexes.

    Entry ids and account links are not held: each one the replay writes is looked
    up in the store at once (and counted), so the stored indexes are checked while
    memory stays proportional to accounts, keys, rules and targets.
    """

    def __init__(self, reader: StoreReader) -> None:
        super().__init__()
        self._reader = reader
        self.seq = 0  # the entry being replayed
        self.links = 0
        self.last_seq_of: dict[str, int] = {}

    def entry_seq(self, entry_id: bytes) -> int | None:
        stored = self._reader.txn.get(entry_id, db=self._reader.tables.ids)
        if stored is None or len(stored) != _INT_SIZE or int_from_key(stored) >= self.seq:
            return None  # put_entry_id says what is wrong with it
        earlier = int_from_key(stored)
        # The index says the id was used before: either the log repeats it (a rule
        # violation the semantics reports) or the index itself is wrong.
        raw = self._reader.leaf(earlier)
        if raw is not None and _decode_leaf(earlier, raw)[2].id == entry_id:
            return earlier
        _fail(
            "ids",
            f"the entry-id index sends this entry's id {entry_id.hex()} to entry {earlier}",
            self.seq,
        )

    def put_entry_id(self, entry_id: bytes, seq: int) -> None:
        stored = self._reader.txn.get(entry_id, db=self._reader.tables.ids)
        if stored != int_key(seq):
            if stored is None:
                found = "nothing"
            elif len(stored) == _INT_SIZE:
                found = f"entry {int_from_key(stored)}"
            else:
                found = "a damaged record"
            _fail(
                "ids",
                f"the entry-id index should lead from this entry's id {entry_id.hex()} to it, "
                f"it holds {found}",
                seq,
            )

    def link_account(self, account: str, seq: int) -> None:
        stored = self._reader.txn.get(
            account_entry_key(account, seq), db=self._reader.tables.account_entries
        )
        if stored != b"":
            state = "lacks" if stored is None else "holds a damaged record of"
            _fail("account-entries", f"the list of account {account}'s entries {state} it", seq)
        self.links += 1
        self.last_seq_of[account] = seq


class _FullCheck:
    def __init__(self, reader: StoreReader, progress: Progress | None) -> None:
        self._reader = reader
        self._progress = progress
        self._state = _ReplayState(reader)
        self._origin = ""
        self._entries = 0
        self._nodes = 0
        self._checkpoints = 0

    def report(self, problem: Problem | None) -> Report:
        return Report(
            self._origin,
            self._entries,
            self._nodes,
            self._checkpoints,
            len(self._state.balances),
            problem,
        )

    def run(self, verifier_key: VerifierKey | None) -> None:
        reader = self._reader
        if reader.meta(META_FORMAT) != FORMAT_MARKER:
            _fail("meta", "the metadata lacks the redlist ledger format marker")
        head = _read_head(reader)
        self._origin = head.origin
        if verifier_key is not None and verifier_key != head.verifier_key:
            _fail(
                "meta",
                f"the log key stored in the ledger ({head.verifier_key.encode()}) is not the "
                f"log's published key ({verifier_key.encode()})",
            )
        for name, _ in reader.txn.cursor(db=reader.tables.meta):
            if name not in _META_NAMES:
                _fail("meta", f"the metadata holds an unknown record {name!r}")
        _check_leaf_count(reader, head.size, locate=True)
        last_hash, last_time = self._entries_and_checkpoints(head)
        _check_head(head, last_hash, last_time)
        self._tree(head.size)
        self._tables(head.size)

    def _tick(self, stage: str, done: int, total: int) -> None:
        if self._progress is not None and (done % _PROGRESS_EVERY == 0 or done == total):
            self._progress(stage, done, total)

    # -- leaves, replay and checkpoints ---------------------------------------

    def _entries_and_checkpoints(self, head: _Head) -> tuple[bytes, int]:
        """Walk every leaf; replay it; check each checkpoint when its size is reached."""
        reader, state, size = self._reader, self._state, head.size
        compact = merkle.CompactRange()
        checkpoints = self._stored_checkpoints(size)
        pending = next(checkpoints, None)
        prev_hash, prev_time = ZERO_HASH, 0
        expected = 0
        for key, raw in reader.txn.cursor(db=reader.tables.leaves):
            seq = int_from_key(key) if len(key) == _INT_SIZE else -1
            if seq < 0 or seq >= size:
                _fail(
                    "leaves",
                    f"a leaf is stored under key {key.hex()}, beyond the log's size of {size} "
                    "entries recorded in the metadata",
                )
            if seq != expected:
                _fail("leaves", "this entry's leaf is missing from the store", expected)
            leaf, envelope, body = _decode_leaf(seq, raw)
            _check_link(seq, leaf, prev_hash, prev_time)
            leaf_hash = merkle.leaf_hash(raw)
            _check_leaf_node(reader, seq, leaf_hash)
            state.seq = seq
            try:
                apply_entry(
                    state,
                    origin=head.origin,
                    seq=seq,
                    time=leaf.time,
                    envelope=envelope,
                    body=body,
                )
            except RuleViolation as violation:
                _fail(
                    violation.check,
                    f"the entry breaks the ledger's rules: {violation.message}",
                    seq,
                )
            compact.append(leaf_hash)
            if pending is not None and pending[0] == seq + 1:
                checkpoint = _open_checkpoint(pending[1], head.verifier_key, seq + 1)
                _check_root(checkpoint, compact.root(), "from the leaves")
                self._checkpoints += 1
                if seq + 1 == size:
                    _check_latest(head, pending[1])
                pending = next(checkpoints, None)
            prev_hash, prev_time = leaf_hash, leaf.time
            expected = seq + 1
            self._entries = expected
            self._tick("entries", expected, size)
        if expected < size:
            _fail(
                "leaves",
                f"this entry's leaf is missing, yet the metadata records a size of {size} entries",
                expected,
            )
        if reader.txn.get(int_key(size), db=reader.tables.checkpoints) is None:
            _fail("checkpoint", f"no checkpoint is stored for the log's size ({size})")
        return prev_hash, prev_time

    def _stored_checkpoints(self, size: int) -> Iterator[tuple[int, bytes]]:
        reader = self._reader
        for key, raw in reader.txn.cursor(db=reader.tables.checkpoints):
            stored_size = int_from_key(key) if len(key) == _INT_SIZE else -1
            if not 0 < stored_size <= size:
                _fail("checkpoint", _misplaced_checkpoint(key, size))
            yield stored_size, raw

    # -- the Merkle tree --------------------------------------------------------

    def _tree(self, size: int) -> None:
        """Walk the nodes table against the exact set of perfect subtrees of the tree."""
        reader = self._reader
        total = _expected_nodes(size)
        expected = _node_keys(size)
        for key, value in reader.txn.cursor(db=reader.tables.nodes):
            wanted = next(expected, None)
            if wanted is None or key < wanted:
                _fail(
                    "tree",
                    f"the Merkle tree holds a node that does not belong to it ({_node(key)})",
                )
            if key > wanted:
                _fail("tree", f"the Merkle tree lacks its {_node(wanted)}", _first_leaf(wanted))
            if len(value) != merkle.HASH_SIZE:
                _fail("tree", f"the stored {_node(key)} is not a 32-byte hash", _first_leaf(key))
            level, index = key[0], int_from_key(key[1:])
            if level > 0:  # level 0 was compared with the leaves
                _check_node(reader, level, index)
            self._nodes += 1
            self._tick("tree", self._nodes, total)
        missing = next(expected, None)
        if missing is not None:
            _fail("tree", f"the Merkle tree lacks its {_node(missing)}", _first_leaf(missing))

    # -- derived tables -----------------------------------------------------------

    def _tables(self, size: int) -> None:
        reader, state = self._reader, self._state
        config = state.config()
        if config is None or reader.meta(META_CONFIG) != config_to_bytes(config):
            _fail("config", "the town configuration in the metadata is not the genesis's")
        # table (also the check's name) -> the records the replay gives, how to name one
        derived: dict[str, tuple[dict[bytes, bytes], Callable[[bytes, bytes | None], str]]] = {
            "keys": (
                {key_id: record.to_bytes() for key_id, record in state.keys.items()},
                lambda key, _: f"staff key {key.hex()}",
            ),
            "rules": (
                {rule_key(code): record.to_bytes() for code, record in state.rules.items()},
                lambda key, _: f"rule {key.decode('utf-8', 'replace')!r}",
            ),
            "balances": (
                {name.encode("utf-8"): value.to_bytes() for name, value in state.balances.items()},
                self._describe_balance,
            ),
            "targets": (
                {int_key(seq): record.to_bytes() for seq, record in state.targets.items()},
                lambda key, _: f"award or redemption {int_from_key(key)}",
            ),
        }
        total = sum(_stored_entries(reader, table) for table in derived)
        done = 0
        for table, (expected, describe) in derived.items():
            for key, value in reader.txn.cursor(db=getattr(reader.tables, table)):
                wanted = expected.pop(key, None)
                if wanted is None:
                    _fail(
                        table,
                        f"the {table} table holds a record for {describe(key, None)} that no "
                        "entry of the log created",
                        self._seq_of(table, key),
                    )
                if value != wanted:
                    _fail(
                        table,
                        f"the stored record for {describe(key, value)} is not what the log's "
                        "entries give",
                        self._seq_of(table, key),
                    )
                done += 1
                self._tick("tables", done, total)
            if expected:
                key = min(expected)
                _fail(
                    table,
                    f"the {table} table lacks the record for {describe(key, None)}",
                    self._seq_of(table, key),
                )
        stored_ids = _stored_entries(reader, "ids")
        if stored_ids != size:
            _fail(
                "ids",
                f"the entry-id index holds {stored_ids} ids for a log of {size} entries",
            )
        stored_links = _stored_entries(reader, "account_entries")
        if stored_links != state.links:
            _fail(
                "account-entries",
                f"the accounts' entry lists hold {stored_links} links; the log makes {state.links}",
            )
        self._tick("tables", total, total)

    def _describe_balance(self, key: bytes, stored: bytes | None) -> str:
        account = key.decode("utf-8", "replace")
        expected = self._state.balances.get(account)
        if stored is None or expected is None:
            return f"account {account}"
        try:
            shown = _show_balance(Balance.from_bytes(stored))
        except FormatError:
            shown = "a damaged record"
        return f"account {account} (stored: {shown}; the log gives: {_show_balance(expected)})"

    def _seq_of(self, check: str, key: bytes) -> int | None:
        """The entry a table record belongs to: the one that last changed it, when known."""
        state = self._state
        if check == "targets" and len(key) == _INT_SIZE:
            return int_from_key(key)
        if check == "balances":
            return state.last_seq_of.get(key.decode("utf-8", "replace"))
        if check == "keys" and key in state.keys:
            record = state.keys[key]
            return record.added if record.revoked is None else record.revoked
        if check == "rules":
            for code, rule in state.rules.items():
                if rule_key(code) == key:
                    return rule.seq
        return None


def _node_keys(size: int) -> Iterator[bytes]:
    """The keys of every perfect subtree of a tree of ``size`` leaves, in table order."""
    level = 0
    while (1 << level) <= size:
        for index in range(size >> level):
            yield node_key(level, index)
        level += 1


def _node(key: bytes) -> str:
    if len(key) != _NODE_KEY_SIZE:
        return f"node under the malformed key {key.hex()}"
    level, first = key[0], int_from_key(key[1:]) << key[0]
    return f"node over entries {first} to {first + (1 << level) - 1}"


def _first_leaf(key: bytes) -> int | None:
    if len(key) != _NODE_KEY_SIZE:
        return None
    return int_from_key(key[1:]) << key[0]


def _show_balance(balance: Balance) -> str:
    return f"earned {balance.earned}, redeemed {balance.redeemed}, {balance.entries} entries"


def _short(value: bytes) -> str:
    return value[:8].hex() + "…"


def _count(number: int, singular: str, plural: str | None = None) -> str:
    word = singular if number == 1 else (plural or singular + "s")
    return f"{number:,} {word}"


__all__ = [
    "CHECKS",
    "STAGES",
    "TAIL_LEAVES",
    "Problem",
    "Progress",
    "Report",
    "check_full",
    "check_tail",
]
