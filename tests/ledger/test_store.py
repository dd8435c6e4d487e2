"""The LMDB store: key layout, the LedgerState contract, the read view, transactions.

Everything runs on real LMDB environments in ``tmp_path``. The ``LedgerState``
contract tests run against both implementations (``MemoryState`` and ``LmdbState``)
so the node and the verifier are held to the same behaviour.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.builders import WENDENG_CONFIG
from tests.rawstore import raw_tables

from redlist.ledger import merkle, storelists
from redlist.ledger.errors import IntegrityError, StateDamageError, StoreError
from redlist.ledger.state import (
    Balance,
    KeyRecord,
    LedgerState,
    MemoryState,
    RuleRecord,
    TargetRecord,
    month_count_to_bytes,
)
from redlist.ledger.store import (
    LmdbStore,
    StoredHead,
    StoredRecord,
    StoreWriter,
    TableCounts,
)
from redlist.ledger.storelayout import (
    FORMAT_MARKER,
    NO_PREVIOUS,
    SEALED_TABLES,
    AccountLink,
    account_links_from_bytes,
    account_links_to_bytes,
    int_key,
    node_from_key,
    node_key,
    rule_key,
    seal,
    seq_from_key,
)

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LmdbStore]:
    opened = LmdbStore.open(tmp_path / "ledger.lmdb", create=True, map_size=1 << 26)
    yield opened
    opened.close()


# ---------------------------------------------------------------------------
# Key layout


@settings(max_examples=200)
@given(U64, U64)
def test_int_keys_sort_like_the_numbers(first: int, second: int) -> None:
    assert len(int_key(first)) == 8
    assert (int_key(first) < int_key(second)) == (first < second)


@settings(max_examples=200)
@given(st.integers(0, 63), U64, U64)
def test_node_keys_sort_by_level_then_index(level: int, first: int, second: int) -> None:
    assert len(node_key(level, first)) == 9
    assert (node_key(level, first) < node_key(level, second)) == (first < second)
    assert node_key(level, first) < node_key(level + 1, 0)


ACCOUNTS = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,63}", fullmatch=True)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(ACCOUNTS, st.none() | st.integers(0, (1 << 63) - 1)),
        min_size=1,
        max_size=4,
        unique_by=lambda link: link[0],
    )
)
def test_account_links_round_trip(links: list[tuple[str, int | None]]) -> None:
    seq = 1 << 63
    values = tuple(AccountLink(account, previous) for account, previous in links)
    assert account_links_from_bytes(seq, account_links_to_bytes(values)) == values


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # an entry with a record links an account
        b"\x01a" + int_key(3)[:-1],  # cut short
        b"\x00" + int_key(3),  # no account
        b"\x01\xff" + int_key(3),  # not UTF-8
        b"\x01a" + int_key(9),  # not before the entry
        b"\x01a" + int_key(3) + b"\x01a" + int_key(4),  # the same account twice
        b"\x01a" + int_key(3) + b"\x00",  # trailing bytes
    ],
)
def test_account_links_that_a_store_never_writes_do_not_decode(payload: bytes) -> None:
    assert account_links_from_bytes(9, payload) is None


def test_an_accounts_first_link_has_no_previous() -> None:
    payload = account_links_to_bytes((AccountLink("ab", None), AccountLink("c", 0)))
    assert payload == b"\x02ab" + int_key(NO_PREVIOUS) + b"\x01c" + int_key(0)


@settings(max_examples=100)
@given(
    st.sampled_from(SEALED_TABLES),
    st.binary(min_size=1, max_size=511),
    U64,
    st.binary(max_size=300),
)
def test_a_seal_is_the_documented_tag(table: str, key: bytes, seq: int, payload: bytes) -> None:
    """``payload ‖ seq ‖ BLAKE2b-128(table ‖ 0x00 ‖ len(key) ‖ key ‖ payload ‖ seq)``,
    personalised with the format marker (``storelayout``), for every key length."""
    body = payload + seq.to_bytes(8, "big")
    message = table.encode() + b"\x00" + len(key).to_bytes(2, "big") + key + body
    tag = hashlib.blake2b(message, digest_size=16, person=FORMAT_MARKER).digest()
    assert seal(table, key, seq, payload) == body + tag


def test_long_rule_codes_get_a_hashed_key_that_cannot_collide() -> None:
    short = "clean-pond"
    long_code = "x" * 1000
    assert rule_key(short) == short.encode()
    assert len(rule_key(long_code)) == 33
    assert rule_key(long_code).startswith(b"\xff")
    assert rule_key(long_code) != rule_key(long_code + "y")
    assert rule_key("y" * 255) == b"y" * 255


@given(U64, st.integers(min_value=0, max_value=63))
def test_keys_decode_to_what_they_encode(value: int, level: int) -> None:
    assert seq_from_key(int_key(value)) == value
    assert node_from_key(node_key(level, value)) == (level, value)
    assert seq_from_key(int_key(value)[1:]) is None
    assert node_from_key(int_key(value)) is None


# ---------------------------------------------------------------------------
# The LedgerState contract, for both implementations


@contextmanager
def memory_state(tmp_path: Path) -> Iterator[LedgerState]:
    yield MemoryState()


@contextmanager
def lmdb_state(tmp_path: Path) -> Iterator[LedgerState]:
    opened = LmdbStore.open(tmp_path / "state.lmdb", create=True, map_size=1 << 24)
    try:
        with opened.write() as writer:
            yield writer.state()
    finally:
        opened.close()


MakeState = Callable[[Path], AbstractContextManager[LedgerState]]
STATES = [pytest.param(memory_state, id="memory"), pytest.param(lmdb_state, id="lmdb")]


@pytest.mark.parametrize("make_state", STATES)
def test_state_starts_empty(make_state: MakeState, tmp_path: Path) -> None:
    with make_state(tmp_path) as state:
        assert state.config() is None
        assert state.key(b"k" * 8) is None
        assert state.rule("clean-pond") is None
        assert state.balance("resident-1") == Balance()
        assert state.target(3) is None
        assert state.entry_seq(b"i" * 16) is None
        assert state.month_qty("resident-1", "clean-pond", "2026-01") == 0


@pytest.mark.parametrize("make_state", STATES)
def test_state_returns_what_was_put(make_state: MakeState, tmp_path: Path) -> None:
    key = KeyRecord(b"k" * 8, b"p" * 32, "grid-wang", frozenset({"grid"}), 1)
    revoked = KeyRecord(b"k" * 8, b"p" * 32, "grid-wang", frozenset({"grid"}), 1, 9)
    rule = RuleRecord("clean-pond", "Cleaned the pond", "environment", 5, False, True, 2, 3, 10)
    long_rule = RuleRecord("r" * 600, "Long", "m", -1, True, True, 3)
    target = TargetRecord("award", "resident-1", 5, "clean-pond", None, 1, "2026-01")
    with make_state(tmp_path) as state:
        state.set_config(WENDENG_CONFIG)
        state.put_key(key)
        state.put_rule(rule)
        state.put_rule(long_rule)
        state.put_balance("resident-1", Balance(5, 2, 3))
        state.put_target(4, target)
        state.put_entry_id(b"i" * 16, 0)  # the first entry's: the index holds no other
        assert state.config() == WENDENG_CONFIG
        assert state.key(b"k" * 8) == key
        assert state.rule("clean-pond") == rule
        assert state.rule("r" * 600) == long_rule
        assert state.rule("r" * 601) is None
        assert state.balance("resident-1") == Balance(5, 2, 3)
        assert state.balance("resident-2") == Balance()
        assert state.target(4) == target
        assert state.entry_seq(b"i" * 16) == 0
        # Later puts replace earlier ones.
        state.put_key(revoked)
        state.put_target(4, target.reversed(7))
        state.put_balance("resident-1", Balance(0, 2, 4))
        assert state.key(b"k" * 8) == revoked
        assert state.target(4) == target.reversed(7)
        assert state.balance("resident-1") == Balance(0, 2, 4)
        # Monthly counts are kept apart by account, rule and month; 0 removes one.
        state.put_month_qty("resident-1", "clean-pond", "2026-01", 4)
        state.put_month_qty("resident-1", "r" * 600, "2026-01", 2)
        state.put_month_qty("resident-1", "clean-pond", "2026-02", 1)
        assert state.month_qty("resident-1", "clean-pond", "2026-01") == 4
        assert state.month_qty("resident-1", "r" * 600, "2026-01") == 2
        assert state.month_qty("resident-1", "r" * 601, "2026-01") == 0
        assert state.month_qty("resident-11", "clean-pond", "2026-01") == 0
        state.put_month_qty("resident-1", "clean-pond", "2026-01", 0)
        assert state.month_qty("resident-1", "clean-pond", "2026-01") == 0
        assert state.month_qty("resident-1", "clean-pond", "2026-02") == 1


POINTS = st.integers(-(2**53) + 1, 2**53 - 1)
TEXT = st.text(max_size=20)


@settings(max_examples=50, deadline=None)
@given(
    balance=st.builds(Balance, POINTS, POINTS, st.integers(0, 1 << 40)),
    target=st.builds(
        TargetRecord,
        st.sampled_from(["award", "redeem"]),
        ACCOUNTS,
        POINTS,
        TEXT,
        st.none() | st.integers(0, 1 << 62),
        st.integers(0, 1 << 32),
        TEXT,
    ),
    rule=TEXT.filter(bool),
    qty=st.integers(1, 1 << 62),
    accounts=st.lists(ACCOUNTS, min_size=1, max_size=3, unique=True),
)
def test_the_state_stores_the_bytes_the_records_encode_to(
    tmp_path_factory: pytest.TempPathFactory,
    balance: Balance,
    target: TargetRecord,
    rule: str,
    qty: int,
    accounts: list[str],
) -> None:
    """The write path encodes a balance, a target, a monthly count and an entry's links
    itself (``LmdbState``): the payloads are those of the records' own encoders."""
    opened = LmdbStore.open(tmp_path_factory.mktemp("s") / "x.lmdb", create=True)
    try:
        with opened.write() as writer:
            state = writer.state()
            state.put_balance("Resident-1", balance)  # no account the links draw
            state.put_target(4, target)
            state.put_month_qty("resident-1", rule, "2026-01", qty)
            for account in accounts:
                state.link_account(account, 7)
            state.link_account(accounts[0], 9)
        with opened.read() as reader:
            assert dict(reader.stored_balances())["Resident-1"].payload == balance.to_bytes()
            assert dict(reader.stored_targets())[4].payload == target.to_bytes()
            [count] = dict(reader.stored_month_counts()).values()
            assert count.payload == month_count_to_bytes(rule, qty)
            links = dict(reader.stored_account_links())
            assert links[7].payload == account_links_to_bytes(
                tuple(AccountLink(account, None) for account in accounts)
            )
            assert links[9].payload == account_links_to_bytes((AccountLink(accounts[0], 7),))
    finally:
        opened.close()


def test_lmdb_state_persists_across_commit_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.lmdb"
    key = KeyRecord(b"k" * 8, b"p" * 32, "admin", frozenset({"admin"}), 0)
    opened = LmdbStore.open(path, create=True, map_size=1 << 24)
    with opened.write() as writer:
        state = writer.state()
        state.set_config(WENDENG_CONFIG)
        state.put_key(key)
        state.put_balance("resident-1", Balance(10, 0, 1))
        state.link_account("resident-1", 5)
    opened.close()
    reopened = LmdbStore.open(path, readonly=True, map_size=1 << 24)
    with reopened.read() as reader:
        state = reader.state()
        assert state.config() == WENDENG_CONFIG
        assert state.key(b"k" * 8) == key
        assert state.balance("resident-1") == Balance(10, 0, 1)
        assert list(reader.account_seqs("resident-1")) == [5]
    reopened.close()


# ---------------------------------------------------------------------------
# Account index


def link_in_order(store: LmdbStore, links: dict[str, list[int]]) -> None:
    """Link each account to its seqs, entry by entry in seq order (as the log does)."""
    by_seq: dict[int, list[str]] = {}
    for account, seqs in links.items():
        for seq in seqs:
            by_seq.setdefault(seq, []).append(account)
    with store.write() as writer:
        state = writer.state()
        for seq in sorted(by_seq):
            for account in by_seq[seq]:
                state.link_account(account, seq)


def test_account_seqs_stay_within_their_account(store: LmdbStore) -> None:
    links = {
        "a": [1, 7],
        "ab": [2, 3, 300, 1 << 33],
        "ab.c": [4],
        "ab-1": [5],
        "b": [6, 300],  # entry 300 links "ab" and "b"
    }
    link_in_order(store, links)
    with store.read() as reader:
        for account, seqs in links.items():
            assert list(reader.account_seqs(account)) == seqs
            assert [reader.account_link(account, seq) for seq in seqs] == [
                AccountLink(account, previous) for previous in [None, *seqs[:-1]]
            ]
        assert list(reader.account_seqs("ab", start=3)) == [3, 300, 1 << 33]
        assert list(reader.account_seqs("ab", start=301)) == [1 << 33]
        assert list(reader.account_seqs("ab", start=(1 << 33) + 1)) == []
        assert list(reader.account_seqs("nobody")) == []
        assert reader.account_link("ab", 1) is None
        assert reader.account_link("ab", 8) is None  # no entry 8 links anything
        counts = reader.counts()
        assert (counts.account_links, counts.account_heads) == (9, 5)  # entry 300 once


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_account_seqs_walk_back_in_chunks_and_yield_in_order(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    # A chunk of 3 seqs (or the count's square root) makes the two walks and their
    # seams happen on small lists.
    seqs = sorted(data.draw(st.sets(st.integers(0, 400), min_size=1, max_size=120)))
    start = data.draw(st.integers(0, 410))
    path = tmp_path_factory.mktemp("chunks") / "ledger.lmdb"
    store = LmdbStore.open(path, create=True, map_size=1 << 24)
    try:
        # Every third entry links another account too: its record holds two links,
        # which the walk reads by the general decoding, the others by its fast path.
        others = [seq for seq in range(401) if seq % 3 == 0]
        link_in_order(store, {"walked": seqs, "other": others})
        with store.read() as reader, pytest.MonkeyPatch.context() as patch:
            patch.setattr(storelists, "WALK_CHUNK", 3)
            assert list(reader.account_seqs("walked", start)) == [s for s in seqs if s >= start]
            assert list(reader.account_seqs("other", start)) == [s for s in others if s >= start]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("account", "seq", "message"),
    [
        ("a", 3, "account_heads record of account a's latest entry names entry 4, not before"),
        ("b", 2, "account_links record of the accounts linked by entry 2 is already stored, or"),
    ],
)
def test_linking_an_entry_before_the_latest_is_refused(
    store: LmdbStore, account: str, seq: int, message: str
) -> None:
    # The log links entries in seq order; a link that goes back means the store holds
    # links the log does not (a damaged head, a record beyond the log): refused, and
    # nothing is written.
    link_in_order(store, {"a": [4]})
    with pytest.raises(StateDamageError, match=message), store.write() as writer:
        writer.state().link_account(account, seq)
    with store.read() as reader:
        assert list(reader.account_seqs("a")) == [4]
        assert list(reader.account_seqs("b")) == []


# ---------------------------------------------------------------------------
# Leaves, nodes, transactions


def write_leaves(writer: StoreWriter, count: int) -> list[bytes]:
    leaf_hashes = []
    nodes = writer.nodes()
    for seq in range(count):
        leaf = f"leaf {seq}".encode()
        leaf_hash = merkle.leaf_hash(leaf)
        writer.put_leaf(seq, leaf)
        for level, index, subtree_hash in merkle.nodes_to_store(seq, leaf_hash, nodes):
            writer.put_node(level, index, subtree_hash)
        leaf_hashes.append(leaf_hash)
    writer.set_head(size=count, last_time=0, last_leaf_hash=leaf_hashes[-1], checkpoint="")
    return leaf_hashes


def test_node_reader_gives_the_same_proofs_as_a_memory_tree(store: LmdbStore) -> None:
    with store.write() as writer:
        leaf_hashes = write_leaves(writer, 37)
    tree = merkle.MemoryTree(leaf_hashes)
    with store.read() as reader:
        nodes = reader.nodes()
        assert reader.size() == 37
        for size in range(1, 38):
            assert merkle.root_at(nodes, size) == merkle.root_of(leaf_hashes[:size])
            for index in range(size):
                assert merkle.inclusion_proof(nodes, index, size) == merkle.inclusion_proof(
                    tree, index, size
                )
            for first in range(size + 1):
                assert merkle.consistency_proof(nodes, first, size) == merkle.consistency_proof(
                    tree, first, size
                )


@contextmanager
def damaged(path: Path, *damage: tuple[str, bytes, bytes | None]) -> Iterator[LmdbStore]:
    """The store at ``path`` reopened after raw ``(table, key, value)`` writes (None:
    delete) that bypass it, as a disk error or a hostile operator would make them."""
    with raw_tables(path) as tables:
        for table, key, value in damage:
            if value is None:
                tables.delete(table, key)
            else:
                tables.put(table, key, value)
    reopened = LmdbStore.open(path, readonly=True)
    try:
        yield reopened
    finally:
        reopened.close()


def new_store(path: Path, leaves: int) -> None:
    created = LmdbStore.open(path, create=True, map_size=1 << 24)
    with created.write() as writer:
        write_leaves(writer, leaves)
    created.close()


def test_a_missing_node_is_an_integrity_error(tmp_path: Path) -> None:
    new_store(tmp_path / "x.lmdb", 4)
    with (
        damaged(tmp_path / "x.lmdb", ("nodes", node_key(1, 0), None)) as store,
        store.read() as reader,
        pytest.raises(IntegrityError, match="subtree of 2 leaves"),
    ):
        merkle.root_at(reader.nodes(), 3)


def test_leaves_stream_in_order_and_gaps_are_reported(tmp_path: Path) -> None:
    new_store(tmp_path / "x.lmdb", 10)
    store = LmdbStore.open(tmp_path / "x.lmdb", readonly=True)
    with store.read() as reader:
        assert [seq for seq, _ in reader.iter_leaves(3, 8)] == [3, 4, 5, 6, 7]
        assert list(reader.iter_leaves(5, 5)) == []
        assert dict(reader.iter_leaves(0, 2)) == {0: b"leaf 0", 1: b"leaf 1"}
    store.close()
    gap = ("leaves", int_key(6), None)
    with damaged(tmp_path / "x.lmdb", gap) as store, store.read() as reader:
        with pytest.raises(IntegrityError, match="leaf 6 is missing"):
            list(reader.iter_leaves(3, 8))
        with pytest.raises(IntegrityError, match="leaf 6 is missing"):
            list(reader.iter_leaves(6, 8))
        with pytest.raises(IntegrityError, match="leaf 10 is missing"):
            list(reader.iter_leaves(8, 11))


def test_leaves_are_never_overwritten(store: LmdbStore) -> None:
    with store.write() as writer:
        write_leaves(writer, 3)
    with pytest.raises(IntegrityError, match="leaf 1"), store.write() as writer:
        writer.put_leaf(1, b"other")
    with store.read() as reader:
        assert reader.leaf(1) == b"leaf 1"


def test_a_failed_write_leaves_nothing(store: LmdbStore) -> None:
    class Refused(Exception):
        pass

    with pytest.raises(Refused), store.write() as writer:
        write_leaves(writer, 5)
        writer.state().put_balance("resident-1", Balance(5, 0, 1))
        raise Refused
    with store.read() as reader:
        assert reader.size() == 0
        assert reader.leaf(0) is None
        assert reader.state().balance("resident-1") == Balance()


def test_a_full_map_is_a_store_error_and_writes_nothing(tmp_path: Path) -> None:
    small = LmdbStore.open(tmp_path / "small.lmdb", create=True, map_size=256 << 10)
    with small.write() as writer:
        writer.put_leaf(0, b"first")
    full = r"storage is full \(map size 262144 bytes\)"
    with pytest.raises(StoreError, match=full), small.write() as writer:
        for seq in range(1, 100):
            writer.put_leaf(seq, bytes(20_000))
    with small.read() as reader:
        assert reader.leaf(0) == b"first"
        assert reader.leaf(1) is None
    small.close()
    bigger = LmdbStore.open(tmp_path / "small.lmdb", map_size=1 << 26)
    with bigger.write() as writer:
        for seq in range(1, 100):
            writer.put_leaf(seq, bytes(20_000))
    with bigger.read() as reader:
        assert len(list(reader.iter_leaves(0, 100))) == 100
    bigger.close()


# ---------------------------------------------------------------------------
# Opening


def test_open_refuses_a_missing_environment(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no ledger database"):
        LmdbStore.open(tmp_path / "nothing.lmdb")
    assert not (tmp_path / "nothing.lmdb").exists()


def test_open_refuses_an_lmdb_environment_without_our_tables(tmp_path: Path) -> None:
    lmdb.open(str(tmp_path / "foreign.lmdb"), map_size=1 << 20).close()
    with pytest.raises(StoreError, match="not a redlist ledger"):
        LmdbStore.open(tmp_path / "foreign.lmdb", readonly=True)


def test_open_refuses_a_second_open_in_one_process(store: LmdbStore) -> None:
    with pytest.raises(StoreError, match="already open"):
        LmdbStore.open(store.path)


def test_a_read_only_store_refuses_writes(tmp_path: Path) -> None:
    LmdbStore.open(tmp_path / "x.lmdb", create=True, map_size=1 << 20).close()
    readonly = LmdbStore.open(tmp_path / "x.lmdb", readonly=True)
    with pytest.raises(StoreError, match="read-only"), readonly.write():
        pass
    readonly.close()


def test_map_size_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="map size"):
        LmdbStore.open(tmp_path / "x.lmdb", create=True, map_size=-1)


_OPEN_FOR_WRITING = """
import sys
from pathlib import Path
from redlist.ledger.errors import StoreError
from redlist.ledger.store import LmdbStore
try:
    store = LmdbStore.open(Path(sys.argv[1]))
except StoreError as error:
    print(error, flush=True)
    sys.exit(3)
print("open", flush=True)
sys.stdin.read()  # hold the store open until told, or killed
"""


def _writer(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _OPEN_FOR_WRITING, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_one_writing_process_per_ledger_and_a_killed_one_leaves_no_lock(
    store: LmdbStore,
) -> None:
    store.close()
    holder = _writer(store.path)  # a node serving the ledger
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "open"

    second = _writer(store.path)  # a second node on the same directory
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 3
    assert "already open for writing" in out
    # A read-only open (export, check) is never refused.
    LmdbStore.open(store.path, readonly=True).close()

    holder.kill()  # SIGKILL: the kernel drops the lock with the process
    holder.wait(timeout=60)
    LmdbStore.open(store.path).close()


# ---------------------------------------------------------------------------
# The read view: records as stored, for the integrity checks


LONG_RULE = RuleRecord("r" * 600, "Long", "m", -1, True, True, 3)


def fill(path: Path) -> None:
    """A small store with a record in every table."""
    created = LmdbStore.open(path, create=True, map_size=1 << 24)
    with created.write() as writer:
        # The first id put into an empty log makes the entry-id index's run list.
        writer.state().put_entry_id(b"i" * 16, 0)
        leaf_hashes = write_leaves(writer, 5)
        writer.set_identity(origin="town.example/log", log_verifier_key="town.example/log+1+x")
        writer.set_head(size=5, last_time=7, last_leaf_hash=leaf_hashes[-1], checkpoint="note 5")
        writer.put_checkpoint(3, "note 3")
        writer.put_checkpoint(5, "note 5")
        state = writer.state()
        state.set_config(WENDENG_CONFIG)
        state.put_key(KeyRecord(b"k" * 8, b"p" * 32, "admin", frozenset({"admin"}), 0))
        state.put_rule(RuleRecord("clean-pond", "Pond", "env", 5, False, True, 1))
        state.put_rule(LONG_RULE)
        state.put_balance("resident-1", Balance(5, 0, 1))
        state.put_target(4, TargetRecord("award", "resident-1", 5, "clean-pond"))
        state.link_account("resident-1", 4)
        state.put_month_qty("resident-1", "clean-pond", "2026-01", 2)
        state.put_month_qty("resident-1", LONG_RULE.code, "2026-02", 1)
        state.put_month_qty("resident-2", "clean-pond", "2026-01", 3)
        state.put_month_qty("resident-2", "clean-pond", "2026-01", 0)  # gone again
    created.close()


def test_the_read_view_gives_every_record_as_stored(tmp_path: Path) -> None:
    fill(tmp_path / "x.lmdb")
    store = LmdbStore.open(tmp_path / "x.lmdb", readonly=True)
    with store.read() as reader:
        head = reader.head()
        assert head == StoredHead(
            origin=b"town.example/log",
            log_verifier_key=b"town.example/log+1+x",
            size=5,
            last_time=7,
            last_leaf_hash=merkle.leaf_hash(b"leaf 4"),
            checkpoint=b"note 5",
        )
        assert reader.counts() == TableCounts(
            meta=9,
            leaves=5,
            nodes=8,
            ids=1,
            keys=1,
            rules=2,
            balances=1,
            targets=1,
            month_counts=2,
            checkpoints=2,
            account_links=1,
            account_heads=1,
            id_runs=0,
        )
        assert reader.unknown_meta() == ()
        assert reader.config() == WENDENG_CONFIG
        assert reader.config_record() is not None
        assert [seq for seq, _ in reader.stored_leaves()] == [0, 1, 2, 3, 4]
        assert list(reader.leaf_seqs(3)) == [3, 4]
        assert reader.last_leaf_seq() == 4
        positions = [(level, index) for level, index, _ in reader.stored_nodes()]
        assert positions == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (2, 0)]
        assert reader.stored_node(0, 4) == merkle.leaf_hash(b"leaf 4")
        assert reader.stored_node(1, 2) is None
        assert list(reader.stored_checkpoints()) == [(3, b"note 3"), (5, b"note 5")]
        assert reader.checkpoint_record(3) == b"note 3"
        assert reader.last_checkpoint_size() == 5
        assert reader.indexed_seq(b"i" * 16) == 0
        assert reader.indexed_seq(b"j" * 16) is None
        assert [key for key, _ in reader.stored_keys()] == [b"k" * 8]
        rules = dict(reader.stored_rules())
        assert set(rules) == {"clean-pond", LONG_RULE.code}  # the long one's key is a hash
        assert rules[LONG_RULE.code] == StoredRecord(LONG_RULE.to_bytes(), LONG_RULE.seq, True)
        assert [account for account, _ in reader.stored_balances()] == ["resident-1"]
        assert reader.balance("resident-1") == Balance(5, 0, 1)
        assert [seq for seq, _ in reader.stored_targets()] == [4]
        assert reader.target(4) == TargetRecord("award", "resident-1", 5, "clean-pond")
        counts = dict(reader.stored_month_counts())
        assert set(counts) == {
            ("resident-1", "clean-pond", "2026-01"),
            ("resident-1", LONG_RULE.code, "2026-02"),  # the long one's key holds a hash
        }
        assert counts[("resident-1", "clean-pond", "2026-01")] == StoredRecord(
            month_count_to_bytes("clean-pond", 2), 5, True
        )
        state = reader.state()
        assert state.month_qty("resident-1", "clean-pond", "2026-01") == 2
        assert state.month_qty("resident-1", LONG_RULE.code, "2026-02") == 1
        assert state.month_qty("resident-2", "clean-pond", "2026-01") == 0
    store.close()


MALFORMED = {
    "a leaf key": (("leaves", b"\x00" * 7, b"leaf"), "stored_leaves", "leaves table"),
    "a node key": (("nodes", b"\x00" * 3, bytes(32)), "stored_nodes", "node under the malformed"),
    "a checkpoint key": (("checkpoints", b"\x01", b"note"), "stored_checkpoints", "checkpoints"),
    "a target key": (("targets", b"\x00" * 9, b"x"), "stored_targets", "targets table"),
    "a balance key": (("balances", b"\xff\xfe", b"x"), "stored_balances", "balances table"),
    "an account head key": (
        ("account_heads", b"\xff\xfe", b"x"),
        "stored_account_heads",
        "account_heads table",
    ),
    "a rule key too long": (("rules", b"y" * 300, b"x"), "stored_rules", "malformed key"),
    "a hashed rule key": (("rules", b"\xff" + bytes(32), b"\xc1"), "stored_rules", "hashed key"),
    "a month key": (("month_counts", b"resident-1", b"x"), "stored_month_counts", "malformed key"),
    "a month key's rule": (
        ("month_counts", b"r\x002026-01\xff" + bytes(32), b"x"),
        "stored_month_counts",
        "damaged record",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_key_is_an_integrity_error_naming_it(tmp_path: Path, case: str) -> None:
    damage, scan, words = MALFORMED[case]
    fill(tmp_path / "x.lmdb")
    with (
        damaged(tmp_path / "x.lmdb", damage) as store,
        store.read() as reader,
        pytest.raises(IntegrityError, match=words),
    ):
        list(getattr(reader, scan)())


DAMAGED_RECORDS = {
    "a short size": (("meta", b"size", b"\x05"), "head", "size in the metadata is not an 8-byte"),
    "no last time": (("meta", b"last_time", None), "head", "lacks its 'last_time' record"),
    "a short id record": (
        ("ids", b"i" * 16, b"\x04"),
        "indexed_seq",
        "ids record of entry id 6969.* does not match its checksum",
    ),
}


@pytest.mark.parametrize("case", DAMAGED_RECORDS)
def test_a_damaged_record_is_an_integrity_error(tmp_path: Path, case: str) -> None:
    damage, read, words = DAMAGED_RECORDS[case]
    fill(tmp_path / "x.lmdb")
    with damaged(tmp_path / "x.lmdb", damage) as store, store.read() as reader:
        arguments = (b"i" * 16,) if read == "indexed_seq" else ()
        with pytest.raises(IntegrityError, match=words):
            getattr(reader, read)(*arguments)


def test_unknown_metadata_records_are_named(tmp_path: Path) -> None:
    fill(tmp_path / "x.lmdb")
    with damaged(tmp_path / "x.lmdb", ("meta", b"owner", b"x")) as store, store.read() as reader:
        assert reader.unknown_meta() == (b"owner",)
