"""A flipped bit in the node's state is caught before the node signs anything.

The state the node derives from its log (balances, staff keys, rules, the awards and
redemptions a reversal looks up, the entry-id index, the accounts' entry lists and
the town configuration) is what the points semantics decides each new entry on. The
tail check run on every open does not read it; so every record is sealed with a
checksum bound to its table, its key and the entry that last changed it, and the
store checks it on every read.

Each case here builds a real log on real LMDB, flips one bit of one record with a
raw LMDB write (as a bad disk or a careless edit would), opens the log as a node
does (the open still succeeds), and appends the batch that reads that record. The
append must be refused with ``StateDamageError`` naming the table and the record,
nothing may be written or signed, every later write must be refused too, and the
log's reads (checkpoint, leaves, proofs) must go on. The first case is the one that
was found: a balance of 93 read as 125, which let a 120-point redemption through.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import lmdb
import pytest
from tests.builders import RuleSpec, Town, create_log
from tests.rawstore import (
    META_CONFIG,
    SEALED_TABLES,
    int_key,
    month_count_key,
    raw_tables,
    seal,
    unseal,
)

from redlist.ledger import codec, merkle
from redlist.ledger.entry import decode_body
from redlist.ledger.errors import StateDamageError, StoreError
from redlist.ledger.fullcheck import check_full
from redlist.ledger.integrity import Report
from redlist.ledger.log import Log
from redlist.ledger.state import Balance
from redlist.ledger.store import ENV_DIR_NAME, LmdbStore
from redlist.ledger.storelayout import SEAL_SIZE
from redlist.ledger.storelayout import seal as store_seal
from redlist.ledger.storelayout import unseal as store_unseal

#: A rule whose award of 3 makes the 93 points of the finding.
HARVEST = RuleSpec("harvest", "Helped with the autumn harvest", "public-service", 31)
#: The award that ``reverse`` and ``ids`` cases go back to (resident-2, clean-pond).
AWARD_SEQ = 12
SIZE = 14


@dataclasses.dataclass(frozen=True)
class Built:
    data: Path
    town: Town
    award_envelope: bytes  # the envelope of entry AWARD_SEQ


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    town = Town.from_seed(b"state tamper")
    data = tmp_path_factory.mktemp("built") / "data"
    with create_log(data, town, setup=True) as log:
        log.append([town.set_rule(HARVEST)], now_ms=town.now_ms)
        award = town.award("resident-2", "clean-pond")
        log.append(
            [award, town.award("resident-1", "harvest", qty=3)],
            now_ms=town.now_ms,
        )
        assert log.size == SIZE
        assert log.account("resident-1").spendable == 93
    return Built(data, town, award)


@pytest.fixture
def data(built: Built, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(built.data, copy)
    return copy


def _entry_id(envelope: bytes) -> bytes:
    return decode_body(codec.decode(envelope, "envelope")[0]).id


@dataclasses.dataclass(frozen=True)
class Case:
    table: str
    key: Callable[[Built], bytes]
    record: str  # how the refusal names the record
    batch: Callable[[Built], list[bytes]]  # a batch whose decision reads the record
    #: The byte of the stored value whose bit 5 is flipped, or the text whose first
    #: byte is (a flip that still decodes: only the seal can tell).
    position: int | bytes = 1


CASES = {
    "a balance, 93 read as 125": Case(
        "balances",
        lambda built: b"resident-1",
        "account resident-1",
        lambda built: [built.town.redeem("resident-1", 120)],
    ),
    "a staff key": Case(
        "keys",
        lambda built: built.town.grid.key_id,
        "staff key",
        lambda built: [built.town.award("resident-3", "clean-pond")],
        position=b"grid-wang",
    ),
    "a rule": Case(
        "rules",
        lambda built: b"clean-pond",
        "rule 'clean-pond'",
        lambda built: [built.town.award("resident-3", "clean-pond")],
        position=3,
    ),
    "a reversal's target": Case(
        "targets",
        lambda built: int_key(AWARD_SEQ),
        f"award or redemption {AWARD_SEQ}",
        lambda built: [built.town.reverse(AWARD_SEQ)],
        position=2,
    ),
    "an entry id": Case(
        "ids",
        lambda built: _entry_id(built.award_envelope),
        "entry id",
        lambda built: [built.award_envelope],  # a resubmission looks its id up
        position=0,
    ),
    "the town configuration": Case(
        "meta",
        lambda built: META_CONFIG,
        "'config'",
        lambda built: [built.town.award("resident-3", "clean-pond")],
        position=b"AAA",
    ),
    "a monthly count": Case(
        "month_counts",
        lambda built: month_count_key("resident-1", "2026-01", "harvest"),
        "account resident-1's count under rule 'harvest' in 2026-01",
        lambda built: [built.town.award("resident-1", "harvest")],
        position=b"harvest",
    ),
    "an account's latest entry": Case(
        "account_heads",
        lambda built: b"resident-2",
        "account resident-2's latest entry",
        lambda built: [built.town.award("resident-2", "clean-pond")],  # links after it
        position=7,  # the count's last byte
    ),
    "a balance's seq": Case(
        "balances",
        lambda built: b"resident-1",
        "account resident-1",
        lambda built: [built.town.redeem("resident-1", 10)],
        position=-SEAL_SIZE + 7,  # the last byte of the seq
    ),
    "a balance's checksum": Case(
        "balances",
        lambda built: b"resident-1",
        "account resident-1",
        lambda built: [built.town.award("resident-1", "clean-pond")],
        position=-1,
    ),
}


def flip(data: Path, table: str, key: bytes, position: int | bytes) -> bytes:
    """Flip bit 5 of byte ``position`` of a stored record; return the new value."""
    with raw_tables(data / ENV_DIR_NAME) as tables:
        value = bytearray(tables.get(table, key) or b"")
        assert value, f"no record {key!r} in {table}"
        if isinstance(position, bytes):
            position = value.index(position)
        value[position] ^= 0x20
        tables.put(table, key, bytes(value))
    return bytes(value)


def test_every_state_table_has_a_case() -> None:
    covered = {case.table for case in CASES.values()} | {"account_links"}  # below
    assert covered == set(SEALED_TABLES)


def test_the_flipped_balance_would_have_allowed_the_redemption(data: Path) -> None:
    """Without its seal, the damaged record reads as a balance that covers 120 points."""
    value = flip(data, "balances", b"resident-1", 1)
    payload, _ = unseal(value)
    assert Balance.from_bytes(payload) == Balance(125, 0, 1)
    assert Balance.from_bytes(payload).spendable >= 120


@pytest.mark.parametrize("case", CASES)
def test_a_flipped_bit_is_caught_before_anything_is_signed(
    built: Built, data: Path, case: str
) -> None:
    spec = CASES[case]
    flip(data, spec.table, spec.key(built), spec.position)
    with Log.open(data) as log:  # the open's tail check does not read the state
        size, checkpoint = log.size, log.checkpoint()
        with pytest.raises(StateDamageError) as refused:
            log.append(spec.batch(built), now_ms=built.town.now_ms + 1)
        assert refused.value.table == spec.table
        assert spec.record in refused.value.record
        message = refused.value.diagnostics()
        assert f"the {spec.table} record of {refused.value.record} does not match" in message
        assert "takes no more writes" in message
        assert (log.size, log.checkpoint()) == (size, checkpoint)  # nothing signed

        # The store takes no more writes, even of entries that never read the record...
        harmless = [built.town.add_key(built.town.generate().grid, "newcomer", ["grid"])]
        with pytest.raises(StateDamageError, match="does not match its checksum"):
            log.append(harmless, now_ms=built.town.now_ms + 2)
        assert (log.size, log.checkpoint()) == (size, checkpoint)

        # ...while the log itself reads on.
        leaves = dict(log.leaves(0, size))
        assert list(leaves) == list(range(size))
        leaf_hash = merkle.leaf_hash(leaves[AWARD_SEQ])
        proof = log.inclusion_proof(AWARD_SEQ, size)
        merkle.verify_inclusion(leaf_hash, AWARD_SEQ, size, proof, checkpoint.checkpoint.root)
        assert log.checkpoint_at(size) == checkpoint

    # The full check names the same record; the log itself is sound.
    report = _full(data)
    assert report.problem is not None
    check = "config" if spec.table == "meta" else spec.table
    assert report.problem.check == check
    assert "damaged" in report.problem.message


def test_a_damaged_account_link_never_decides_an_entry_and_the_full_check_names_it(
    built: Built, data: Path
) -> None:
    """An entry's links are only written on the write path (statements and the full
    check read them; a new link reads the account's head, not the link before), so a
    damaged one cannot make the node sign anything: appends go on."""
    flip(data, "account_links", int_key(AWARD_SEQ), 0)
    with Log.open(data) as log:
        log.append([built.town.award("resident-2", "clean-pond")], now_ms=1)
    report = _full(data)
    assert report.problem is not None
    assert (report.problem.check, report.problem.seq) == ("account-entries", AWARD_SEQ)
    assert "damaged record" in report.problem.message


def test_a_statement_that_meets_a_damaged_link_names_it(built: Built, data: Path) -> None:
    """A statement walks the account's links back from its latest entry: one it cannot
    trust is damage, named, never a shorter list."""
    flip(data, "account_links", int_key(AWARD_SEQ), 3)
    with Log.open(data) as log:
        with pytest.raises(StateDamageError) as refused:
            log.account("resident-2")
        assert refused.value.table == "account_links"
        assert refused.value.record == f"the accounts linked by entry {AWARD_SEQ}"
        assert log.account("resident-1").spendable == 93  # other accounts read on


def test_a_balance_lost_with_its_key_is_damage_not_a_fresh_account(
    built: Built, data: Path
) -> None:
    """A damaged key makes a record vanish, which no seal can show: resident-1's 93
    points would read as a new account's 0, and a deduction would start from there."""
    with raw_tables(data / ENV_DIR_NAME) as tables:
        tables.delete("balances", b"resident-1")
    with Log.open(data) as log:
        size = log.size
        with pytest.raises(StateDamageError, match="is missing although the account has"):
            log.append([built.town.award("resident-1", "clean-pond")], now_ms=built.town.now_ms)
        assert log.size == size
        # A resident never seen before still starts from nothing.
        with pytest.raises(StateDamageError):  # the store takes no more writes
            log.append([built.town.award("resident-9", "clean-pond")], now_ms=built.town.now_ms)
    with Log.open(data) as reopened:
        reopened.append([built.town.award("resident-9", "clean-pond")], now_ms=built.town.now_ms)
        assert reopened.size == size + 1


@pytest.mark.parametrize("kind", ["award", "objection", "statement"])
def test_a_head_lost_is_damage_not_a_new_list(built: Built, data: Path, kind: str) -> None:
    """The other way round: resident-2's head record vanishes. Read as "no entries
    yet", its next entry would start a new list and every earlier one (the award of
    entry 12) would drop out of its statements for good, while its balance still
    counts them; a statement would list nothing beside a balance of 5. A balance
    stored without a head is damage, named, before anything is signed."""
    with raw_tables(data / ENV_DIR_NAME) as tables:
        tables.delete("account_heads", b"resident-2")
    with Log.open(data) as log:
        size = log.size
        with pytest.raises(StateDamageError) as refused:
            if kind == "statement":
                log.account("resident-2")
            else:
                entry = (
                    built.town.award("resident-2", "clean-pond")
                    if kind == "award"
                    else built.town.objection(AWARD_SEQ)
                )
                log.append([entry], now_ms=built.town.now_ms)
        assert refused.value.table == "account_heads"
        assert refused.value.record == "account resident-2's latest entry"
        assert "is missing although the account has a balance" in refused.value.diagnostics()
        assert log.size == size
        with pytest.raises(StateDamageError):  # the store takes no more writes
            log.append([built.town.award("resident-9", "clean-pond")], now_ms=built.town.now_ms)


def test_a_reopened_store_finds_the_damage_again(built: Built, data: Path) -> None:
    """The stop lasts while the store is open; a restart meets the record again."""
    flip(data, "balances", b"resident-1", 1)
    for _ in range(2):
        with Log.open(data) as log, pytest.raises(StateDamageError):
            log.append([built.town.redeem("resident-1", 120)], now_ms=built.town.now_ms + 1)
    assert _full(data).problem is not None


def test_a_damaged_record_read_outside_an_append_stops_the_writes_too(
    built: Built, data: Path
) -> None:
    flip(data, "balances", b"resident-1", 1)
    with Log.open(data) as log:
        with pytest.raises(StateDamageError, match="account resident-1"):
            log.account("resident-1")
        assert log.account("resident-2").earned == 5  # other records read on
        with pytest.raises(StateDamageError, match="account resident-1"):
            log.append([built.town.award("resident-3", "clean-pond")], now_ms=1)


def test_a_record_moved_under_another_key_or_table_fails_its_seal() -> None:
    sealed = store_seal("balances", b"resident-1", 12, Balance(93, 0, 1).to_bytes())
    assert store_unseal("balances", b"resident-1", sealed) == (Balance(93, 0, 1).to_bytes(), 12)
    assert store_unseal("balances", b"resident-2", sealed) is None
    assert store_unseal("targets", b"resident-1", sealed) is None
    assert store_unseal("balances", b"resident-1", sealed[:-1]) is None
    assert store_unseal("balances", b"resident-1", b"") is None


@pytest.mark.parametrize("table", SEALED_TABLES)
def test_every_single_bit_flip_of_a_sealed_record_fails_its_seal(table: str) -> None:
    key, payload = b"resident-1\x00" + int_key(7), Balance(93, 0, 1).to_bytes()
    sealed = store_seal(table, key, 7, payload)
    assert sealed == seal(table, key, 7, payload)  # the layout as documented
    for bit in range(len(sealed) * 8):
        damaged = bytearray(sealed)
        damaged[bit // 8] ^= 1 << (bit % 8)
        assert store_unseal(table, key, bytes(damaged)) is None, bit


def _full(data: Path) -> Report:
    store = LmdbStore.open(data / ENV_DIR_NAME, readonly=True)
    try:
        with store.read() as reader:
            return check_full(reader)
    finally:
        store.close()


def test_an_old_format_store_is_refused_with_advice(data: Path) -> None:
    with raw_tables(data / ENV_DIR_NAME) as tables:
        tables.put("meta", b"format", b"redlist-ledger/1")
    for readonly in (False, True):
        with pytest.raises(StoreError, match="earlier format redlist-ledger/1") as refused:
            Log.open(data, readonly=readonly)
        assert "no migration" in str(refused.value)
        assert "redlist-node init" in str(refused.value)


def test_a_format_3_store_without_the_link_tables_is_refused_with_advice(data: Path) -> None:
    """Format 3 kept the accounts' entry lists in one table; its store lacks the link
    tables, and is refused for its format, not called damaged."""
    env = lmdb.open(str(data / ENV_DIR_NAME), max_dbs=16)
    try:
        with env.begin(write=True) as txn:
            for name in (b"account_links", b"account_heads"):
                txn.drop(env.open_db(name, txn=txn), delete=True)
            txn.put(b"format", b"redlist-ledger/3", db=env.open_db(b"meta", txn=txn))
    finally:
        env.close()
    for readonly in (False, True):
        with pytest.raises(StoreError, match="earlier format redlist-ledger/3"):
            Log.open(data, readonly=readonly)
