"""kill -9 of a node while entries with free texts go in: nothing acknowledged loses its text.

The node stores a batch's texts (flushed) before it appends the batch (node/texts.py), so
a kill at any moment leaves at worst texts of entries never appended, which the restarted
node removes. Every entry a Submit acknowledged must still have its text.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
from tests.builders import Town, create_log, submit_request
from tests.node.serving import serve_in_subprocess

from redlist.ledger.log import Log
from redlist.ledger.textstore import TextStore
from redlist.node.texts import NodeTexts
from redlist.v1 import ledger_pb2_grpc


def test_kill_9_while_texts_go_in_loses_no_acknowledged_text(tmp_path: Path) -> None:
    town = Town.generate()
    data = tmp_path / "data"
    create_log(data, town, setup=True).close()
    acknowledged: dict[int, str] = {}
    stop = threading.Event()
    started: list[subprocess.Popen[bytes]] = []

    def submit(address: str) -> None:
        with grpc.insecure_channel(address) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            number = 0
            while not stop.is_set():
                notes = [f"note {number}-{n}" for n in range(20)]
                batch = [town.award(f"r-{number % 7}", "clean-pond", note=note) for note in notes]
                number += 1
                try:
                    answer = stub.Submit(submit_request(batch), timeout=10)
                except grpc.RpcError:
                    return  # the node is gone: what was acknowledged is what counts
                acknowledged.update(zip(answer.seqs, notes, strict=True))

    with serve_in_subprocess(data, output=tmp_path, started=started.append) as address:
        thread = threading.Thread(target=submit, args=(address,))
        thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        started[0].send_signal(signal.SIGKILL)  # in the middle of whatever it was doing
        started[0].wait()
        stop.set()
        thread.join()
    assert len(acknowledged) >= 200

    # Restarted, the node cleans up texts of entries it never appended, and keeps all else.
    with serve_in_subprocess(data, output=tmp_path):
        pass
    with Log.open(data, readonly=True) as log:
        texts = NodeTexts(data, log)
        for seq, note in acknowledged.items():
            assert texts.texts_for(seq) == {"note": note}, seq
        size = log.size
        with TextStore.open(data) as store:
            kept = len(store.stored_keys())
        # Exactly the notes of the entries in the log: none of a batch never appended.
        in_log = sum(1 for seq in range(size) if texts.texts_for(seq))
    assert kept == in_log
