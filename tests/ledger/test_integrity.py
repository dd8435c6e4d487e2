"""The store's integrity checks: check_tail (run by every writable open) and check_full.

Damage is made behind the log's back, with raw writes to the LMDB tables. To reach
the checks that sit behind the hash chain (the replay of the points semantics, the
derived tables), ``reforge`` rewrites a log consistently: it re-chains the leaves,
rebuilds the tree and re-signs every checkpoint with the log key, so only the one
thing a test changed is wrong.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.builders import (
    TOWN_LOG_CHECKPOINT_SIZES,
    WENDENG_CONFIG,
    Town,
    build_town_log,
    corrupt_signature,
    create_log,
)
from tests.rawstore import (
    META_CHECKPOINT,
    META_CONFIG,
    META_LAST_LEAF_HASH,
    META_LAST_TIME,
    META_SIZE,
    RawTables,
    account_head,
    account_links,
    int_key,
    node_key,
    raw_tables,
    seal,
    unseal,
)

from redlist.ledger import codec, fullcheck, merkle, native
from redlist.ledger.entry import Leaf, decode_body
from redlist.ledger.errors import IntegrityError
from redlist.ledger.fullcheck import STAGES, check_full
from redlist.ledger.integrity import CHECKS, Report
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.ledger.points import CHECKS as RULE_CHECKS
from redlist.ledger.state import Balance, KeyRecord, RuleRecord, TargetRecord, config_to_bytes
from redlist.ledger.store import ENV_DIR_NAME, LmdbStore, StoreReader
from redlist.ledger.tailcheck import check_tail

#: Tree sizes at which ``build_town_log`` commits a batch (and signs a checkpoint).
CHECKPOINT_SIZES = TOWN_LOG_CHECKPOINT_SIZES
SIZE = CHECKPOINT_SIZES[-1]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Town]:
    town = Town.from_seed(b"integrity tests")
    data = tmp_path_factory.mktemp("template") / "data"
    build_town_log(data, town)
    return data, town


@pytest.fixture
def data(template: tuple[Path, Town], tmp_path: Path) -> Path:
    """A fresh copy of the town's data directory, to damage."""
    copy = tmp_path / "data"
    _copy_tree(template[0], copy)
    return copy


@pytest.fixture
def town(template: tuple[Path, Town]) -> Town:
    return template[1]


def _copy_tree(source: Path, target: Path) -> None:
    target.mkdir()
    for name in ("log.key", "log.pub"):
        (target / name).write_bytes((source / name).read_bytes())
    (target / ENV_DIR_NAME).mkdir()
    data_file = source / ENV_DIR_NAME / "data.mdb"
    (target / ENV_DIR_NAME / "data.mdb").write_bytes(data_file.read_bytes())


@contextmanager
def raw_write(data: Path) -> Iterator[RawTables]:
    """A write transaction on the tables themselves, bypassing the store and its checks."""
    with raw_tables(data / ENV_DIR_NAME) as tables:
        yield tables


@contextmanager
def reading(data: Path) -> Iterator[StoreReader]:
    store = LmdbStore.open(data / ENV_DIR_NAME, readonly=True)
    try:
        with store.read() as reader:
            yield reader
    finally:
        store.close()


def full(data: Path, **options: Any) -> Report:
    with reading(data) as reader:
        return check_full(reader, **options)


def tail(data: Path, count: int = 64) -> None:
    with reading(data) as reader:
        check_tail(reader, count=count, data_dir=data)


def leaf_of(data: Path, seq: int) -> Leaf:
    with reading(data) as reader:
        return Leaf.from_bytes(reader.leaf(seq) or b"")


def reforge(data: Path, signer: NoteSigner, change: Callable[[int, Leaf], Leaf]) -> None:
    """Rewrite every leaf through ``change``, then make chain, tree, checkpoints and head
    consistent again (re-signed with the log key). The derived tables are left alone."""
    with raw_write(data) as tables:
        size = int.from_bytes(tables.get("meta", META_SIZE) or b"", "big")
        tree = merkle.MemoryTree()
        prev, time = bytes(32), 0
        for seq in range(size):
            stored = Leaf.from_bytes(tables.get("leaves", int_key(seq)) or b"")
            leaf = change(seq, stored._replace(prev=prev))
            leaf_bytes = leaf.to_bytes()
            tables.put("leaves", int_key(seq), leaf_bytes)
            prev, time = merkle.leaf_hash(leaf_bytes), leaf.time
            tree.append(prev)
        for level in range(size.bit_length()):
            for index in range(size >> level):
                tables.put("nodes", node_key(level, index), tree.node(level, index))
        for key in tables.keys("checkpoints"):
            checkpoint_size = int.from_bytes(key, "big")
            root = merkle.root_at(tree, checkpoint_size)
            note = sign_checkpoint(Checkpoint(signer.name, checkpoint_size, root), signer).note
            tables.put("checkpoints", key, note.encode())
        tables.put("meta", META_LAST_TIME, int_key(time))
        tables.put("meta", META_LAST_LEAF_HASH, prev)
        tables.put("meta", META_CHECKPOINT, note.encode())


def replace_envelope(target: int, envelope: bytes) -> Callable[[int, Leaf], Leaf]:
    return lambda seq, leaf: leaf._replace(envelope=envelope) if seq == target else leaf


def last_seq_of(data: Path, account: str) -> int:
    """The last award or redemption of ``account``."""
    with Log.open(data, readonly=True) as log:
        return log.account(account).entries[-1].seq


# ---------------------------------------------------------------------------
# A sound log


def test_a_sound_log_passes_both_checks(data: Path) -> None:
    for count in (64, 5, 1, 0):
        tail(data, count)
    report = full(data)
    assert report == Report(
        origin="wendeng.redlist.example/log",
        entries=SIZE,
        nodes=2 * SIZE - 1,
        checkpoints=len(CHECKPOINT_SIZES),
        accounts=4,
    )
    assert report.ok
    assert report.summary() == (
        "Checked 32 entries: hash chain, Merkle tree, 8 checkpoints and the balances of "
        "4 accounts all consistent."
    )


def test_the_published_key_must_be_the_stored_one(data: Path) -> None:
    stored = VerifierKey.parse((data / "log.pub").read_text().strip())
    assert full(data, verifier_key=stored).ok
    other = NoteSigner.generate(stored.name).verifier()
    problem = full(data, verifier_key=other).problem
    assert problem is not None
    assert (problem.check, problem.seq) == ("meta", None)
    assert "not the log's published key" in problem.message


def test_progress_reaches_the_total_of_every_stage(data: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    assert full(data, progress=lambda *call: calls.append(call)).ok
    assert [stage for stage, _, _ in calls] == ["entries", "tree", "tables", "tables"]
    assert {stage: (done, total) for stage, done, total in calls} == {
        "entries": (SIZE, SIZE),
        "tree": (2 * SIZE - 1, 2 * SIZE - 1),
        # 5 keys, 6 rules, 4 balances, 18 awards and redemptions, 5 monthly counts,
        # 4 accounts' latest entries
        "tables": (42, 42),
    }
    assert set(STAGES) == {stage for stage, _, _ in calls}


# ---------------------------------------------------------------------------
# Log.open runs the tail check


def test_a_writable_open_refuses_a_damaged_head_and_names_the_full_check(
    data: Path, town: Town
) -> None:
    with raw_write(data) as tables:
        leaf = Leaf.from_bytes(tables.get("leaves", int_key(30)) or b"")
        damaged = leaf._replace(envelope=corrupt_signature(leaf.envelope))
        tables.put("leaves", int_key(30), damaged.to_bytes())
    with pytest.raises(IntegrityError) as refused:
        Log.open(data)
    assert refused.value.seq == 30
    message = str(refused.value)
    assert "entry 30: the Merkle tree holds" in message
    assert "[leaf-hash]" in message
    assert f"Run `redlist-node check --data {data} --full` for a full report." in message
    # Read-only opens stay possible, so the damage can be examined and exported from.
    with Log.open(data, readonly=True) as log:
        assert log.size == SIZE


def test_the_tail_check_reads_only_its_window(data: Path) -> None:
    with raw_write(data) as tables:  # entry 3's level-0 node, long before the window
        tables.put("nodes", node_key(0, 3), bytes(32))
    tail(data, count=8)  # bounded: it does not look that far back
    with pytest.raises(IntegrityError, match=r"entry 3: .*\[leaf-hash\]"):
        tail(data, count=29)  # the window starts at entry 3
    problem = full(data).problem
    assert problem is not None
    assert (problem.check, problem.seq) == ("leaf-hash", 3)


class CountingReader:
    """A read view that counts the reads made through it (each item of a scan is one)."""

    def __init__(self, reader: StoreReader) -> None:
        self._reader = reader
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._reader, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            result = method(*args, **kwargs)
            if isinstance(result, Iterator):
                return self._counted(result)
            return result

        return counted

    def _counted(self, items: Iterator[Any]) -> Iterator[Any]:
        for item in items:
            self.reads += 1
            yield item


def tail_reads(data: Path, count: int) -> int:
    with reading(data) as reader:
        counting = CountingReader(reader)
        check_tail(counting, count=count)  # type: ignore[arg-type]
        return counting.reads


@pytest.mark.skipif(
    bool(native.compiled_modules()),
    reason="counts reads through a stand-in reader, which compiled code refuses; "
    "make test runs it again from the sources (docs/adr/0057)",
)
def test_the_tail_check_costs_the_same_however_long_the_log(tmp_path: Path) -> None:
    reads = []
    for batches in (0, 4):
        town = Town.from_seed(b"long log")
        data = tmp_path / f"data-{batches}"
        with create_log(data, town, setup=True) as log:
            for _ in range(batches):
                awards = [town.award(f"resident-{n}", "clean-pond") for n in range(250)]
                log.append(awards, now_ms=town.now_ms)
            log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
        reads.append(tail_reads(data, 8))
    short, long = reads  # 12 and 1012 entries
    # 84x the entries; what grows is the tree's height (4 -> 10 levels): a few reads each.
    assert long - short <= 4 * (math.ceil(math.log2(1012)) - math.ceil(math.log2(12)))
    assert long < 2 * short


# ---------------------------------------------------------------------------
# Damage the chain and the tree cannot see: a consistent, re-signed log


REFORGED: dict[str, tuple[Callable[[Town, Path], Callable[[int, Leaf], Leaf]], str, int]] = {
    "a broken link": (
        lambda town, data: (
            lambda seq, leaf: leaf._replace(prev=bytes(31) + b"\x01") if seq == 17 else leaf
        ),
        "chain",
        17,
    ),
    "a link from the first entry": (
        lambda town, data: lambda seq, leaf: leaf._replace(prev=b"\x01" * 32) if seq == 0 else leaf,
        "chain",
        0,
    ),
    "time going back": (
        lambda town, data: (
            lambda seq, leaf: leaf._replace(time=leaf.time - 1) if seq == 21 else leaf
        ),
        "time",
        21,
    ),
    "a leaf at the wrong position": (
        lambda town, data: lambda seq, leaf: leaf._replace(seq=19) if seq == 20 else leaf,
        "leaf-seq",
        20,
    ),
    "a bad entry signature": (
        lambda town, data: replace_envelope(14, corrupt_signature(leaf_of(data, 14).envelope)),
        "signature",
        14,
    ),
    "an entry id used twice": (
        lambda town, data: replace_envelope(
            22, town.award("resident-9", "clean-pond", entry_id=_id_of(data, 12))
        ),
        "duplicate-id",
        22,
    ),
    "an award for another rule": (  # every rule holds; the tables no longer match
        lambda town, data: replace_envelope(
            24, town.award("resident-1", "epidemic-duty", entry_id=_id_of(data, 24))
        ),
        "balances",
        27,  # resident-1's balance; its last entry is the council award
    ),
}


def _id_of(data: Path, seq: int) -> bytes:
    leaf = leaf_of(data, seq)
    return decode_body(codec.decode(leaf.envelope)[0]).id


@pytest.mark.parametrize("case", REFORGED)
def test_full_check_finds_what_a_consistent_forgery_hides(
    data: Path, town: Town, case: str
) -> None:
    make_change, check, seq = REFORGED[case]
    reforge(data, town.log_signer, make_change(town, data))
    problem = full(data).problem
    assert problem is not None
    assert (problem.check, problem.seq) == (check, seq), problem.describe()
    assert check in CHECKS or check in RULE_CHECKS


# ---------------------------------------------------------------------------
# Damage to single records, through both checks


Change = Callable[[RawTables], object]


def _put(table: str, key: bytes, value: bytes) -> Change:
    return lambda tables: tables.put(table, key, value)


def _delete(table: str, key: bytes) -> Change:
    return lambda tables: tables.delete(table, key)


def _copy_checkpoint(source: int, target: int) -> Change:
    return lambda tables: tables.put(
        "checkpoints", int_key(target), tables.get("checkpoints", int_key(source)) or b""
    )


def _edit_meta_checkpoint(tables: RawTables) -> None:
    note = tables.get("meta", META_CHECKPOINT) or b""
    tables.put("meta", META_CHECKPOINT, note.replace(b"\n32\n", b"\n33\n"))


@dataclasses.dataclass(frozen=True)
class Damage:
    change: Change
    check: str
    seq: int | None
    words: str
    tail: bool = True  # whether the tail check (the open, here of all 32 entries) sees it


DAMAGE: dict[str, Damage] = {
    "meta size one less": Damage(
        _put("meta", META_SIZE, int_key(31)),
        "leaves",
        31,
        "the size recorded in the metadata is 31 entries, but 32 leaves are stored",
    ),
    "meta size one more": Damage(
        _put("meta", META_SIZE, int_key(33)), "leaves", 32, "from here on are missing"
    ),
    "meta size of 7 bytes": Damage(
        _put("meta", META_SIZE, bytes(5) + b"\x00\x20"), "meta", None, "not an 8-byte number"
    ),
    "last leaf hash": Damage(
        _put("meta", META_LAST_LEAF_HASH, bytes(32)), "head", 31, "last leaf hash"
    ),
    "last time": Damage(_put("meta", META_LAST_TIME, int_key(5)), "head", 31, "as the last time"),
    "latest checkpoint in the metadata": Damage(
        _edit_meta_checkpoint, "head", 31, "latest checkpoint in the metadata"
    ),
    "latest checkpoint in the table": Damage(
        _copy_checkpoint(31, 32), "checkpoint", 31, "signed for size 31"
    ),
    "a checkpoint beyond the log": Damage(
        _copy_checkpoint(32, 40), "checkpoint", None, "not a tree size of this log"
    ),
    "no checkpoint for the size": Damage(
        _delete("checkpoints", int_key(32)), "checkpoint", None, "no checkpoint is stored"
    ),
    "a leaf missing": Damage(
        _delete("leaves", int_key(20)), "leaves", 20, "first entry whose leaf is missing"
    ),
    "a leaf beyond the log": Damage(
        _put("leaves", int_key(32), b"\x90"), "leaves", 32, "leaves lie beyond it"
    ),
    "a leaf that is not msgpack": Damage(
        _put("leaves", int_key(25), b"\xc1"), "leaf-format", 25, "not valid format v1"
    ),
    "a border node": Damage(
        _put("nodes", node_key(3, 3), bytes(32)), "tree", 24, "entries 24 to 31"
    ),
    "the root node": Damage(_put("nodes", node_key(5, 0), bytes(32)), "tree", 0, "entries 0 to 31"),
    "an inner node": Damage(_put("nodes", node_key(2, 1), bytes(32)), "tree", 4, "entries 4 to 7"),
    "a node missing": Damage(
        _delete("nodes", node_key(1, 5)), "tree", 10, "lacks its node over entries 10 to 11"
    ),
    "a node too many": Damage(
        _put("nodes", node_key(0, 99), bytes(32)), "tree", None, "does not belong"
    ),
    "a short node": Damage(
        _put("nodes", node_key(1, 2), bytes(31)), "tree", 4, "node over entries 4 to 5"
    ),
    # What the open does not look at: history before the newest entries, extra records.
    "an old checkpoint moved": Damage(
        _copy_checkpoint(11, 15), "checkpoint", 14, "signed for size 11", tail=False
    ),
    "an unknown metadata record": Damage(
        _put("meta", b"owner", b"someone"), "meta", None, "unknown record b'owner'", tail=False
    ),
    "the town configuration": Damage(
        _put(
            "meta",
            META_CONFIG,
            seal(
                "meta",
                META_CONFIG,
                0,
                config_to_bytes(dataclasses.replace(WENDENG_CONFIG, base=900)),
            ),
        ),
        "config",
        None,
        "not the genesis's",
        tail=False,
    ),
    "the town configuration unsealed": Damage(
        _put("meta", META_CONFIG, config_to_bytes(WENDENG_CONFIG)),
        "config",
        None,
        "is damaged (its checksum does not match)",
        tail=False,
    ),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_each_damaged_record_is_named(data: Path, case: str) -> None:
    damage = DAMAGE[case]
    with raw_write(data) as tables:
        damage.change(tables)
    problem = full(data).problem
    assert problem is not None
    assert (problem.check, problem.seq) == (damage.check, damage.seq), problem.describe()
    assert damage.words in problem.message
    if damage.tail:
        with pytest.raises(IntegrityError, match=rf"\[{damage.check}\]") as refused:
            Log.open(data)
        assert refused.value.seq == damage.seq
    else:
        Log.open(data).close()


# ---------------------------------------------------------------------------
# The derived tables, re-derived by the replay


def _resealed(table: str, key: bytes, edit: Callable[[bytes], bytes]) -> Change:
    """A change of a record's payload, sealed again as the store would (a consistent
    forgery, which only the replay can see through)."""

    def change(tables: RawTables) -> None:
        payload, seq = unseal(tables.get(table, key) or b"")
        tables.put(table, key, seal(table, key, seq, edit(payload)))

    return change


def _balance_change(account: str, earned: int) -> Change:
    return _resealed(
        "balances",
        account.encode(),
        lambda payload: Balance.from_bytes(payload)._replace(earned=earned).to_bytes(),
    )


_key_change = _resealed(
    "keys",
    Town.from_seed(b"integrity tests").grid.key_id,
    lambda payload: dataclasses.replace(
        KeyRecord.from_bytes(payload), roles=frozenset({"grid", "council"})
    ).to_bytes(),
)
_rule_change = _resealed(
    "rules",
    b"clean-pond",
    lambda payload: dataclasses.replace(RuleRecord.from_bytes(payload), points=50).to_bytes(),
)
_target_change = _resealed(
    "targets",
    int_key(11),
    lambda payload: TargetRecord.from_bytes(payload)._replace(reversed_by=None).to_bytes(),
)


def _flip(table: str, key: bytes, position: int = 0) -> Change:
    """One bit of a stored record flipped, as a bad disk would."""

    def change(tables: RawTables) -> None:
        value = bytearray(tables.get(table, key) or b"")
        value[position] ^= 0x20
        tables.put(table, key, bytes(value))

    return change


def _reseq(table: str, key: bytes, seq: int) -> Change:
    """A record sealed again under another seq: sound, but not the log's last change."""

    def change(tables: RawTables) -> None:
        payload, _ = unseal(tables.get(table, key) or b"")
        tables.put(table, key, seal(table, key, seq, payload))

    return change


TABLE_DAMAGE: dict[str, tuple[Callable[[Path], Change], str, Any, str]] = {
    "a balance changed": (
        lambda data: _balance_change("resident-1", 999),
        "balances",
        lambda data: last_seq_of(data, "resident-1"),
        "stored: earned 999, redeemed 0, 5 entries; the log gives: earned 40",
    ),
    "a balance nobody earned": (
        lambda data: _put("balances", b"ghost", Balance(5, 0, 1).to_bytes()),
        "balances",
        None,
        "account ghost that no entry of the log created",
    ),
    "a balance removed": (
        lambda data: _delete("balances", b"resident-3"),
        "balances",
        lambda data: last_seq_of(data, "resident-3"),
        "lacks the record for account resident-3",
    ),
    "a balance's bit flipped": (
        lambda data: _flip("balances", b"resident-1", 1),
        "balances",
        lambda data: last_seq_of(data, "resident-1"),
        "account resident-1 is damaged: its checksum does not match",
    ),
    "a balance's seq changed": (
        lambda data: _reseq("balances", b"resident-1", 3),
        "balances",
        lambda data: last_seq_of(data, "resident-1"),
        "names entry 3 as its last change; the log's entries give entry",
    ),
    "a staff key's roles": (lambda data: _key_change, "keys", 1, "staff key"),
    "a staff key's bit flipped": (
        lambda data: _flip("keys", Town.from_seed(b"integrity tests").grid.key_id, -1),
        "keys",
        1,
        "is damaged: its checksum does not match",
    ),
    "a staff key nobody registered": (
        lambda data: _put(
            "keys",
            b"\x01" * 8,
            KeyRecord(b"\x01" * 8, bytes(32), "mallory", frozenset({"admin"}), 3).to_bytes(),
        ),
        "keys",
        None,
        "no entry of the log created",
    ),
    "a rule's points": (lambda data: _rule_change, "rules", 5, "rule 'clean-pond'"),
    "a rule's bit flipped": (
        lambda data: _flip("rules", b"clean-pond", 5),
        "rules",
        5,
        "rule 'clean-pond' is damaged",
    ),
    "a rule nobody set": (
        lambda data: _put(
            "rules",
            b"free-money",
            RuleRecord("free-money", "t", "m", 500, False, True, 9).to_bytes(),
        ),
        "rules",
        None,
        "rule 'free-money'",
    ),
    "a reversal forgotten": (lambda data: _target_change, "targets", 11, "award or redemption 11"),
    "a target's bit flipped": (
        lambda data: _flip("targets", int_key(11), -20),
        "targets",
        11,
        "award or redemption 11 is damaged",
    ),
    "a target's seq changed": (
        lambda data: _reseq("targets", int_key(11), 11),
        "targets",
        11,
        "names entry 11 as its last change",
    ),
    "a target nobody made": (
        lambda data: _put(
            "targets", int_key(7), TargetRecord("award", "x", 5, "clean-pond").to_bytes()
        ),
        "targets",
        7,
        "no entry of the log created",
    ),
    "an entry id missing": (
        lambda data: _delete("ids", _id_of(data, 20)),
        "ids",
        20,
        "it holds nothing",
    ),
    "an entry id sent elsewhere": (
        lambda data: _put("ids", _id_of(data, 20), seal("ids", _id_of(data, 20), 5)),
        "ids",
        20,
        "sends this entry's id",
    ),
    "an entry id pointing ahead": (
        lambda data: _put("ids", _id_of(data, 20), seal("ids", _id_of(data, 20), 25)),
        "ids",
        20,
        "it holds entry 25",
    ),
    "an entry id's bit flipped": (
        lambda data: _flip("ids", _id_of(data, 20), 3),
        "ids",
        20,
        "it holds a damaged record",
    ),
    "an entry id too many": (
        lambda data: _put("ids", b"\x07" * 16, int_key(3)),
        "ids",
        None,
        "holds 33 ids for a log of 32 entries",
    ),
    "an account link missing": (
        lambda data: _delete("account_links", int_key(17)),
        "account-entries",
        17,
        "lack this entry's link of account resident-2",
    ),
    "an account link damaged": (
        lambda data: _put("account_links", int_key(17), b"x"),
        "account-entries",
        17,
        "hold a damaged record of this entry's link of account resident-2",
    ),
    "an account link's bit flipped": (
        lambda data: _flip("account_links", int_key(17), 7),
        "account-entries",
        17,
        "hold a damaged record",
    ),
    "an account link sealed with another entry": (
        lambda data: _link(17, account_links(("resident-2", 13)), sealed_as=16),
        "account-entries",
        17,
        "hold a damaged record",
    ),
    "an account link that skips an entry": (
        lambda data: _link(17, account_links(("resident-2", None))),
        "account-entries",
        17,
        "links account resident-2 after nothing; the log gives account resident-2 after entry 13",
    ),
    "an account link to another account": (
        lambda data: _link(17, account_links(("resident-3", 13))),
        "account-entries",
        17,
        "links account resident-3 after entry 13",
    ),
    "an account link too many in an entry": (
        lambda data: _link(17, account_links(("resident-2", 13), ("resident-9", None))),
        "account-entries",
        17,
        "account resident-9 after nothing; the log gives account resident-2 after entry 13",
    ),
    "an account link for an entry that links none": (
        lambda data: _link(3, account_links(("resident-2", None))),
        "account-entries",
        3,
        "hold a record for entry 3, which links no account",
    ),
    "an account link beyond the log": (
        lambda data: _link(40, account_links(("resident-2", 25))),
        "account-entries",
        40,
        "hold a record for entry 40, which links no account or is not in the log",
    ),
    "an account link under a malformed key": (
        lambda data: _put("account_links", b"\x00" * 7, b""),
        "account-entries",
        None,
        "malformed key 00000000000000",
    ),
    "an account's latest entry missing": (
        lambda data: _delete("account_heads", b"resident-2"),
        "account_heads",
        25,
        "lacks the record for account resident-2's latest entry",
    ),
    "an account's count of entries wrong": (
        lambda data: _head("resident-2", 25, 5),
        "account_heads",
        25,
        "the stored record for account resident-2's latest entry is not what the log's",
    ),
    "an account's latest entry wrong": (
        lambda data: _head("resident-2", 21, 4),
        "account_heads",
        25,
        "names entry 21 as its last change; the log's entries give entry 25",
    ),
    "an account's latest entry's bit flipped": (
        lambda data: _flip("account_heads", b"resident-2", 2),
        "account_heads",
        25,
        "is damaged: its checksum does not match",
    ),
    "an account's latest entry nobody made": (
        lambda data: _head("resident-9", 3, 1),
        "account_heads",
        None,
        "holds a record for account resident-9's latest entry that no entry",
    ),
}


def _link(seq: int, payload: bytes, *, sealed_as: int | None = None) -> Change:
    key = int_key(seq)
    return _put("account_links", key, seal("account_links", key, sealed_as or seq, payload))


def _head(account: str, latest: int, count: int) -> Change:
    key = account.encode()
    return _put("account_heads", key, seal("account_heads", key, latest, account_head(count)))


@pytest.mark.parametrize("case", TABLE_DAMAGE)
def test_each_derived_table_is_compared_with_the_replay(data: Path, case: str) -> None:
    make_change, check, seq, words = TABLE_DAMAGE[case]
    change = make_change(data)
    expected_seq = seq(data) if callable(seq) else seq
    with raw_write(data) as tables:
        change(tables)
    problem = full(data).problem
    assert problem is not None
    assert (problem.check, problem.seq) == (check, expected_seq), problem.describe()
    assert words in problem.message
    assert check in CHECKS
    Log.open(data).close()  # the tables are the full check's business, not the open's


#: Each account's latest linked entry in the template log, and the entries linking
#: accounts (11 to 30: the awards, redemptions, objections and reversals).
LATEST_LINK = {"resident-0": 30, "resident-1": 27, "resident-2": 25, "resident-3": 26}
LINKING = range(11, 31)


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(choices=st.data())
def test_every_change_to_the_entry_lists_is_named(
    template: tuple[Path, Town], tmp_path_factory: pytest.TempPathFactory, choices: st.DataObject
) -> None:
    """A byte of an ``account_links`` or ``account_heads`` record changed, a record cut
    short, dropped, or copied under another key: the full check finds it and names
    the entry (a link's own seq, a head's latest entry)."""
    table = choices.draw(st.sampled_from(["account_links", "account_heads"]), label="table")
    if table == "account_links":
        seq = choices.draw(st.sampled_from(LINKING), label="entry")
        key, named = int_key(seq), seq
    else:
        account = choices.draw(st.sampled_from(sorted(LATEST_LINK)), label="account")
        key, named = account.encode(), LATEST_LINK[account]
    data = tmp_path_factory.mktemp("lists") / "data"
    _copy_tree(template[0], data)
    with raw_write(data) as tables:
        value = tables.get(table, key) or b""
        how = choices.draw(st.sampled_from(["byte", "cut", "drop", "copy"]), label="how")
        if how == "byte":
            position = choices.draw(st.integers(0, len(value) - 1), label="position")
            changed = bytearray(value)
            changed[position] ^= choices.draw(st.integers(1, 255), label="xor")
            tables.put(table, key, bytes(changed))
        elif how == "cut":
            tables.put(table, key, value[: choices.draw(st.integers(0, len(value) - 1))])
        elif how == "drop":
            tables.delete(table, key)
        else:  # another record's bytes, as a misdirected write would leave them
            others = [other for other in tables.keys(table) if other != key]
            tables.put(table, key, tables.get(table, choices.draw(st.sampled_from(others))) or b"")
    problem = full(data).problem
    assert problem is not None, how
    assert problem.check == ("account-entries" if table == "account_links" else table)
    assert problem.seq == named, problem.describe()


def test_the_replay_holds_no_per_entry_index(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry ids and account links are checked against the store, not kept in memory."""
    states: list[Any] = []
    original = fullcheck._ReplayState.__init__

    def keep(self: Any, reader: StoreReader) -> None:
        original(self, reader)
        states.append(self)

    monkeypatch.setattr(fullcheck._ReplayState, "__init__", keep)
    assert full(data).ok
    (state,) = states
    assert state.entry_ids == {}
    assert state.account_entries == {}
    assert state.link_check.heads == {
        "resident-0": (30, 7),
        "resident-1": (27, 5),
        "resident-2": (25, 4),
        "resident-3": (26, 4),
    }
    assert len(state.targets) == 18
