"""A disk that fails: writes and fsyncs of a real node's ledger return EIO or ENOSPC.

The node (``redlist-node serve``, a subprocess) keeps its data directory on the
power-cut file system (``powercutfs.py``), which fails the chosen call on the
ledger's ``data.mdb`` once, when told to. Every class is tested, EIO and ENOSPC each:

* ``write``: a write of the commit's pages (LMDB writes them with ``pwrite``);
* ``fsync``: the ``fdatasync`` that makes those pages durable (after which the file
  system drops them, as Linux does, so that a second fsync would succeed on nothing);
* ``write-sync``: the write of LMDB's meta page, through its ``O_DSYNC`` descriptor:
  the moment the commit becomes durable.

(``msync`` does not apply: the store opens LMDB without ``writemap``, so LMDB writes
with ``pwrite`` and syncs with ``fdatasync``; it never maps the file writable. And
``mmap`` happens once, when the store opens: see the last test.)

In every class the batch whose commit failed is not acknowledged (UNAVAILABLE: whether
it reached the disk is unknown), the node then refuses every later batch although the
disk works again (it never retries, and nothing more reaches ``data.mdb``), says so in one log line,
the ``redlist_writes_stopped`` metric and the writes' health (NOT_SERVING, the rest
SERVING), and keeps answering reads, except after a failed meta page, where LMDB
itself refuses every transaction until the store is reopened. Then the power is
cut (whatever was not synced is gone), the node restarted: its open re-checks the
log's tail, it serves again, every acknowledged entry is there, the failed batch is
stored whole or not at all, and sending every batch again stores each exactly once.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.builders import Town, submit_request
from tests.faults.crashkit import (
    BIN,
    ORIGIN,
    Batch,
    BatchFactory,
    Journal,
    NodeProcess,
    TownDir,
    check_log,
    make_town_dir,
    seeded_random,
    verify_offline,
)
from tests.faults.powercut import PowerCutMount, require_fuse

from redlist.ledger.store import ENV_DIR_NAME
from redlist.node.server import LEDGER_SERVICE, WRITES_HEALTH_SERVICE
from redlist.v1 import ledger_pb2, ledger_pb2_grpc

_METRICS = re.compile(r"^metrics on (http://\S+)$", re.MULTILINE)
DATA_FILE = "data.mdb"


@pytest.fixture(scope="module")
def town_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Town, TownDir]:
    """One initialised town directory, copied onto the file system for each test."""
    require_fuse()
    root = tmp_path_factory.mktemp("io-errors-town")
    town = Town.from_seed(b"io errors", origin=ORIGIN)
    return town, make_town_dir(root, town)


def submit(stub: ledger_pb2_grpc.LedgerStub, batch: Batch) -> ledger_pb2.SubmitResponse:
    return stub.Submit(submit_request(batch.envelopes), timeout=30)


def health_of(channel: grpc.Channel, service: str) -> str:
    answer = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=10
    )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def wait_metrics_url(node: NodeProcess) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = _METRICS.search(node.stdout.read_text(errors="replace"))
        if match:
            return match[1]
        time.sleep(0.01)
    raise AssertionError("the node did not print its metrics address")


def data_file_calls(mount: PowerCutMount) -> dict[str, int]:
    calls: dict[str, int] = mount.stats()["calls"].get(DATA_FILE, {})
    return calls


@pytest.mark.parametrize("error", ["EIO", "ENOSPC"])
@pytest.mark.parametrize("call", ["write", "fsync", "write-sync"])
def test_a_failed_commit_is_never_acknowledged_nor_retried(
    tmp_path: Path, town_template: tuple[Town, TownDir], call: str, error: str
) -> None:
    town, template = town_template
    backing, logs = tmp_path / "backing", tmp_path / "logs"
    shutil.copytree(template.data, backing / "data")
    factory = BatchFactory(town, seeded_random(len(call) * 7 + len(error)), max_size=20)
    first, failed, later = factory.batches(3)
    journal = Journal(template.log_key)

    with PowerCutMount(backing, tmp_path / "mnt", logs) as mount:
        data = mount.mount / "data"
        with NodeProcess.spawn(data, logs, "node", "--metrics", "127.0.0.1:0") as node:
            address = node.wait_serving().address
            metrics_url = wait_metrics_url(node)
            with grpc.insecure_channel(address) as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                journal.sending(first, resubmission=False)
                answer = submit(stub, first)
                journal.acknowledged(first, answer.seqs, answer.checkpoint)
                size_before = max(answer.seqs) + 1

                # The disk fails once; afterwards it works again.
                # The ledger's file: the texts of a batch go to texts.lmdb first.
                mount.fail(call, error, suffix=f"{ENV_DIR_NAME}/{DATA_FILE}", count=1)
                journal.sending(failed, resubmission=False)
                with pytest.raises(grpc.RpcError) as refused:
                    submit(stub, failed)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "whether this write reached the disk is unknown" in (
                    refused.value.details()
                ), refused.value.details()
                assert mount.stats()["injected"] == {f"{call}:{error}": 1}

                # Stopped for good: the disk works, the node still refuses, and
                # nothing more is written to the ledger's file or synced.
                calls = data_file_calls(mount)
                journal.sending(later, resubmission=False)
                with pytest.raises(grpc.RpcError) as again:
                    submit(stub, later)
                assert again.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "nothing of this write was stored" in again.value.details()
                assert data_file_calls(mount) == calls, "the node wrote or synced again"

                assert health_of(channel, WRITES_HEALTH_SERVICE) == "NOT_SERVING"
                assert health_of(channel, "") == "SERVING"
                assert health_of(channel, LEDGER_SERVICE) == "SERVING"
                if call == "write-sync":
                    # LMDB refuses every transaction once its meta page failed.
                    with pytest.raises(grpc.RpcError) as unreadable:
                        stub.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=10)
                    assert unreadable.value.code() == grpc.StatusCode.UNAVAILABLE
                    assert "restart the node" in unreadable.value.details()
                else:
                    checkpoint = stub.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=10)
                    assert checkpoint.checkpoint.startswith(f"{ORIGIN}\n{size_before}\n")
                    leaves = list(stub.GetLeaves(ledger_pb2.GetLeavesRequest(start=0, end=2)))
                    assert [leaf.seq for leaf in leaves] == [0, 1]
            with urllib.request.urlopen(metrics_url, timeout=10) as response:  # noqa: S310
                exposed = response.read().decode()
            assert 'redlist_writes_stopped{reason="disk"} 1.0' in exposed
            node.kill()
        said = node.stderr.read_text(errors="replace")
        assert said.count("writes stopped reason=disk") == 1, said
        # The power goes too: what the disk did not sync is gone.
        mount.cut()

    with PowerCutMount(backing, tmp_path / "mnt", logs, "fs-after") as mount:
        data = mount.mount / "data"
        view, problems = check_log(data, journal, template.setup_size, None)
        assert not problems and view is not None, problems
        assert view.size in (size_before, size_before + len(failed.envelopes))
        assert view.stored >= {first.number} and later.number not in view.stored
        with NodeProcess.spawn(data, logs, "restarted") as node:
            serving = node.wait_serving()
            assert serving.entries == view.size
            with grpc.insecure_channel(serving.address) as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                assert health_of(channel, WRITES_HEALTH_SERVICE) == "SERVING"
                for batch in (first, failed, later):
                    journal.sending(batch, resubmission=True)
                    answer = submit(stub, batch)
                    journal.acknowledged(batch, answer.seqs, answer.checkpoint)
            assert node.stop() == 0
        view, problems = check_log(data, journal, template.setup_size, view)
        problems += journal.take_problems()
        assert not problems and view is not None and view.batches_missing == 0, problems
        size, problems = verify_offline(data, tmp_path / "bundle", template.log_key)
        assert not problems and size == view.size, problems


def test_a_store_that_cannot_be_mapped_is_refused_in_words(
    tmp_path: Path, town_template: tuple[Town, TownDir]
) -> None:
    """``mmap`` fails once, at open: the node refuses to start, says why, writes nothing."""
    _, template = town_template
    data = tmp_path / "data"
    shutil.copytree(template.data, data)
    before = {path.name: path.read_bytes() for path in (data / "ledger.lmdb").iterdir()}

    def small_address_space() -> None:  # the 1 TiB map cannot be reserved
        limit = 8 << 30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run(
        [BIN / "redlist-node", "serve", "--data", data, "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=small_address_space,
        check=False,
    )
    assert done.returncode != 0
    assert "cannot open the ledger database" in done.stderr, done.stderr
    after = {path.name: path.read_bytes() for path in (data / "ledger.lmdb").iterdir()}
    assert after["data.mdb"] == before["data.mdb"]
