"""An account too large for one answer reads page by page, through the real tools.

One resident with 5,000 awards. Free texts are off the log (DESIGN 9.2), so a leaf
is a few hundred bytes and no longer pads an account to hundreds of megabytes: the
account is long by its number of entries, five pages of the largest size. The log is
built by appending to a real ``Log`` (no gRPC submits), then served by
``redlist-node serve`` in a subprocess; ``redlist account`` and ``redlist-verify node``
run as subprocesses too, each under a small wrapper that reports its peak memory.
Every page stays within the byte bound, and the clients' and the node's memory stay
bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.builders import Town, create_log
from tests.node.serving import BIN, serve_in_subprocess

from redlist.ledger.statement import PAGE_BYTES
from redlist.proto.client import NodeClient
from redlist.v1 import ledger_pb2 as pb

ACCOUNT = "resident-1"
ENTRIES = 5_000
#: Awards appended per batch (one durable commit each).
BATCH = 500
#: Peak memory of ``redlist account``, in bytes, under half the account's entries
#: (measured: about 70 MB).
ACCOUNT_CEILING = 160 * 1024 * 1024
#: Peak memory of ``redlist-verify node``, in bytes, which also holds the entries it
#: audits in flight (measured: about 160 MB).
VERIFY_CEILING = 256 * 1024 * 1024
#: Anonymous memory the node may gain while serving every page and leaf, in bytes
#: (measured: under 10 MB).
NODE_GROWTH_CEILING = 64 * 1024 * 1024

# Runs a command and prints its peak resident memory (ru_maxrss, KiB) on stderr's last line.
_PEAK = (
    "import resource, subprocess, sys\n"
    "status = subprocess.run(sys.argv[1:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'peak-kib {peak}', file=sys.stderr)\n"
    "sys.exit(status)\n"
)


def run_measured(*command: str | Path) -> tuple[int, str, int]:
    """Exit status, stdout and peak memory (bytes) of ``command``."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *map(str, command)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    *_, last = done.stderr.splitlines()
    assert last.startswith("peak-kib "), done.stderr
    return done.returncode, done.stdout, int(last.split()[1]) * 1024


def anonymous_memory(pid: int) -> int:
    """The process's resident anonymous memory, in bytes (LMDB's map is file-backed)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc")


def test_an_account_of_5000_entries_reads_page_by_page(tmp_path: Path) -> None:
    town = Town.generate()
    with create_log(tmp_path / "data", town, setup=True) as log:
        for _ in range(ENTRIES // BATCH):
            awards = [town.award(ACCOUNT, "clean-pond") for _ in range(BATCH)]
            log.append(awards, now_ms=town.now_ms)
        size = log.size
    vkey = town.log_signer.verifier().encode()

    started: list[subprocess.Popen[bytes]] = []
    with serve_in_subprocess(tmp_path / "data", output=tmp_path, started=started.append) as address:
        node = started[0]
        before = anonymous_memory(node.pid)

        # Each page is within the byte bound, and they add up to the whole account.
        with NodeClient(address) as client:
            pages = 0
            listed = 0
            token = b""
            while True:
                message = client._stub.GetAccount(
                    pb.GetAccountRequest(account=ACCOUNT, page_size=1000, page_token=token)
                )
                assert message.ByteSize() <= PAGE_BYTES
                pages += 1
                listed += len(message.entries)
                token = message.next_page_token
                if not token:
                    break
        assert listed == ENTRIES and pages >= ENTRIES // 1000

        status, out, peak = run_measured(
            BIN / "redlist", "account", ACCOUNT, "--node", address, "--log-key", vkey
        )
        assert status == 0, out
        lines = out.splitlines()
        assert lines[0].endswith(f"as of entry {size - 1}")
        assert f"score:     {1000 + 5 * ENTRIES:>6}" in lines[1]
        rows = [line.split()[0] for line in lines[6:]]
        assert rows == [str(seq) for seq in range(size - ENTRIES, size)]
        assert peak < ACCOUNT_CEILING, f"redlist account peaked at {peak} bytes"

        status, out, peak = run_measured(
            BIN / "redlist-verify", "node", address, "--log-key", vkey, "--json"
        )
        verdict = json.loads(out)
        assert status == 0, verdict
        assert verdict["accounts"][ACCOUNT]["score"] == 1000 + 5 * ENTRIES
        assert verdict["node"]["accounts_checked"] == 1
        assert peak < VERIFY_CEILING, f"redlist-verify node peaked at {peak} bytes"

        growth = anonymous_memory(node.pid) - before
        assert growth < NODE_GROWTH_CEILING, f"the node grew by {growth} bytes"
