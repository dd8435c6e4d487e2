"""Damage to the entry-id index's runs and run list: caught by the node before it signs
anything, and named by the full check.

The town log of ``build_town_log`` (32 entries) is built with a small index shape
(``SMALL_ID_INDEX``: runs of 3 ids, merged 2 at a time up to 12), so its ids sit in
two top-tier runs (entries 0-11 and 12-23), a run of tier 1 (24-29) and level 0
(30, 31). Damage is made with raw LMDB writes, as in ``test_integrity``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.builders import SMALL_ID_INDEX, Town, build_town_log, id_index_shape
from tests.ledger.test_integrity import (
    _copy_tree,
    _id_of,
    full,
    leaf_of,
    raw_write,
    reforge,
    replace_envelope,
)
from tests.rawstore import META_ID_RUNS, RawTables, id_run_key, id_runs_list, seal, unseal

from redlist.ledger import codec
from redlist.ledger.entry import Leaf, decode_body
from redlist.ledger.errors import StateDamageError
from redlist.ledger.idruns import plan
from redlist.ledger.log import Log

#: The runs of the template's index: (number, tier, first seq, count).
RUNS = [(6, 2, 0, 12), (13, 2, 12, 12), (16, 1, 24, 6)]
SIZE = 32


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Town]:
    town = Town.from_seed(b"id index tests")
    data = tmp_path_factory.mktemp("template") / "data"
    with id_index_shape(SMALL_ID_INDEX):
        build_town_log(data, town)
    return data, town


@pytest.fixture
def data(template: tuple[Path, Town], tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    _copy_tree(template[0], copy)
    return copy


def test_the_template_holds_runs_of_every_tier(data: Path) -> None:
    planned, changed = plan(SMALL_ID_INDEX, SIZE)
    assert [(r.number, r.tier, r.first, r.count) for r in planned.runs] == RUNS
    with raw_write(data) as tables:
        payload, seq = unseal(tables.get("meta", META_ID_RUNS) or b"")
        assert payload == id_runs_list(3, 2, 2, 17, RUNS)  # the layout as documented
        assert seq == changed == 29
        assert len(tables.keys("ids")) == 2
        assert len(tables.keys("id_runs")) == 30
        entry_id = _id_of_raw(tables, 5)
        assert tables.get("id_runs", id_run_key(6, entry_id)) == seal("ids", entry_id, 5)
    assert full(data).ok
    ids = {seq: _id_of(data, seq) for seq in (0, 11, 12, 23, 24, 29, 30, 31)}
    with Log.open(data, readonly=True) as log:
        for seq, entry_id in ids.items():
            found = log.entry(entry_id)
            assert found is not None and found[0] == seq


def _id_of_raw(tables: RawTables, seq: int) -> bytes:
    leaf = Leaf.from_bytes(tables.get("leaves", seq.to_bytes(8, "big")) or b"")
    return decode_body(codec.decode(leaf.envelope)[0]).id


def test_appends_across_runs_and_merges_keep_the_index_exact(
    template: tuple[Path, Town], data: Path
) -> None:
    """Batches that fill level 0 and merge runs of every tier; resubmissions keep their
    seqs and the full check holds after each batch."""
    town = template[1]
    sent: list[tuple[bytes, int]] = []
    for round_ in range(6):
        with Log.open(data) as log:
            batch = [town.award(f"resident-{n}", "clean-pond") for n in range(round_ + 4)]
            seqs = log.append(batch, now_ms=town.now_ms).seqs
            sent.extend(zip(batch, seqs, strict=True))
            again = log.append([envelope for envelope, _ in sent], now_ms=town.now_ms).seqs
            assert list(again) == [seq for _, seq in sent]
            size = log.size
        report = full(data)
        assert report.ok, report.summary()
    with raw_write(data) as tables:
        payload, _ = unseal(tables.get("meta", META_ID_RUNS) or b"")
    runs = plan(SMALL_ID_INDEX, size)[0]
    assert payload == runs.to_bytes()
    assert len(runs.runs) >= 4


Change = Callable[[RawTables], object]


def _in_run(run: int, seq: int, change: Callable[[RawTables, bytes, bytes], object]) -> Change:
    """``change(tables, key, entry id)`` of entry ``seq``'s record in run ``run``."""

    def apply(tables: RawTables) -> None:
        entry_id = _id_of_raw(tables, seq)
        change(tables, id_run_key(run, entry_id), entry_id)

    return apply


def _flip(tables: RawTables, key: bytes, _: bytes) -> None:
    value = bytearray(tables.get("id_runs", key) or b"")
    value[2] ^= 0x04
    tables.put("id_runs", key, bytes(value))


def _moved(tables: RawTables, key: bytes, entry_id: bytes) -> None:
    value = tables.get("id_runs", key) or b""
    tables.delete("id_runs", key)
    tables.put("id_runs", id_run_key(13, entry_id), value)


def _run_list(payload: bytes, seq: int = 29) -> Change:
    return lambda tables: tables.put("meta", META_ID_RUNS, seal("meta", META_ID_RUNS, seq, payload))


def _flip_run_list(tables: RawTables) -> None:
    value = bytearray(tables.get("meta", META_ID_RUNS) or b"")
    value[-30] ^= 0x01
    tables.put("meta", META_ID_RUNS, bytes(value))


DAMAGE: dict[str, tuple[Change, str, int | None, str]] = {
    "an id deleted from a run": (
        _in_run(6, 5, lambda tables, key, _: tables.delete("id_runs", key)),
        "ids",
        5,
        "it holds nothing",
    ),
    "an id's bit flipped in a run": (_in_run(6, 5, _flip), "ids", 5, "a damaged record"),
    "an id moved to another run": (
        _in_run(6, 5, _moved),
        "ids",
        5,
        "it holds it elsewhere than in run 6, where it belongs",
    ),
    "an id sent elsewhere in a run": (
        _in_run(
            13,
            20,
            lambda tables, key, entry_id: tables.put("id_runs", key, seal("ids", entry_id, 3)),
        ),
        "ids",
        20,
        "sends this entry's id",
    ),
    "an id pointing ahead in a run": (
        _in_run(
            16,
            25,
            lambda tables, key, entry_id: tables.put("id_runs", key, seal("ids", entry_id, 31)),
        ),
        "ids",
        25,
        "it holds entry 31",
    ),
    "an id too many in a run": (
        lambda tables: tables.put(
            "id_runs", id_run_key(13, b"\x07" * 16), seal("ids", b"\x07" * 16, 3)
        ),
        "ids",
        None,
        "holds 33 ids for a log of 32 entries",
    ),
    "an id in a run the list does not name": (
        _in_run(
            6,
            5,
            lambda tables, key, entry_id: tables.put(
                "id_runs", id_run_key(99, entry_id), seal("ids", entry_id, 5)
            ),
        ),
        "ids",
        None,
        "holds 33 ids for a log of 32 entries",
    ),
    "the run list removed": (
        lambda tables: tables.delete("meta", META_ID_RUNS),
        "ids",
        None,
        "list of runs is missing",
    ),
    "the run list's bit flipped": (
        _flip_run_list,
        "ids",
        None,
        "list of runs is damaged: its checksum does not match",
    ),
    "the run list cut short": (
        _run_list(id_runs_list(3, 2, 2, 17, RUNS)[:-1]),
        "ids",
        None,
        "list of runs is malformed",
    ),
    "a run list the log's size does not give": (
        _run_list(id_runs_list(3, 2, 2, 17, [(6, 2, 0, 12), (13, 2, 12, 12), (16, 1, 24, 3)])),
        "ids",
        None,
        "is not what a log of 32 entries gives",
    ),
    "a run list of another shape": (
        _run_list(id_runs_list(3, 3, 2, 17, RUNS)),
        "ids",
        None,
        "is not what a log of 32 entries gives",
    ),
    "the run list's seq changed": (
        _run_list(id_runs_list(3, 2, 2, 17, RUNS), seq=26),
        "ids",
        None,
        "names entry 26 as its last change; the log's size gives entry 29",
    ),
}


#: A log's size for ``test_a_run_list_of_a_degenerate_shape_is_named_at_once``: long
#: enough that replaying one flush of level 0 per entry, as the plan once did, would
#: take hours over the list it grows.
LONG_LOG = 300_000


@pytest.mark.timeout(60)
def test_a_run_list_of_a_degenerate_shape_is_named_at_once(data: Path) -> None:
    """A forger reseals the run list with the shape "level 0 of one id, never merged":
    over a long log that shape plans one run per entry. The check computes what the
    log's size gives instead of replaying it flush by flush, and names the list at
    once (before reading the leaves, which here are filler past the template's 32)."""
    with raw_write(data) as tables:
        for seq in range(SIZE, LONG_LOG):
            tables.put("leaves", seq.to_bytes(8, "big"), b"filler")
        tables.put("meta", b"size", LONG_LOG.to_bytes(8, "big"))
        payload = id_runs_list(1, 2, 0, 3, [(0, 0, 0, 1), (1, 0, 1, 1), (2, 0, 2, 1)])
        tables.put("meta", META_ID_RUNS, seal("meta", META_ID_RUNS, LONG_LOG - 1, payload))
    problem = full(data).problem
    assert problem is not None
    assert (problem.check, problem.seq) == ("ids", None), problem.describe()
    assert f"is not what a log of {LONG_LOG} entries gives" in problem.message
    assert f"{LONG_LOG:,} runs" in problem.message


@pytest.mark.parametrize("case", DAMAGE)
def test_the_full_check_names_damage_to_the_runs(data: Path, case: str) -> None:
    change, check, seq, words = DAMAGE[case]
    with raw_write(data) as tables:
        change(tables)
    problem = full(data).problem
    assert problem is not None
    assert (problem.check, problem.seq) == (check, seq), problem.describe()
    assert words in problem.message, problem.message


def test_an_id_used_twice_is_found_in_the_runs(data: Path) -> None:
    """Entry 20 forged with entry 5's id (another run): the semantics' rule names it."""
    town = Town.from_seed(b"id index tests")
    reforge(
        data,
        town.log_signer,
        replace_envelope(20, town.award("resident-9", "clean-pond", entry_id=_id_of(data, 5))),
    )
    problem = full(data).problem
    assert problem is not None
    assert (problem.check, problem.seq) == ("duplicate-id", 20), problem.describe()


def test_an_id_used_twice_with_an_index_to_match_is_found_by_the_key_order_scan(
    data: Path,
) -> None:
    """The forger also files entry 20 under the reused id in its own run: each entry's
    record is where it belongs, and only the id held twice gives the forgery away."""
    town = Town.from_seed(b"id index tests")
    old_id, reused = _id_of(data, 20), _id_of(data, 5)
    reforge(  # entry 20 was resident-1's award under this rule: every table still holds
        data,
        town.log_signer,
        replace_envelope(20, town.award("resident-1", "clean-pond", entry_id=reused)),
    )
    with raw_write(data) as tables:
        tables.delete("id_runs", id_run_key(13, old_id))
        tables.put("id_runs", id_run_key(13, reused), seal("ids", reused, 20))
    problem = full(data).problem
    assert problem is not None
    assert (problem.check, problem.seq) == ("duplicate-id", 20), problem.describe()
    assert f"entry id {reused.hex()} was used at seq 5" in problem.message


APPEND_DAMAGE: dict[str, tuple[Change, str, str]] = {
    "an id's bit flipped in a run": (_in_run(6, 5, _flip), "ids", "entry id"),
    "the run list's bit flipped": (_flip_run_list, "meta", "'id_runs'"),
    "the run list removed": (
        lambda tables: tables.delete("meta", META_ID_RUNS),
        "meta",
        "'id_runs'",
    ),
}


@pytest.mark.parametrize("case", APPEND_DAMAGE)
def test_damage_to_the_runs_is_caught_before_anything_is_signed(
    template: tuple[Path, Town], data: Path, case: str
) -> None:
    """A resubmission of entry 5 looks its id up through the runs: the damaged record or
    run list refuses the batch, and the store takes no more writes."""
    town = template[1]
    change, table, record = APPEND_DAMAGE[case]
    with raw_write(data) as tables:
        change(tables)
    resubmitted = leaf_of(data, 5).envelope
    with Log.open(data) as log:
        checkpoint = log.checkpoint()
        with pytest.raises(StateDamageError) as refused:
            log.append([resubmitted], now_ms=town.now_ms)
        assert (refused.value.table, record in refused.value.record) == (table, True)
        with pytest.raises(StateDamageError):
            log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
        assert log.checkpoint() == checkpoint


LOST_RECORDS: dict[str, tuple[int, int | None]] = {
    "from a top-tier run": (11, 6),
    "from the other top-tier run": (20, 13),
    "from the run of tier 1": (25, 16),
    "from level 0": (33, None),
}


@pytest.mark.parametrize("case", LOST_RECORDS)
def test_a_lost_id_record_refuses_the_next_batch_instead_of_a_second_entry(
    template: tuple[Path, Town], data: Path, case: str
) -> None:
    """A record lost from the index (a page the disk lost, a delete outside redlist)
    leaves no seal to fail: the retry of that award, which the index no longer finds,
    would be appended again under the same id and signed, a log every auditor then
    refuses. The index counts its records against the log's size before it takes an
    id: the batch is refused as damage, and the store takes no more writes."""
    town = template[1]
    seq, run = LOST_RECORDS[case]
    with Log.open(data) as log:  # entry 32 makes a run of level 0; 33 is alone in it
        for account in ("resident-5", "resident-6"):
            log.append([town.award(account, "clean-pond")], now_ms=town.now_ms)
    size = SIZE + 2
    with raw_write(data) as tables:
        entry_id = _id_of_raw(tables, seq)
        if run is None:
            tables.delete("ids", entry_id)
        else:
            tables.delete("id_runs", id_run_key(run, entry_id))
    retried = leaf_of(data, seq).envelope
    with Log.open(data) as log:
        checkpoint = log.checkpoint()
        with pytest.raises(
            StateDamageError, match=f"holds {size - 1} ids for a log of {size} entries"
        ):
            log.append([retried], now_ms=town.now_ms)
        with pytest.raises(StateDamageError):
            log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
        assert log.checkpoint() == checkpoint
        assert log.size == size
