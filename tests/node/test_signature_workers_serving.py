"""A serving node's signature workers run nicer than it; one killed is replaced by
another as nice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import grpc
import pytest
from tests.builders import Town, create_log, submit_request
from tests.node.serving import serve_in_subprocess
from tests.waiting import eventually

from redlist.ledger.cores import available_cores
from redlist.ledger.sigworkers import MOST_NICE
from redlist.node.commands.serve import WORKER_NICENESS
from redlist.v1 import ledger_pb2_grpc

pytestmark = pytest.mark.skipif(
    available_cores() < 2, reason="a node starts signature workers from two cores on"
)


def _workers_of(pid: int) -> list[int]:
    """The node's signature worker processes (``python -m redlist.ledger.sigchild``)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if b"redlist.ledger.sigchild" in command:
                found.append(int(child))
    return sorted(found)


def _assert_nicer(node: int) -> None:
    """The node's writer has the cores first: its workers run WORKER_NICENESS nicer."""
    expected = min(MOST_NICE, os.getpriority(os.PRIO_PROCESS, node) + WORKER_NICENESS)
    workers = _workers_of(node)
    assert workers
    assert [os.getpriority(os.PRIO_PROCESS, worker) for worker in workers] == [expected] * len(
        workers
    )


def test_a_killed_signature_worker_is_replaced_and_counted(tmp_path: Path) -> None:
    town = Town.from_seed(b"a signature worker killed while serving")
    data = tmp_path / "data"
    create_log(data, town, setup=True).close()
    processes: list[subprocess.Popen[bytes]] = []
    with (
        serve_in_subprocess(
            data, "--metrics", "127.0.0.1:0", output=tmp_path, started=processes.append
        ) as address,
        grpc.insecure_channel(address) as channel,
    ):
        node = processes[0].pid
        assert eventually(lambda: len(_workers_of(node)) == 2, 30.0)
        _assert_nicer(node)
        killed = _workers_of(node)[0]
        os.kill(killed, signal.SIGKILL)  # as the kernel's out-of-memory killer would

        stub = ledger_pb2_grpc.LedgerStub(channel)
        printed = (tmp_path / "serve.out").read_text()
        port = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", printed)
        assert port, printed
        url = f"http://127.0.0.1:{port[1]}/metrics"

        def scraped() -> str:
            return urllib.request.urlopen(url, timeout=10).read().decode()

        batches = iter(range(1000))

        def submitted_and_replaced() -> bool:
            # A batch whose job meets the dead worker tells its thread it is gone; the
            # node verifies that job itself. Batches go on until the place is taken.
            batch = next(batches)
            awards = [town.award(f"resident-{batch}-{n}", "clean-pond") for n in range(40)]
            assert len(stub.Submit(submit_request(awards), timeout=60).seqs) == 40
            return "redlist_signature_worker_replacements_total 1.0" in scraped()

        assert eventually(submitted_and_replaced, 30.0, 0.1)
        assert eventually(lambda: len(_workers_of(node)) == 2, 30.0)
        assert killed not in _workers_of(node)
        _assert_nicer(node)  # the one started in the killed one's place too
        assert eventually(lambda: "redlist_signature_workers 2.0" in scraped(), 30.0)
    said = (tmp_path / "serve.err").read_text()
    assert "a signature worker was killed by signal 9; another is started in its place" in said
