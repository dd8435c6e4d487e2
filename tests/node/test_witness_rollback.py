"""A witness never rolls back (DESIGN 8.2), also across restoring an old copy of its state.

Real LMDB state, the real journal beside it, and ``redlist-node serve`` and
``redlist-node witness-reset`` as subprocesses: an old ``witness.lmdb`` put back (the
directory, or only its data file) stops the node with words saying what to do; a reset
on purpose is recorded and the witness serves again from the older head; a deleted
journal is refused too; a state ahead of its journal (the witness died between the two
writes) and a torn last journal line are repaired silently; and kill -9 in the middle
of cosigning, again and again, never leads to a false refusal.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from tests.builders import Town, create_log
from tests.node.serving import BIN, serve_in_subprocess

from redlist.ledger import keyfile, merkle
from redlist.ledger.crypto import SigningKey
from redlist.ledger.errors import IntegrityError, StoreError
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.witnessjournal import JOURNAL_NAME
from redlist.ledger.witnessstore import WITNESS_ENV_NAME, WitnessRollbackError, WitnessStore
from redlist.node.witness import Witness, WitnessConfig
from redlist.proto.contract import WITNESS_SIZE_KEY
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

WATCHED = "rushan.example/log"
LOG = NoteSigner.generate(WATCHED)
WITNESS = NoteSigner("wendeng-witness", SigningKey.generate())
HISTORY = merkle.MemoryTree(merkle.leaf_hash(f"entry {n}".encode()) for n in range(4000))


def note_of(size: int) -> str:
    root = merkle.root_at(HISTORY, size)
    return sign_checkpoint(Checkpoint(WATCHED, size, root), LOG).note


def request(old: int, size: int) -> pb.AddCheckpointRequest:
    proof = merkle.consistency_proof(HISTORY, old, size) if 0 < old < size else []
    return pb.AddCheckpointRequest(old_size=old, consistency_proof=proof, checkpoint=note_of(size))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    directory = tmp_path / "wendeng"
    with create_log(directory, Town.generate()):
        pass
    return directory


@pytest.fixture
def flags(tmp_path: Path) -> tuple[str | Path, ...]:
    key_file = tmp_path / "witness.pem"
    keyfile.write_key_files(key_file, WITNESS.key, WITNESS.name)
    log_pub = tmp_path / "rushan.pub"
    log_pub.write_text(LOG.verifier().encode() + "\n")
    return ("--witness-key", key_file, "--witness-for", log_pub, "--log-level", "warning")


def cosign(data: Path, *steps: tuple[int, int]) -> None:
    """Cosign (old, size) after (old, size) in-process, through the real store."""
    store = WitnessStore.open(data)
    try:
        witness = Witness(WitnessConfig(WITNESS, {WATCHED: LOG.verifier()}), store, data)
        for old, size in steps:
            witness.add_checkpoint(old, request(old, size).consistency_proof, note_of(size))
    finally:
        store.close()


def stored_size(data: Path) -> int:
    store = WitnessStore.open(data)
    try:
        head = store.head(LOG.verifier())
        return 0 if head is None else head.size
    finally:
        store.close()


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / argv[0], *argv[1:]], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("restored", ["directory", "data file"])
def test_a_restored_old_copy_is_refused_until_reset_on_purpose(
    data: Path, flags: tuple[str | Path, ...], tmp_path: Path, restored: str
) -> None:
    cosign(data, (0, 5))
    backup = tmp_path / "witness.lmdb.bak"
    shutil.copytree(data / WITNESS_ENV_NAME, backup)
    cosign(data, (5, 10))
    if restored == "directory":
        shutil.rmtree(data / WITNESS_ENV_NAME)
        shutil.copytree(backup, data / WITNESS_ENV_NAME)
    else:
        shutil.copyfile(backup / "data.mdb", data / WITNESS_ENV_NAME / "data.mdb")

    refused = run("redlist-node", "serve", "--data", data, "--listen", "127.0.0.1:0", *flags)
    assert refused.returncode == 1, refused.stderr
    assert "older than what this witness has cosigned" in refused.stderr
    assert f"log {WATCHED}: cosigned up to size 10, the state holds size 5" in refused.stderr
    assert "witness-reset --data" in refused.stderr and "Traceback" not in refused.stderr
    with pytest.raises(WitnessRollbackError):
        WitnessStore.open(data)

    report = run("redlist-node", "witness-reset", "--data", data)
    assert report.returncode == 1, report.stderr
    assert "cosigned up to size 10, the state holds size 5" in report.stdout
    wrong = run("redlist-node", "witness-reset", "--data", data, "--origin", "juxian.example/log")
    assert wrong.returncode == 2 and "juxian.example/log" in wrong.stderr
    reset = run(
        "redlist-node", "witness-reset", "--data", data, "--origin", WATCHED, "--accept-rollback"
    )
    assert reset.returncode == 0, reset.stderr
    assert "Reset 1 log(s)" in reset.stdout
    lines = [json.loads(line) for line in (data / JOURNAL_NAME).read_text().splitlines()]
    assert lines[-1]["reset"] and lines[-1]["size"] == 5 and lines[-1]["was"] == 10
    again = run("redlist-node", "witness-reset", "--data", data)
    assert again.returncode == 0 and "nothing to reset" in again.stdout

    # It serves again, from the head it has: size 5.
    with (
        serve_in_subprocess(data, *flags, output=tmp_path) as address,
        grpc.insecure_channel(address) as channel,
    ):
        stub = ledger_pb2_grpc.WitnessStub(channel)
        with pytest.raises(grpc.RpcError) as behind:
            stub.AddCheckpoint(request(10, 12))
        assert dict(behind.value.trailing_metadata() or ())[WITNESS_SIZE_KEY] == "5"
        stub.AddCheckpoint(request(5, 12))
    assert stored_size(data) == 12


def test_a_deleted_journal_is_refused_and_a_reset_writes_it_anew(data: Path) -> None:
    cosign(data, (0, 5))
    (data / JOURNAL_NAME).unlink()
    with pytest.raises(WitnessRollbackError, match=r"witness\.journal is missing"):
        WitnessStore.open(data)
    assert run("redlist-node", "witness-reset", "--data", data).returncode == 1
    reset = run("redlist-node", "witness-reset", "--data", data, "--accept-rollback")
    assert reset.returncode == 0, reset.stderr
    assert stored_size(data) == 5
    cosign(data, (5, 8))


def test_a_state_ahead_of_its_journal_or_a_torn_line_is_repaired(data: Path) -> None:
    cosign(data, (0, 5), (5, 9))
    journal = data / JOURNAL_NAME
    lines = journal.read_bytes().splitlines(keepends=True)
    # The witness died after its commit, before (or while) writing the journal line.
    journal.write_bytes(b"".join(lines[:-1]) + lines[-1][:17])
    assert stored_size(data) == 9
    repaired = [json.loads(line) for line in journal.read_text().splitlines()]
    assert repaired[-1]["size"] == 9 and "reset" not in repaired[-1]
    cosign(data, (9, 11))
    # A line damaged in the middle is not a torn write: refused, in words.
    text = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join([text[0], "{not json\n", *text[1:]]))
    with pytest.raises(IntegrityError, match="damaged at line 2"):
        WitnessStore.open(data)


def test_one_process_at_a_time(data: Path) -> None:
    store = WitnessStore.open(data)
    try:
        with pytest.raises(StoreError, match="open in another process"):
            WitnessStore.open(data)
    finally:
        store.close()


def test_kill_9_while_cosigning_never_causes_a_false_refusal(
    data: Path, flags: tuple[str | Path, ...], tmp_path: Path
) -> None:
    chance = random.Random(8)  # noqa: S311 - the moments of the kills, not secrets
    acknowledged = 0
    for attempt in range(5):
        output = tmp_path / f"run-{attempt}"
        output.mkdir()
        processes: list[subprocess.Popen[bytes]] = []
        with (
            serve_in_subprocess(data, *flags, output=output, started=processes.append) as address,
            grpc.insecure_channel(address) as channel,
        ):
            stub = ledger_pb2_grpc.WitnessStub(channel)
            size = acknowledged
            killer = threading.Timer(
                chance.uniform(0.2, 0.8), os.kill, (processes[0].pid, signal.SIGKILL)
            )
            killer.start()
            deadline = time.monotonic() + 30
            try:
                while time.monotonic() < deadline:
                    step = min(size + chance.randint(1, 3), HISTORY.size)
                    try:
                        stub.AddCheckpoint(request(size, step), timeout=10)
                    except grpc.RpcError as error:
                        if error.code() is grpc.StatusCode.ABORTED:
                            # It stored a head whose answer was lost: go on from there.
                            reported = dict(error.trailing_metadata() or ())[WITNESS_SIZE_KEY]
                            size = int(reported)
                            continue
                        break  # killed
                    size = acknowledged = step
            finally:
                killer.cancel()
            processes[0].wait(timeout=20)
            assert processes[0].returncode == -signal.SIGKILL
        # Never behind what it acknowledged, and it opens without complaint.
        assert stored_size(data) >= acknowledged
        acknowledged = stored_size(data)
    assert acknowledged > 0
