"""The full check (``redlist-node check --full``): every record of the store, against the log.

It checks every leaf (canonical form, seq, chain, time, hash against the tree),
every stored Merkle node recomputed from its children, every stored checkpoint
(signature, size, and root against the tree rebuilt from the leaves), the
metadata, and the tables derived from the entries (``ids``, ``keys``, ``rules``,
``balances``, ``targets``, ``month_counts``, the accounts' entry lists
(``account_links``, ``account_heads``: ``linkcheck``) and the town configuration),
re-derived by replaying the points semantics and compared byte for byte: every
record's seal must match (a damaged record is named as such), its payload must be
what the replay gives and its seal's seq the entry that last changed it. It
returns a :class:`~redlist.ledger.integrity.Report` with the first problem found,
or a summary.

Memory. The leaves, nodes, checkpoints and the two per-entry indexes (the entry-id
index, ``account_links``) are streamed and checked as the replay writes them, so they
cost nothing to hold (the entry-id index is also read once in key order, a cursor per
run, for ids held twice: ``idcheck``); the replay keeps in memory what the semantics
needs to decide the next entry: the keys, rules, balances (one per account), targets (one per
award or redemption) and monthly counts (at most one per award), and each account's
latest linked entry and count of links. That is
proportional to the log's accounts and awards, acceptable for an offline check, unlike
the tail check which must stay bounded.
Every entry's signatures are verified again, one core at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from redlist.ledger import merkle
from redlist.ledger.entry import ZERO_HASH
from redlist.ledger.errors import FormatError, RuleViolation
from redlist.ledger.idcheck import IdIndexCheck
from redlist.ledger.integrity import (
    Head,
    Problem,
    ProblemFound,
    Report,
    check_head,
    check_latest,
    check_leaf_count,
    check_leaf_node,
    check_link,
    check_node,
    check_root,
    decode_leaf,
    expected_nodes,
    fail,
    first_leaf,
    misplaced_checkpoint,
    node_name,
    open_stored_checkpoint,
    read_head,
    scanned,
)
from redlist.ledger.linkcheck import LinkCheck
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.points import apply_entry
from redlist.ledger.state import Balance, MemoryState, config_to_bytes, month_count_to_bytes
from redlist.ledger.store import FORMAT_MARKER, StoredRecord, StoreReader

#: A progress callback: ``(stage, done, total)``, stage one of ``STAGES``.
Progress = Callable[[str, int, int], None]
STAGES = ("entries", "tree", "tables")
# Progress is reported every this many items (and at the end of each stage).
_PROGRESS_EVERY = 4096

#: The key of a derived table's record: a key id, a rule code, an account, a seq, or
#: (account, rule, month).
_Key = TypeVar("_Key", bytes, str, int, tuple[str, str, str])


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
    except ProblemFound as found:
        return check.report(found.problem)
    return check.report(None)


class _ReplayState(MemoryState):
    """The verifier's in-memory state, except for the two per-entry indexes.

    Entry ids are not held: each one the replay writes is looked up in the store at
    once, and account links are checked entry by entry (``linkcheck``), so the stored
    indexes are checked while memory stays proportional to accounts, keys, rules and
    targets.
    """

    def __init__(self, reader: StoreReader) -> None:
        super().__init__()
        self._reader = reader
        self.seq = 0  # the entry being replayed
        self.link_check = LinkCheck(reader)
        #: The entry-id index's check, made once the log's size is known (``run``).
        self.ids: IdIndexCheck
        #: The entry that last changed each account's balance.
        self.balance_seq: dict[str, int] = {}
        #: The entry that last changed each monthly count.
        self.month_seq: dict[tuple[str, str, str], int] = {}

    def entry_seq(self, entry_id: bytes) -> int | None:
        return self.ids.earlier(entry_id, self.seq)

    def put_entry_id(self, entry_id: bytes, seq: int) -> None:
        self.ids.confirm(entry_id, seq)

    def put_balance(self, account: str, balance: Balance) -> None:
        super().put_balance(account, balance)
        self.balance_seq[account] = self.seq

    def put_month_qty(self, account: str, rule: str, month: str, qty: int) -> None:
        super().put_month_qty(account, rule, month, qty)
        self.month_seq[(account, rule, month)] = self.seq

    def link_account(self, account: str, seq: int) -> None:
        self.link_check.link(account, seq)


class _FullCheck:
    def __init__(self, reader: StoreReader, progress: Progress | None) -> None:
        self._reader = reader
        self._progress = progress
        self._state = _ReplayState(reader)
        self._origin = ""
        self._entries = 0
        self._nodes = 0
        self._checkpoints = 0
        self._tabled = 0

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
        if reader.format_marker() != FORMAT_MARKER:
            fail("meta", "the metadata lacks the redlist ledger format marker")
        head = read_head(reader)
        self._origin = head.origin
        if verifier_key is not None and verifier_key != head.verifier_key:
            fail(
                "meta",
                f"the log key stored in the ledger ({head.verifier_key.encode()}) is not the "
                f"log's published key ({verifier_key.encode()})",
            )
        for name in reader.unknown_meta():
            fail("meta", f"the metadata holds an unknown record {name!r}")
        check_leaf_count(reader, head.size, locate=True)
        self._state.ids = IdIndexCheck(reader, head.size)
        last_hash, last_time = self._entries_and_checkpoints(head)
        check_head(head, last_hash, last_time)
        self._tree(head.size)
        self._tables(head.size)

    def _tick(self, stage: str, done: int, total: int) -> None:
        if self._progress is not None and (done % _PROGRESS_EVERY == 0 or done == total):
            self._progress(stage, done, total)

    # -- leaves, replay and checkpoints ---------------------------------------

    def _entries_and_checkpoints(self, head: Head) -> tuple[bytes, int]:
        """Walk every leaf; replay it; check each checkpoint when its size is reached."""
        reader, state, size = self._reader, self._state, head.size
        compact = merkle.CompactRange()
        checkpoints = self._stored_checkpoints(size)
        pending = next(checkpoints, None)
        prev_hash, prev_time = ZERO_HASH, 0
        expected = 0
        for seq, raw in scanned("leaves", reader.stored_leaves()):
            if seq >= size:
                fail(
                    "leaves",
                    f"a leaf is stored for entry {seq}, beyond the log's size of {size} "
                    "entries recorded in the metadata",
                )
            if seq != expected:
                fail("leaves", "this entry's leaf is missing from the store", expected)
            leaf, envelope, body = decode_leaf(seq, raw)
            check_link(seq, leaf, prev_hash, prev_time)
            leaf_hash = merkle.leaf_hash(raw)
            check_leaf_node(reader, seq, leaf_hash)
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
                fail(
                    violation.check,
                    f"the entry breaks the ledger's rules: {violation.message}",
                    seq,
                )
            state.link_check.entry_done(seq)
            compact.append(leaf_hash)
            if pending is not None and pending[0] == seq + 1:
                checkpoint = open_stored_checkpoint(pending[1], head.verifier_key, seq + 1)
                check_root(checkpoint, compact.root(), "from the leaves")
                self._checkpoints += 1
                if seq + 1 == size:
                    check_latest(head, pending[1])
                pending = next(checkpoints, None)
            prev_hash, prev_time = leaf_hash, leaf.time
            expected = seq + 1
            self._entries = expected
            self._tick("entries", expected, size)
        if expected < size:
            fail(
                "leaves",
                f"this entry's leaf is missing, yet the metadata records a size of {size} entries",
                expected,
            )
        state.link_check.finish()
        if reader.checkpoint_record(size) is None:
            fail("checkpoint", f"no checkpoint is stored for the log's size ({size})")
        return prev_hash, prev_time

    def _stored_checkpoints(self, size: int) -> Iterator[tuple[int, bytes]]:
        for stored_size, raw in scanned("checkpoint", self._reader.stored_checkpoints()):
            if not 0 < stored_size <= size:
                fail("checkpoint", misplaced_checkpoint(stored_size, size))
            yield stored_size, raw

    # -- the Merkle tree --------------------------------------------------------

    def _tree(self, size: int) -> None:
        """Walk the nodes table against the exact set of perfect subtrees of the tree."""
        reader = self._reader
        total = expected_nodes(size)
        expected = _node_positions(size)
        for level, index, value in scanned("tree", reader.stored_nodes()):
            position = (level, index)
            wanted = next(expected, None)
            if wanted is None or position < wanted:
                fail(
                    "tree",
                    f"the Merkle tree holds a node that does not belong to it "
                    f"({node_name(level, index)})",
                )
            if position > wanted:
                fail("tree", f"the Merkle tree lacks its {node_name(*wanted)}", first_leaf(*wanted))
            if len(value) != merkle.HASH_SIZE:
                fail(
                    "tree",
                    f"the stored {node_name(level, index)} is not a 32-byte hash",
                    first_leaf(level, index),
                )
            if level > 0:  # level 0 was compared with the leaves
                check_node(reader, level, index)
            self._nodes += 1
            self._tick("tree", self._nodes, total)
        missing = next(expected, None)
        if missing is not None:
            fail("tree", f"the Merkle tree lacks its {node_name(*missing)}", first_leaf(*missing))

    # -- derived tables -----------------------------------------------------------

    def _tables(self, size: int) -> None:
        reader, state = self._reader, self._state
        config = state.config()
        stored_config = reader.config_record()
        if config is None or stored_config is None:
            fail("config", "the town configuration in the metadata is not the genesis's")
        if not stored_config.sound:
            fail(
                "config",
                "the town configuration in the metadata is damaged (its checksum does not match)",
            )
        if stored_config.payload != config_to_bytes(config) or stored_config.seq != 0:
            fail("config", "the town configuration in the metadata is not the genesis's")
        counts = reader.counts()
        total = (
            counts.keys
            + counts.rules
            + counts.balances
            + counts.targets
            + counts.month_counts
            + counts.account_heads
        )
        self._compare(
            "keys",
            {
                key_id: (record.to_bytes(), self._key_seq(key_id))
                for key_id, record in state.keys.items()
            },
            reader.stored_keys(),
            lambda key, _: f"staff key {key.hex()}",
            self._key_seq,
            total,
        )
        self._compare(
            "rules",
            {code: (record.to_bytes(), record.seq) for code, record in state.rules.items()},
            reader.stored_rules(),
            lambda code, _: f"rule {code!r}",
            lambda code: state.rules[code].seq if code in state.rules else None,
            total,
        )
        self._compare(
            "balances",
            {
                account: (balance.to_bytes(), state.balance_seq[account])
                for account, balance in state.balances.items()
            },
            reader.stored_balances(),
            self._describe_balance,
            state.balance_seq.get,
            total,
        )
        self._compare(
            "targets",
            {
                seq: (record.to_bytes(), seq if record.reversed_by is None else record.reversed_by)
                for seq, record in state.targets.items()
            },
            reader.stored_targets(),
            lambda seq, _: f"award or redemption {seq}",
            lambda seq: seq,
            total,
        )
        self._compare(
            "month_counts",
            {
                key: (month_count_to_bytes(key[1], qty), state.month_seq[key])
                for key, qty in state.month_counts.items()
            },
            reader.stored_month_counts(),
            lambda key, _: f"account {key[0]}'s count under rule {key[1]!r} in {key[2]}",
            state.month_seq.get,
            total,
        )
        state.ids.finish(counts, size)
        self._account_heads(total)
        self._tick("tables", total, total)

    def _compare(
        self,
        table: str,
        expected: dict[_Key, tuple[bytes, int | None]],
        stored: Iterator[tuple[_Key, StoredRecord]],
        describe: Callable[[_Key, bytes | None], str],
        seq_of: Callable[[_Key], int | None],
        total: int,
    ) -> None:
        """The records of ``table`` (also the check's name) must be exactly ``expected``:
        each sealed, with the payload and the seq (of the entry that last changed it)
        the replay gives."""
        for key, record in scanned(table, stored):
            wanted = expected.pop(key, None)
            if wanted is None:
                fail(
                    table,
                    f"the {table} table holds a record for {describe(key, None)} that no "
                    "entry of the log created",
                    seq_of(key),
                )
            if not record.sound:
                fail(
                    table,
                    f"the stored record for {describe(key, None)} is damaged: its checksum "
                    "does not match",
                    seq_of(key),
                )
            payload, seq = wanted
            if record.payload != payload:
                fail(
                    table,
                    f"the stored record for {describe(key, record.payload)} is not what the "
                    "log's entries give",
                    seq_of(key),
                )
            if record.seq != seq:
                fail(
                    table,
                    f"the stored record for {describe(key, None)} names entry {record.seq} as "
                    f"its last change; the log's entries give entry {seq}",
                    seq_of(key),
                )
            self._tabled += 1
            self._tick("tables", self._tabled, total)
        if expected:
            key = min(expected)
            fail(
                table, f"the {table} table lacks the record for {describe(key, None)}", seq_of(key)
            )

    def _account_heads(self, total: int) -> None:
        """Each account's head record holds its count of links, sealed with its latest."""
        heads = self._state.link_check.heads
        self._compare(
            "account_heads",
            {
                account: (count.to_bytes(8, "big"), latest)
                for account, (latest, count) in heads.items()
            },
            self._reader.stored_account_heads(),
            lambda account, _: f"account {account}'s latest entry",
            lambda account: heads[account][0] if account in heads else None,
            total,
        )

    def _key_seq(self, key_id: bytes) -> int | None:
        record = self._state.keys.get(key_id)
        if record is None:
            return None
        return record.added if record.revoked is None else record.revoked

    def _describe_balance(self, account: str, stored: bytes | None) -> str:
        expected = self._state.balances.get(account)
        if stored is None or expected is None:
            return f"account {account}"
        try:
            shown = _show_balance(Balance.from_bytes(stored))
        except FormatError:
            shown = "a damaged record"
        return f"account {account} (stored: {shown}; the log gives: {_show_balance(expected)})"


def _node_positions(size: int) -> Iterator[tuple[int, int]]:
    """``(level, index)`` of every perfect subtree of a tree of ``size`` leaves, in the
    order the store keeps them (by level, then index)."""
    level = 0
    while (1 << level) <= size:
        for index in range(size >> level):
            yield level, index
        level += 1


def _show_balance(balance: Balance) -> str:
    return f"earned {balance.earned}, redeemed {balance.redeemed}, {balance.entries} entries"


__all__ = ["STAGES", "Progress", "check_full"]
