"""``redlist-node check --data DIR [--full]``: reports, exit codes, isolation, progress."""

from __future__ import annotations

import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.builders import Town, corrupt_signature, create_log
from tests.rawstore import int_key, raw_tables, seal

from redlist.ledger.entry import Leaf
from redlist.ledger.errors import StoreError
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.state import Balance
from redlist.ledger.store import ENV_DIR_NAME, LmdbStore
from redlist.node.cli import main
from redlist.node.commands import check

REPO_ROOT = Path(__file__).resolve().parents[2]
SOUND_FULL = (
    "Checked 14 entries: hash chain, Merkle tree, 3 checkpoints and the balances of 2 accounts "
    "all consistent.\n"
)
SOUND_QUICK = (
    "Checked the newest 14 of 14 entries, the Merkle tree's head and the latest checkpoint: "
    "consistent. This was a quick check; --full checks every entry, the whole tree, every "
    "checkpoint and the balances.\n"
)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    town = Town.from_seed(b"check cli")
    path = tmp_path / "data"
    with create_log(path, town, setup=True) as log:
        log.append(
            [
                town.award("resident-1", "clean-pond"),
                town.award("resident-2", "litter"),
                town.redeem("resident-1", 3),
            ],
            now_ms=town.now_ms,
        )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def put(data: Path, table: str, key: bytes, value: bytes) -> None:
    with raw_tables(data / ENV_DIR_NAME) as tables:
        tables.put(table, key, value)


def test_a_sound_log_passes_the_quick_and_the_full_check(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--data", str(data)) == (0, SOUND_QUICK, "")
    assert run(capsys, "--data", str(data), "--full") == (0, SOUND_FULL, "")


def test_a_damaged_leaf_is_reported_with_its_seq(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LmdbStore.open(data / ENV_DIR_NAME, readonly=True)
    with store.read() as reader:
        leaf = Leaf.from_bytes(reader.leaf(12) or b"")
    store.close()
    damaged = leaf._replace(envelope=corrupt_signature(leaf.envelope))
    put(data, "leaves", int_key(12), damaged.to_bytes())

    code, output, error = run(capsys, "--data", str(data), "--full")
    assert (code, error) == (1, "")
    assert output.startswith(f"Problem found in {data}: entry 12: the Merkle tree holds ")
    assert output.endswith("[leaf-hash]\n")

    code, output, error = run(capsys, "--data", str(data))
    assert (code, error) == (1, "")
    assert f"Problem found in {data}: " in output
    assert "entry 12: the Merkle tree holds" in output
    assert f"Run `redlist-node check --data {data} --full` for a full report." in output


def test_damage_to_the_balances_needs_the_full_check(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with raw_tables(data / ENV_DIR_NAME) as tables:
        flipped = bytearray(tables.get("balances", b"resident-2") or b"")
        flipped[1] ^= 0x01
        tables.put("balances", b"resident-2", bytes(flipped))
    assert run(capsys, "--data", str(data)) == (0, SOUND_QUICK, "")
    code, output, _ = run(capsys, "--data", str(data), "--full")
    assert code == 1
    assert output == (
        f"Problem found in {data}: entry 12: the stored record for account resident-2 is "
        "damaged: its checksum does not match [balances]\n"
    )


def test_a_balance_forged_with_a_sound_checksum_is_still_not_the_logs(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(
        data,
        "balances",
        b"resident-2",
        seal("balances", b"resident-2", 12, Balance(50, 0, 1).to_bytes()),
    )
    code, output, _ = run(capsys, "--data", str(data), "--full")
    assert code == 1
    assert output == (
        f"Problem found in {data}: entry 12: the stored record for account resident-2 "
        "(stored: earned 50, redeemed 0, 1 entries; the log gives: earned -5, redeemed 0, "
        "1 entries) is not what the log's entries give [balances]\n"
    )


def test_a_published_key_that_is_not_the_stored_one_is_a_problem(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = NoteSigner.generate("wendeng.redlist.example/log").verifier()
    (data / "log.pub").write_text(other.encode() + "\n")
    code, output, _ = run(capsys, "--data", str(data), "--full")
    assert code == 1
    assert "is not the log's published key" in output
    assert output.endswith("[meta]\n")


def test_a_truncated_file_is_a_problem_not_a_crash(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_file = data / ENV_DIR_NAME / "data.mdb"
    data_file.write_bytes(data_file.read_bytes()[:-4096])
    for argv in (["--data", str(data)], ["--data", str(data), "--full"]):
        code, output, error = run(capsys, *argv)
        assert (code, error) == (1, "")
        assert output.startswith(f"Problem found in {data}: the ledger database {data_file} is ")
        assert "truncated or damaged" in output


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: None, "the data directory"),  # then: "... does not exist"
        (lambda path: path.mkdir(), "is not a redlist data directory (it has no ledger.lmdb)"),
        (lambda path: (path / ENV_DIR_NAME).mkdir(parents=True), "data.mdb is missing"),
    ],
)
def test_a_directory_without_a_ledger_cannot_be_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    path = tmp_path / "nothing"
    make(path)  # type: ignore[operator]
    code, output, error = run(capsys, "--data", str(path), "--full")
    assert (code, output) == (2, "")
    assert error.startswith("error: ")
    assert message in error


def test_a_missing_data_directory_is_called_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, error = run(capsys, "--data", str(tmp_path / "nothing"))
    assert code == 2
    assert error == f"error: the data directory {tmp_path / 'nothing'} does not exist\n"


def test_an_unreadable_published_key_is_named_in_words(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(StoreError) as refused:
        check._published_key(data)
    assert refused.value.diagnostics() == (
        f"cannot read the log's published key {data / 'log.pub'}: Permission denied"
    )


def test_ctrl_c_stops_the_child_and_is_reported_as_an_interruption(tmp_path: Path) -> None:
    def slow() -> check.Outcome:
        time.sleep(30)
        return check.Outcome(0, "too late")

    def ctrl_c(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, ctrl_c)
    started = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)  # a fork's child has no timer of its own
        with pytest.raises(KeyboardInterrupt):
            check.isolated(slow, tmp_path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 10


def _die_of_sigbus(*args: object, **kwargs: object) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file from this child
    os.kill(os.getpid(), signal.SIGBUS)


def test_a_crash_while_reading_is_reported_and_the_command_survives(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What LMDB does on some damaged pages: the process dies of a signal, no exception.
    monkeypatch.setattr(check, "check_full", _die_of_sigbus)
    code, output, error = run(capsys, "--data", str(data), "--full")
    assert (code, error) == (1, "")
    assert output == (
        f"Problem found in {data}: reading the ledger database crashed the check (SIGBUS). "
        "LMDB cannot read the file safely: data.mdb is damaged below the level of the log's "
        "own records. Restore it from a backup or a mirror.\n"
    )


def test_an_unexpected_failure_is_not_reported_as_damage(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(check, "check_full", broken)
    code, output, error = run(capsys, "--data", str(data), "--full")
    assert (code, output) == (2, "")
    assert error == "error: the check failed unexpectedly (see the message above)\n"


WRITER = """
import sys
from pathlib import Path
from redlist.ledger.log import Log
from tests.builders import Town

town = Town.from_seed(b"check cli")
with Log.open(Path(sys.argv[1])) as log:
    log.append([town.award("resident-3", "clean-pond", entry_id=bytes(16))], now_ms=town.now_ms)
    print("appended", flush=True)
    sys.stdin.readline()
"""


def test_the_check_runs_while_a_node_holds_the_log_open(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline() == "appended\n"
        code, output, error = run(capsys, "--data", str(data), "--full")
        assert (code, error) == (0, "")
        assert output.startswith("Checked 15 entries: ")
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.wait(timeout=30) == 0
    finally:
        writer.kill()
        writer.wait()


def test_progress_goes_to_stderr_on_a_terminal(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, terminal = os.openpty()
    with os.fdopen(terminal, "w") as stderr:
        monkeypatch.setattr(sys, "stderr", stderr)
        code = main(["check", "--data", str(data), "--full"])
        stderr.flush()
    monkeypatch.undo()
    chunks = []
    # The terminal side is closed: reads drain what was written, then end (EIO on Linux).
    while select.select([controller], [], [], 5)[0]:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    shown = b"".join(chunks).decode()
    assert code == 0
    assert capsys.readouterr().out == SOUND_FULL
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    for stage, total in (("entries", 14), ("tree", 25)):
        assert f"checking {stage}" in plain
        assert f"{total}/{total}" in plain
    assert shown.endswith("\x1b[2K")  # the line is erased before the report


def test_a_store_of_the_earlier_format_cannot_be_checked_and_says_why(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(data, "meta", b"format", b"redlist-ledger/1")
    for argv in (["--data", str(data)], ["--data", str(data), "--full"]):
        code, output, error = run(capsys, *argv)
        assert (code, output) == (2, "")
        assert "holds a ledger of the earlier format redlist-ledger/1" in error
        assert "there is no migration" in error
