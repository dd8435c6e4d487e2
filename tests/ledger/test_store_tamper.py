"""Tampering with the ledger's LMDB file itself (``ledger.lmdb/data.mdb``).

A small town log is built and closed; then bytes of the data file are flipped,
zeroed or cut out. Three detectors look at the result:

* opening the log for writing (``Log.open`` runs the tail check),
* the full integrity check (``fullcheck.check_full``),
* exporting a bundle and running the verifier on it, with a ``--state`` file pinned
  by an earlier run on the untouched log (so a rollback is caught too).

A change that leaves the logical content alone (a byte in a free page, in padding)
may go unnoticed; whether the content changed is decided by dumping every table
of the damaged file and comparing with the untouched one. Every change that alters
the dump must be caught by at least one detector, none of them may fail with
anything but a ``RedlistError`` (never a traceback), and where a single leaf, Merkle
node or target changed, the full check must name its seq.

LMDB does not checksum its pages and trusts the file: a few damaged page headers
make it read outside the mapped file, and the process dies of a signal instead of
raising. The detectors therefore run in a forked child; when the child dies that
way, ``redlist-node check`` (which isolates its own work the same way) must report
the file as damaged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import io
import json
import os
import shutil
import signal
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.builders import (
    SMALL_ID_INDEX,
    Town,
    build_town_log,
    corrupt_signature,
    create_log,
    id_index_shape,
)
from tests.rawstore import (
    META_CHECKPOINT,
    META_LOG_VERIFIER_KEY,
    META_ORIGIN,
    META_SIZE,
    TABLE_NAMES,
    RawTables,
    int_key,
    node_key,
    raw_tables,
    seal,
    unseal,
)

from redlist.ledger.entry import Leaf
from redlist.ledger.errors import RedlistError, StoreError
from redlist.ledger.fullcheck import check_full
from redlist.ledger.log import Log
from redlist.ledger.state import Balance
from redlist.ledger.store import ENV_DIR_NAME, LmdbStore
from redlist.node import cli as node_cli
from redlist.node.export import export_full
from redlist.verifier import cli as verifier_cli

PAGE = 4096
#: mm_txnid of an LMDB meta page: page header (16) + magic, version, address, map size
#: (24) + two database records (96) + last page number (8).
TXNID_OFFSET = 144

Dump = dict[str, list[list[str]]]


def dump(data: Path) -> Dump:
    """Every record of every table, read with LMDB directly (hex, to send over a pipe)."""
    env = lmdb.open(str(data / ENV_DIR_NAME), readonly=True, lock=False, max_dbs=len(TABLE_NAMES))
    try:
        with env.begin() as txn:
            tables = {
                name: env.open_db(name.encode(), txn=txn, create=False) for name in TABLE_NAMES
            }
            return {
                name: [[key.hex(), value.hex()] for key, value in txn.cursor(db=table)]
                for name, table in tables.items()
            }
    finally:
        env.close()


@dataclasses.dataclass(frozen=True)
class Pristine:
    data: Path
    state: Path  # the verifier's state file, pinned on the untouched log
    log_pub: Path
    file: bytes  # data.mdb
    dump: Dump
    hot: tuple[int, ...]  # positions of live records and page headers in data.mdb


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    root = tmp_path_factory.mktemp("pristine")
    data = root / "data"
    with id_index_shape(SMALL_ID_INDEX):  # the entry-id index's runs are tampered with too
        build_town_log(data, Town.from_seed(b"tamper tests"))
    with Log.open(data, readonly=True) as log:
        export_full(log, root / "bundle")
    state = root / "state.json"
    log_pub = data / "log.pub"
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        code = verifier_cli.main(
            ["bundle", str(root / "bundle"), "--log-key", str(log_pub), "--state", str(state)]
        )
    assert code == 0
    file = (data / ENV_DIR_NAME / "data.mdb").read_bytes()
    tables = dump(data)
    return Pristine(data, state, log_pub, file, tables, _hot_positions(file, tables))


def _hot_positions(file: bytes, tables: Dump) -> tuple[int, ...]:
    """Where changes matter most: each record's node (8-byte header, key, value) wherever
    it occurs (old copies in free pages too), and every page's header and first offsets."""
    hot: set[int] = set()
    for records in tables.values():
        for key, value in records:
            record = bytes.fromhex(key) + bytes.fromhex(value)
            at = file.find(record)
            while at >= 0:
                hot.update(range(max(0, at - 8), at + len(record)))
                at = file.find(record, at + 1)
    for page in range(0, len(file), PAGE):
        hot.update(range(page, page + 40))
    return tuple(sorted(hot))


def copy_data(pristine: Pristine, target: Path, file: bytes | None = None) -> Path:
    """A data directory like the pristine one, with ``file`` as its data.mdb."""
    data = target / "data"
    (data / ENV_DIR_NAME).mkdir(parents=True)
    for name in ("log.key", "log.pub"):
        shutil.copy(pristine.data / name, data / name)
    (data / ENV_DIR_NAME / "data.mdb").write_bytes(pristine.file if file is None else file)
    shutil.copy(pristine.state, target / "state.json")
    return data


# ---------------------------------------------------------------------------
# The detectors


@dataclasses.dataclass
class Findings:
    """What each detector said (None: it found nothing) and any non-RedlistError."""

    open: str | None = None
    full: str | None = None
    full_seq: int | None = None
    export: str | None = None
    tracebacks: list[str] = dataclasses.field(default_factory=list)

    @property
    def detected(self) -> bool:
        return any((self.open, self.full, self.export))


@contextlib.contextmanager
def detector(findings: Findings, field: str) -> Iterator[None]:
    try:
        yield
    except RedlistError as error:
        setattr(findings, field, f"{type(error).__name__}: {error.diagnostics()}")
    except Exception:
        findings.tracebacks.append(f"{field}: {traceback.format_exc()}")


def detect(data: Path, log_pub: Path) -> Findings:
    findings = Findings()
    with detector(findings, "open"):
        Log.open(data).close()
    with detector(findings, "full"):
        store = LmdbStore.open(data / ENV_DIR_NAME, readonly=True)
        try:
            with store.read() as reader:
                problem = check_full(reader).problem
        finally:
            store.close()
        if problem is not None:
            findings.full, findings.full_seq = problem.describe(), problem.seq
    with detector(findings, "export"):
        with Log.open(data, readonly=True) as log:
            export_full(log, data.parent / "bundle")
        report = io.StringIO()
        with contextlib.redirect_stdout(report), contextlib.redirect_stderr(report):
            code = verifier_cli.main(
                [
                    "bundle",
                    str(data.parent / "bundle"),
                    "--log-key",
                    str(log_pub),
                    "--state",
                    str(data.parent / "state.json"),
                ]
            )
        if code != 0:
            findings.export = f"redlist-verify exit {code}: {report.getvalue()}"
    return findings


@dataclasses.dataclass(frozen=True)
class ChildResult:
    findings: Findings | None  # None when the child died before reporting
    dump: Dump | None  # None when LMDB could not read every table
    died_of: str | None  # the signal that killed the child


def in_child(data: Path, log_pub: Path) -> ChildResult:
    """Run the detectors, then the dump, in a forked child (LMDB may kill it)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        faulthandler.disable()  # pytest's; a crash is expected and handled by the parent
        try:
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(json.dumps(dataclasses.asdict(detect(data, log_pub))) + "\n")
                pipe.flush()
                try:
                    pipe.write(json.dumps(dump(data)) + "\n")
                except lmdb.Error:
                    pipe.write("null\n")
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        lines = pipe.read().splitlines()
    _, status = os.waitpid(pid, 0)
    died_of = signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else None
    findings = Findings(**json.loads(lines[0])) if lines else None
    tables = json.loads(lines[1]) if len(lines) > 1 else None
    return ChildResult(findings, tables, died_of)


def single_record_seq(before: Dump, after: Dump) -> int | None:
    """The seq of the one leaf, Merkle node or target whose value alone changed, if so."""
    changed = [name for name in TABLE_NAMES if before[name] != after[name]]
    if len(changed) != 1 or changed[0] not in ("leaves", "nodes", "targets"):
        return None
    old = {key: value for key, value in before[changed[0]]}
    new = {key: value for key, value in after[changed[0]]}
    differing = [key for key in old if old[key] != new.get(key)]
    if old.keys() != new.keys() or len(differing) != 1:
        return None
    key = bytes.fromhex(differing[0])
    if changed[0] == "nodes":
        return int.from_bytes(key[1:], "big") << key[0]
    return int.from_bytes(key, "big")


def assert_caught(pristine: Pristine, data: Path, what: str) -> None:
    result = in_child(data, pristine.log_pub)
    if result.died_of is not None and result.findings is None:
        # LMDB died reading the damaged file: the check command survives that and says so.
        report = io.StringIO()
        with contextlib.redirect_stdout(report), contextlib.redirect_stderr(report):
            code = node_cli.main(["check", "--data", str(data), "--full"])
        assert code == 1, f"{what}: LMDB cannot read the file, yet: {report.getvalue()}"
        assert report.getvalue().startswith(f"Problem found in {data}: ")
        return
    findings = result.findings
    assert findings is not None
    assert not findings.tracebacks, f"{what}: {findings.tracebacks}"
    if result.dump == pristine.dump:
        return  # the log itself is unchanged (free page, padding, an unused bit)
    assert findings.detected, f"{what} changed the log and nothing noticed"
    if result.dump is not None:
        seq = single_record_seq(pristine.dump, result.dump)
        if seq is not None and findings.full is not None:
            assert findings.full_seq == seq, f"{what}: {findings.full}"


# ---------------------------------------------------------------------------
# Property: any byte


def positions(pristine: Pristine) -> st.SearchStrategy[int]:
    """Anywhere in the file, or (as often) where live records and page headers are."""
    hot = pristine.hot
    return st.one_of(
        st.integers(0, len(pristine.file) - 1),
        st.integers(0, len(hot) - 1).map(hot.__getitem__),
    )


TAMPER_SETTINGS = settings(
    max_examples=50,
    derandomize=True,  # seeded: the same examples on every run
    database=None,
    deadline=None,
)


@TAMPER_SETTINGS
@given(choices=st.data())
def test_every_single_byte_change_that_alters_the_log_is_caught(
    pristine: Pristine, tmp_path_factory: pytest.TempPathFactory, choices: st.DataObject
) -> None:
    position = choices.draw(positions(pristine), label="position")
    new_byte = choices.draw(
        st.one_of(
            st.just(0),
            st.sampled_from([1 << bit for bit in range(8)]).map(
                lambda mask: pristine.file[position] ^ mask
            ),
        ),
        label="new byte",
    )
    file = bytearray(pristine.file)
    file[position] = new_byte
    data = copy_data(pristine, tmp_path_factory.mktemp("byte"), bytes(file))
    assert_caught(pristine, data, f"byte {position} set to {new_byte:#04x}")


@settings(TAMPER_SETTINGS, max_examples=12)
@given(choices=st.data())
def test_every_dropped_range_of_bytes_is_caught(
    pristine: Pristine, tmp_path_factory: pytest.TempPathFactory, choices: st.DataObject
) -> None:
    start = choices.draw(positions(pristine), label="start")
    length = choices.draw(st.integers(1, 2 * PAGE), label="length")
    file = pristine.file[:start] + pristine.file[start + length :]
    data = copy_data(pristine, tmp_path_factory.mktemp("drop"), file)
    assert_caught(pristine, data, f"bytes [{start}, {start + length}) dropped")


def test_a_file_cut_short_is_refused_before_lmdb_reads_it(
    pristine: Pristine, tmp_path: Path
) -> None:
    data = copy_data(pristine, tmp_path, pristine.file[: len(pristine.file) - PAGE])
    result = in_child(data, pristine.log_pub)
    assert result.died_of is None  # without the size check, reading the cut page is SIGBUS
    assert result.findings is not None
    for found in (result.findings.open, result.findings.full, result.findings.export):
        assert found is not None
        assert "shorter than the" in found
        assert "truncated or damaged" in found


# ---------------------------------------------------------------------------
# A rollback: the older of LMDB's two meta pages made the newer one


def test_a_rollback_to_the_previous_commit_is_caught_by_the_pinned_state(
    pristine: Pristine, tmp_path: Path
) -> None:
    file = bytearray(pristine.file)
    txnids = [
        int.from_bytes(file[page + TXNID_OFFSET : page + TXNID_OFFSET + 8], "little")
        for page in (0, PAGE)
    ]
    older = min(range(2), key=lambda meta: txnids[meta])
    at = older * PAGE + TXNID_OFFSET
    file[at : at + 8] = (max(txnids) + 1).to_bytes(8, "little")
    data = copy_data(pristine, tmp_path, bytes(file))

    result = in_child(data, pristine.log_pub)
    assert result.findings is not None and result.dump is not None
    assert [len(result.dump["leaves"]), len(pristine.dump["leaves"])] == [31, 32]
    # The previous commit is a complete, signed log: nothing inside the file is wrong.
    assert (result.findings.open, result.findings.full) == (None, None)
    # Whoever verified the newer checkpoint before notices that the log went back.
    assert result.findings.export is not None
    assert "redlist-verify exit 1" in result.findings.export


# ---------------------------------------------------------------------------
# One record of each kind, changed with a raw LMDB write that bypasses the Log


def _change_leaf(tables: RawTables) -> None:
    leaf = Leaf.from_bytes(tables.get("leaves", int_key(20)) or b"")
    changed = leaf._replace(envelope=corrupt_signature(leaf.envelope))
    tables.put("leaves", int_key(20), changed.to_bytes())


def _change_node(tables: RawTables) -> None:
    tables.put("nodes", node_key(2, 3), bytes(32))


def _change_balance(tables: RawTables) -> None:
    payload, seq = unseal(tables.get("balances", b"resident-2") or b"")
    balance = Balance.from_bytes(payload)
    changed = Balance(balance.earned + 100, balance.redeemed, balance.entries)
    tables.put("balances", b"resident-2", seal("balances", b"resident-2", seq, changed.to_bytes()))


def _flip_balance(tables: RawTables) -> None:
    value = bytearray(tables.get("balances", b"resident-2") or b"")
    value[1] ^= 0x40
    tables.put("balances", b"resident-2", bytes(value))


def _change_checkpoint(tables: RawTables) -> None:
    note = tables.get("checkpoints", int_key(15)) or b""
    tables.put("checkpoints", int_key(15), note.replace(b"\n15\n", b"\n16\n"))


def _change_size(tables: RawTables) -> None:
    tables.put("meta", META_SIZE, int_key(31))


@dataclasses.dataclass(frozen=True)
class RecordCase:
    change: Callable[[RawTables], None]
    full: str  # what the full check says, check and seq included
    open: str | None  # what the open says (None: beyond its tail check)
    export: str | None  # what exporting and verifying says (None: the bundle is sound)


RECORDS = {
    "a leaf's bytes": RecordCase(
        _change_leaf,
        "entry 20: the Merkle tree holds",
        "entry 20: the Merkle tree holds",
        "do not match its checkpoint at size 32",
    ),
    "a Merkle node": RecordCase(
        _change_node,
        "entry 12: the stored Merkle node over entries 12 to 15 is not the hash of its two "
        "halves [tree]",
        "entry 12: the stored Merkle node over entries 12 to 15",
        None,  # a bundle carries leaves, not nodes
    ),
    "a balance's bit": RecordCase(
        _flip_balance,
        "entry 25: the stored record for account resident-2 is damaged: its checksum does not "
        "match [balances]",
        None,  # the state is checked where it is read: appends and the full check
        None,
    ),
    "a balance, sealed again": RecordCase(
        _change_balance,
        "entry 25: the stored record for account resident-2 (stored: earned 120, redeemed 0, "
        "4 entries; the log gives: earned 20, redeemed 0, 4 entries) is not what the log's "
        "entries give [balances]",
        None,
        None,  # the verifier recomputes balances from the leaves
    ),
    "an old checkpoint": RecordCase(
        _change_checkpoint,
        "entry 14: the checkpoint stored for size 15 does not verify",
        None,
        None,  # a bundle carries the latest checkpoint only
    ),
    "the size in the metadata": RecordCase(
        _change_size,
        "entry 31: the size recorded in the metadata is 31 entries, but 32 leaves are stored",
        "entry 31: the size recorded in the metadata is 31 entries",
        "entries [0, 32) are not in the log, which has 31 entries",
    ),
}


@pytest.mark.parametrize("case", RECORDS)
def test_each_kind_of_record_changed_in_place_is_named(
    pristine: Pristine, tmp_path: Path, case: str
) -> None:
    expected = RECORDS[case]
    data = copy_data(pristine, tmp_path)
    with raw_tables(data / ENV_DIR_NAME) as tables:
        expected.change(tables)
    findings = detect(data, pristine.log_pub)
    assert not findings.tracebacks
    assert findings.full is not None and expected.full in findings.full
    for said, wanted in ((findings.open, expected.open), (findings.export, expected.export)):
        if wanted is None:
            assert said is None
        else:
            assert said is not None and wanted in said


@pytest.mark.parametrize(
    ("name", "full", "export"),
    [
        (META_ORIGIN, "the log's origin in the metadata is not valid UTF-8 text [meta]", "origin"),
        (META_LOG_VERIFIER_KEY, "the log key in the metadata is not valid UTF-8 text", "log key"),
        (
            META_CHECKPOINT,
            "entry 31: the latest checkpoint in the metadata is not",
            "latest checkpoint",
        ),
    ],
)
def test_metadata_text_that_is_not_utf8_is_reported_not_raised(
    pristine: Pristine, tmp_path: Path, name: bytes, full: str, export: str
) -> None:
    data = copy_data(pristine, tmp_path)
    with raw_tables(data / ENV_DIR_NAME) as tables:
        tables.put("meta", name, b"\xff" + (tables.get("meta", name) or b"")[1:])
    findings = detect(data, pristine.log_pub)
    assert not findings.tracebacks
    assert findings.full is not None and findings.full.startswith(full)
    assert findings.open is not None and full in findings.open
    assert findings.export == (
        f"IntegrityError: the ledger's {export} is not valid UTF-8 text: the database is damaged"
    )


# ---------------------------------------------------------------------------
# A full disk


def test_a_full_map_refuses_the_whole_batch_and_the_store_stays_sound(tmp_path: Path) -> None:
    """Complements test_log's full-map test: the store passes the full check afterwards,
    and a batch that fills the map half-way leaves none of its entries."""
    town = Town.from_seed(b"full disk")
    data = tmp_path / "data"
    note = "x" * 6_000
    log = create_log(data, town, setup=True, map_size=256 << 10)
    with pytest.raises(StoreError, match=r"storage is full \(map size 262144 bytes\)"):
        for round_ in range(100):
            size, checkpoint = log.size, log.checkpoint()
            balance = log.account("resident-1")
            batch = [
                town.award("resident-1", "clean-pond", note=f"{round_}-{n} {note}")
                for n in range(8)
            ]
            log.append(batch, now_ms=town.now_ms)
    assert (log.size, log.checkpoint(), log.account("resident-1")) == (size, checkpoint, balance)
    assert size > 11  # some batches went in before the map filled
    log.close()
    store = LmdbStore.open(data / ENV_DIR_NAME, readonly=True)
    try:
        with store.read() as reader:
            report = check_full(reader)
    finally:
        store.close()
    assert report.ok, report.summary()
    assert report.entries == size
    Log.open(data).close()  # and the tail check accepts it for the next append


def test_lmdb_errors_reach_callers_as_store_errors(pristine: Pristine, tmp_path: Path) -> None:
    file = bytearray(pristine.file)
    file[: 2 * PAGE] = bytes(2 * PAGE)  # both meta pages: no longer an LMDB file
    data = copy_data(pristine, tmp_path, bytes(file))
    with pytest.raises(StoreError, match="cannot open the ledger database"):
        Log.open(data)
