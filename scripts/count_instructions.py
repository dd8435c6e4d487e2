"""Instructions a real node runs for an award, counted by callgrind (docs/performance.md).

A node (``redlist-node serve``) runs under ``valgrind --tool=callgrind`` while two
clients submit the awards of ``benchmarks/ingest.py`` in batches of 500 over gRPC,
once with ``--small`` batches and once with ``--large``; the difference of the two
totals over the difference of the awards is what the node runs for one award (its
start-up and its end cancel out). The signature workers run outside valgrind, so
they are not counted. Instructions, not seconds: the same count on a quiet or a busy
machine (within about 0.3%), so two versions of the code compare in one run each,
where the ingest's rate needs many (valgrind is Debian's package of that name).

    python scripts/count_instructions.py [--small 2] [--large 10] [--batch 500] [--keep DIR]

One JSON object goes to stdout. With ``--keep DIR`` the two callgrind files stay in
DIR for ``callgrind_annotate``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from ingest import ORIGIN, BenchTown, start_node, submit_in_turns

from redlist.ledger.log import Log
from redlist.ledger.note.keys import NoteSigner
from redlist.v1 import ledger_pb2, ledger_pb2_grpc

#: valgrind cannot reserve the node's default map of the store (1 TiB of addresses).
MAP_SIZE_GIB = 1


def node_instructions(batches: int, batch: int, out: Path) -> int:
    """The instructions a node ran, start to exit, taking ``batches`` of ``batch`` awards."""
    town = BenchTown()
    with tempfile.TemporaryDirectory(prefix="redlist-instructions-") as scratch:
        data = Path(scratch) / "log"
        signer = NoteSigner(ORIGIN, town.log_key)
        with Log.create(
            data,
            origin=ORIGIN,
            log_signer=signer,
            genesis=town.genesis(),
            now_ms=town.now_ms,
            map_size=MAP_SIZE_GIB << 30,
        ) as log:
            log.append(town.setup(), now_ms=town.now_ms)
        requests = [ledger_pb2.SubmitRequest(envelopes=town.awards(batch)) for _ in range(batches)]
        node, address = start_node(
            data,
            prefix=(
                "valgrind",
                "--tool=callgrind",
                "--trace-children=no",
                f"--callgrind-out-file={out}",
            ),
            options=("--map-size", str(MAP_SIZE_GIB)),
            stderr=subprocess.PIPE,
        )
        try:
            channels = [grpc.insecure_channel(address) for _ in range(2)]
            stubs = [ledger_pb2_grpc.LedgerStub(channel) for channel in channels]
            submit_in_turns(stubs, requests, timeout=600)
            for channel in channels:
                channel.close()
        finally:
            node.send_signal(signal.SIGTERM)
            _, report = node.communicate(timeout=600)
    collected = re.search(r"Collected : (\d+)", report)
    if collected is None:
        raise SystemExit(f"callgrind reported no count:\n{report[-2000:]}")
    return int(collected[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2, help="batches of the short run")
    parser.add_argument("--large", type=int, default=10, help="batches of the long run")
    parser.add_argument("--batch", type=int, default=500, help="awards a batch")
    parser.add_argument("--keep", type=Path, help="keep the callgrind files in this folder")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt install valgrind)")
    if not 0 < args.small < args.large or args.batch < 1:
        raise SystemExit("--small must be at least 1 and less than --large; --batch at least 1")
    with tempfile.TemporaryDirectory(prefix="redlist-callgrind-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        counts = {
            size: node_instructions(size, args.batch, folder / f"callgrind.{size}")
            for size in (args.small, args.large)
        }
    awards = (args.large - args.small) * args.batch
    result = {
        "measure": "node instructions an award",
        "awards": awards,
        "instructions_per_award": round((counts[args.large] - counts[args.small]) / awards),
        "totals": {str(size): count for size, count in counts.items()},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
