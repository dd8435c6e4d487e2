"""The writer's memory of sealed state records (``sealmemo``) answers only for its bytes.

An append takes a balance, a monthly count or an account's entry-list head from the
memory only when the stored bytes are exactly those it remembers; any other bytes,
a damaged record or a sound but older one put back while the node runs, are opened
as they would be without it. The records are changed here by another process (as a
bad disk or a careless edit would) while the log stays open in this one, after an
append has made the memory remember them.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest
from tests.builders import SMALL_ID_INDEX, Town, create_log, id_index_shape
from tests.rawstore import month_count_key

from redlist.ledger.entry import decode_body
from redlist.ledger.envelope import Envelope
from redlist.ledger.errors import StateDamageError
from redlist.ledger.log import Log
from redlist.ledger.sealmemo import SealedMemo
from redlist.ledger.store import ENV_DIR_NAME

REPO = Path(__file__).resolve().parents[2]


def test_a_record_is_remembered_for_its_exact_bytes_only() -> None:
    memo = SealedMemo()
    memo.balances.put(b"resident-1", b"sealed bytes", (5, 0, 1))
    assert memo.balances.get(b"resident-1", b"sealed bytes") == (5, 0, 1)
    assert memo.balances.get(b"resident-1", b"sealed byteS") is None
    assert memo.balances.get(b"resident-2", b"sealed bytes") is None
    assert memo.month_counts.get(b"resident-1", b"sealed bytes") is None  # its own table
    memo.balances.put(b"resident-1", b"newer bytes", (10, 0, 2))
    assert memo.balances.get(b"resident-1", b"sealed bytes") is None
    assert memo.balances.get(b"resident-1", b"newer bytes") == (10, 0, 2)


def test_recall_opens_only_bytes_it_does_not_remember_and_remembers_them() -> None:
    memo = SealedMemo(capacity=2)
    opened: list[tuple[bytes, bytes]] = []

    def open_record(key: bytes, stored: bytes) -> tuple[int, int]:
        opened.append((key, stored))
        if stored == b"damaged":
            raise StateDamageError("account_heads", key.decode())
        return len(opened), 1

    assert memo.account_heads.recall(b"a1", b"v1", open_record) == (1, 1)
    assert memo.account_heads.recall(b"a1", b"v1", open_record) == (1, 1)  # remembered
    assert memo.account_heads.recall(b"a1", b"w1", open_record) == (2, 1)  # other bytes
    assert memo.account_heads.get(b"a1", b"w1") == (2, 1)
    with pytest.raises(StateDamageError):
        memo.account_heads.recall(b"a1", b"damaged", open_record)
    assert memo.account_heads.get(b"a1", b"w1") == (2, 1)  # a failed opening remembers nothing
    assert opened == [(b"a1", b"v1"), (b"a1", b"w1"), (b"a1", b"damaged")]
    memo.account_heads.recall(b"a2", b"v2", open_record)
    memo.account_heads.recall(b"a3", b"v3", open_record)  # a third: all are forgotten
    assert len(memo.account_heads) == 0


def test_the_memory_is_bounded_and_starts_again_when_full() -> None:
    memo = SealedMemo(capacity=3)
    for number in range(3):
        memo.account_heads.put(b"a%d" % number, b"v%d" % number, (number, 1))
    memo.account_heads.put(b"a1", b"w1", (9, 2))  # written again: still three
    assert len(memo.account_heads) == 3
    assert memo.account_heads.get(b"a1", b"w1") == (9, 2)
    memo.account_heads.put(b"a3", b"v3", (3, 1))  # a fourth: all are forgotten
    assert len(memo.account_heads) == 0
    assert memo.account_heads.get(b"a0", b"v0") is None
    memo.account_heads.put(b"a4", b"v4", (4, 1))
    assert memo.account_heads.get(b"a4", b"v4") == (4, 1)
    memo.account_heads.clear()
    assert memo.account_heads.get(b"a4", b"v4") is None


_REWRITE = """
import sys
from pathlib import Path
from tests.rawstore import raw_tables
env, table, key, how = Path(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3]), sys.argv[4]
with raw_tables(env) as tables:
    if how == "flip":
        value = bytearray(tables.get(table, key) or b"")
        value[1] ^= 0x20
        tables.put(table, key, bytes(value))
    else:
        tables.put(table, key, bytes.fromhex(how))
"""


def _rewrite(data: Path, table: str, key: bytes, how: str) -> None:
    """Change one record of the open log's store from another process."""
    subprocess.run(
        [sys.executable, "-c", _REWRITE, str(data / ENV_DIR_NAME), table, key.hex(), how],
        cwd=REPO,
        check=True,
    )


def _read(data: Path, table: str, key: bytes) -> bytes:
    script = (
        "import sys\nfrom pathlib import Path\nfrom tests.rawstore import raw_tables\n"
        "with raw_tables(Path(sys.argv[1]), write=False) as tables:\n"
        "    print(tables.get(sys.argv[2], bytes.fromhex(sys.argv[3])).hex())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(data / ENV_DIR_NAME), table, key.hex()],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return bytes.fromhex(done.stdout.strip())


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("balances", b"resident-1"),
        ("month_counts", month_count_key("resident-1", "2026-01", "clean-pond")),
        ("account_heads", b"resident-1"),
    ],
)
def test_a_record_damaged_while_the_node_runs_is_still_caught(
    tmp_path: Path, table: str, key: bytes
) -> None:
    town = Town.from_seed(b"sealed memo")
    data = tmp_path / "data"
    with create_log(data, town, setup=True) as log:
        log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
        # The append above sealed the record: the memory holds its bytes now.
        _rewrite(data, table, key, "flip")
        size = log.size
        with pytest.raises(StateDamageError) as refused:
            log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
        assert refused.value.table == table
        assert log.size == size


def test_an_older_sound_record_put_back_is_what_the_next_entry_reads(tmp_path: Path) -> None:
    """The memory never answers for bytes it did not see: a sound balance put back
    while the node runs decides the next entry as it would after a restart (the full
    check is what finds such a rollback, by its seq)."""
    town = Town.from_seed(b"sealed memo")
    data = tmp_path / "data"
    with create_log(data, town, setup=True) as log:
        log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
        older = _read(data, "balances", b"resident-1")
        log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
        assert log.account("resident-1").earned == 10
        _rewrite(data, "balances", b"resident-1", older.hex())
        log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
        assert log.account("resident-1").earned == 10  # 5 put back, plus 5
    with Log.open(data, readonly=True) as reopened:
        assert reopened.account("resident-1").earned == 10


def test_a_level0_id_damaged_while_the_node_runs_is_caught_when_its_run_is_made(
    tmp_path: Path,
) -> None:
    """Making a run of level 0 copies the records it holds; a record the writer put
    itself is copied without opening it only while its bytes are the ones it sealed."""
    town = Town.from_seed(b"sealed memo ids")
    data = tmp_path / "data"
    with id_index_shape(SMALL_ID_INDEX), create_log(data, town, setup=True) as log:
        while True:  # every entry's id goes to level 0, a run is made when it is full
            award = town.award("resident-2", "clean-pond")
            log.append([award], now_ms=town.now_ms)
            if log.size % SMALL_ID_INDEX.level0_max == 1:
                break  # level 0 holds this award's id alone, put by this writer
        entry_id = decode_body(Envelope.from_bytes(award).body).id
        _rewrite(data, "ids", entry_id, "flip")
        size = log.size
        with pytest.raises(StateDamageError) as refused:
            for _ in range(SMALL_ID_INDEX.level0_max):  # until level 0 is full again
                log.append([town.award("resident-3", "clean-pond")], now_ms=town.now_ms)
        assert refused.value.table == "ids"
        assert log.size < size + SMALL_ID_INDEX.level0_max


def test_what_the_memory_keeps_is_not_tracked_by_the_garbage_collector(tmp_path: Path) -> None:
    """Kept for every account, tracked values would make the collector's young passes
    walk them again and again (a ``Balance`` and nested tuples cost about 1 µs an
    entry); one flat tuple of plain values a record is untracked at its first pass."""
    town = Town.from_seed(b"sealed memo gc")
    with create_log(tmp_path / "data", town, setup=True) as log:
        log.append(
            [town.award(f"resident-{n}", "clean-pond") for n in range(20)], now_ms=town.now_ms
        )
        memo = log._store._sealed_memo
        gc.collect()
        tables = (memo.balances, memo.month_counts, memo.account_heads, memo.ids)
        kept = [record for table in tables for record in table._records.values()]
        assert len(kept) >= 60
        assert not any(gc.is_tracked(record) for record in kept)
