"""Load (DESIGN 6, 7): a real node under concurrent writers and readers, for a bounded time.

A ``redlist-node serve`` process on 127.0.0.1 serves a fresh log while, for
``--seconds``, submitter threads send batches of awards (signed as they go, each
acknowledged only once durable) and reader threads ask, in turn, for the latest
checkpoint (its signature checked with the log key), a range of leaves (checked
against what was acknowledged), inclusion proofs of leaves already read (checked
against the latest checkpoint's root) and account statements. Then the node is
stopped and its log opened: every seq ever acknowledged must hold exactly the
envelope that was sent. No call may fail.

One JSON object goes to stdout: requests and p50/p99 latency (ms) per kind,
acknowledged entries per second, the node's resident memory (``VmRSS`` and its
anonymous part ``RssAnon`` from /proc) at the start, middle and end of the load,
and the all-core Ed25519 verify limit measured in this process afterwards
(``benchmarks/_limits.py``). Progress goes to stderr. The exit status is 0 only
when there were no errors and no lost acknowledgements.

    python benchmarks/load.py [--seconds 20] [--submitters 2] [--readers 4] [--batch 200]
    python benchmarks/load.py --quick      # 2 s, tiny: the test suite's correctness run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from _limits import core_count, machine, verify_limit
from ingest import ORIGIN, BenchTown, make_log

from redlist.ledger import merkle
from redlist.ledger.entry import Award, Leaf
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import SignedCheckpoint, open_checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

KINDS = ("submit", "checkpoint", "leaves", "inclusion", "account")
READ_KINDS = KINDS[1:]
#: Accounts the awards go to (and the account reads ask for).
ACCOUNTS = 500
#: Leaves asked for per GetLeaves call.
LEAVES_PER_READ = 16
#: Leaf hashes kept for inclusion proofs (a sample: memory must not grow with the run).
KEPT_LEAF_HASHES = 4096
CALL_TIMEOUT_S = 60.0


@dataclass
class Shared:
    """What the client threads share: the latest checkpoint, acks, leaf hashes, results."""

    log_key: VerifierKey
    deadline: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    latest: SignedCheckpoint | None = None
    #: seq -> SHA-256 of the acknowledged envelope.
    acked: dict[int, bytes] = field(default_factory=dict)
    #: seq -> leaf hash, for leaves read back (a bounded sample).
    leaf_hashes: dict[int, bytes] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: list[str] = field(default_factory=list)

    def running(self) -> bool:
        return time.monotonic() < self.deadline and not self.errors

    def record(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies[kind].append(seconds * 1000)

    def fail(self, kind: str, error: BaseException | str) -> None:
        with self.lock:
            self.errors.append(f"{kind}: {error}")

    def observe(self, checkpoint: SignedCheckpoint) -> None:
        with self.lock:
            if self.latest is None or checkpoint.size > self.latest.size:
                self.latest = checkpoint


def submitter(number: int, address: str, town: BenchTown, batch: int, shared: Shared) -> None:
    """Sign and submit batches of awards until the deadline; remember every ack."""
    count = 0
    today = town.today()
    with grpc.insecure_channel(address) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        while shared.running():
            envelopes = []
            for _ in range(batch):
                count += 1
                entry_id = hashlib.sha256(b"load/%d/%d" % (number, count)).digest()[:16]
                account = f"resident-{(number * 7919 + count) % ACCOUNTS}"
                body = Award(ORIGIN, entry_id, town.now_ms, account, "clean-pond", date=today)
                envelopes.append(town.sign(body.to_bytes(), town.grid))
            started = time.perf_counter()
            try:
                answer = stub.Submit(pb.SubmitRequest(envelopes=envelopes), timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as error:
                shared.fail("submit", error)
                return
            shared.record("submit", time.perf_counter() - started)
            if len(answer.seqs) != len(envelopes):
                shared.fail("submit", f"{len(answer.seqs)} seqs for {len(envelopes)} envelopes")
                return
            checkpoint = open_checkpoint(answer.checkpoint, shared.log_key)
            with shared.lock:
                for seq, envelope in zip(answer.seqs, envelopes, strict=True):
                    if seq >= checkpoint.size:
                        shared.errors.append(f"submit: seq {seq} beyond its checkpoint")
                    if seq in shared.acked:
                        shared.errors.append(f"submit: seq {seq} acknowledged twice")
                    shared.acked[seq] = hashlib.sha256(envelope).digest()
            shared.observe(checkpoint)


def reader(number: int, address: str, shared: Shared) -> None:
    """Cycle through the read kinds until the deadline, checking every answer."""
    rng = random.Random(number)
    with grpc.insecure_channel(address) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        reads: dict[str, Callable[[], bool]] = {
            "checkpoint": lambda: read_checkpoint(stub, shared),
            "leaves": lambda: read_leaves(stub, shared, rng),
            "inclusion": lambda: read_inclusion(stub, shared, rng),
            "account": lambda: read_account(stub, rng),
        }
        turn = number
        while shared.running():
            kind = READ_KINDS[turn % len(READ_KINDS)]
            turn += 1
            started = time.perf_counter()
            try:
                made = reads[kind]()
            except (grpc.RpcError, AssertionError, ValueError) as error:
                shared.fail(kind, error)
                return
            if made:
                shared.record(kind, time.perf_counter() - started)


def read_checkpoint(stub: ledger_pb2_grpc.LedgerStub, shared: Shared) -> bool:
    answer = stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=CALL_TIMEOUT_S)
    shared.observe(open_checkpoint(answer.checkpoint, shared.log_key))
    return True


def read_leaves(stub: ledger_pb2_grpc.LedgerStub, shared: Shared, rng: random.Random) -> bool:
    size = shared.latest.size if shared.latest is not None else 1
    start = rng.randrange(max(1, size - LEAVES_PER_READ + 1))
    end = min(size, start + LEAVES_PER_READ)
    request = pb.GetLeavesRequest(start=start, end=end)
    leaves = list(stub.GetLeaves(request, timeout=CALL_TIMEOUT_S))
    if [leaf.seq for leaf in leaves] != list(range(start, end)):
        raise AssertionError(f"GetLeaves [{start}, {end}) returned other seqs")
    with shared.lock:
        for item in leaves:
            leaf = Leaf.from_bytes(item.leaf)
            expected = shared.acked.get(item.seq)
            if leaf.seq != item.seq:
                raise AssertionError(f"leaf {item.seq} says it is seq {leaf.seq}")
            if expected is not None and hashlib.sha256(leaf.envelope).digest() != expected:
                raise AssertionError(f"leaf {item.seq} holds another envelope than was acked")
            if len(shared.leaf_hashes) >= KEPT_LEAF_HASHES:
                shared.leaf_hashes.pop(rng.choice(list(shared.leaf_hashes)))
            shared.leaf_hashes[item.seq] = merkle.leaf_hash(item.leaf)
    return True


def read_inclusion(stub: ledger_pb2_grpc.LedgerStub, shared: Shared, rng: random.Random) -> bool:
    """Prove a leaf read earlier in the latest checkpoint; False when none was read yet."""
    with shared.lock:
        latest = shared.latest
        if latest is None:
            return False
        known = [seq for seq in shared.leaf_hashes if seq < latest.size]
        if not known:
            return False
        seq = rng.choice(known)
        leaf_hash = shared.leaf_hashes[seq]
    request = pb.InclusionProofRequest(seq=seq, tree_size=latest.size)
    proof = stub.GetInclusionProof(request, timeout=CALL_TIMEOUT_S)
    merkle.verify_inclusion(leaf_hash, seq, latest.size, list(proof.hashes), latest.root)
    return True


def read_account(stub: ledger_pb2_grpc.LedgerStub, rng: random.Random) -> bool:
    account = f"resident-{rng.randrange(ACCOUNTS)}"
    answer = stub.GetAccount(pb.GetAccountRequest(account=account), timeout=CALL_TIMEOUT_S)
    if answer.account != account or answer.redeemed != 0 or answer.earned < 0:
        raise AssertionError(f"account {account}: an impossible statement")
    return True


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``RssAnon`` of process ``pid``, in KiB (empty when it is gone)."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "RssAnon"):
                    found[name] = int(value.split()[0])
    except OSError:
        pass
    return found


def start_node(data: Path) -> tuple[subprocess.Popen[str], str]:
    """``redlist-node serve`` on 127.0.0.1 with a free port; the process and its address."""
    script = Path(sys.executable).with_name("redlist-node")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "redlist.node.cli"]
    process = subprocess.Popen(
        [
            *command,
            "serve",
            "--data",
            str(data),
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline() if process.stdout is not None else ""
    match = re.search(r" on (\S+)$", line.strip())
    if match is None:
        process.kill()
        raise SystemExit(f"the node did not start: {line!r}")
    return process, match[1]


def stop_node(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def lost_acks(data: Path, acked: dict[int, bytes]) -> tuple[int, int]:
    """Open the stopped node's log; (acked seqs missing or different, the log's size)."""
    with Log.open(data, readonly=True) as log:
        size = log.size
        missing = sum(1 for seq in acked if seq >= size)
        wrong = 0
        for seq, leaf in log.leaves(0, size):
            expected = acked.get(seq)
            if expected is None:
                continue
            envelope = Leaf.from_bytes(leaf).envelope
            if hashlib.sha256(envelope).digest() != expected:
                wrong += 1
    return missing + wrong, size


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--submitters", type=int, default=2)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--verify-count", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="2 s, tiny batches: a correctness run")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.submitters, args.readers, args.batch = 2.0, 1, 2, 20
        args.verify_count = 2_000

    town = BenchTown()
    scratch = Path(tempfile.mkdtemp(prefix="redlist-load-"))
    try:
        data = scratch / "data"
        base = make_log(data, town, town.genesis(), town.setup())
        log_key = VerifierKey.parse((data / "log.pub").read_text().strip())
        process, address = start_node(data)
        rss: dict[str, dict[str, int]] = {}
        shared = Shared(log_key, deadline=0.0)
        try:
            with grpc.insecure_channel(address) as channel:
                grpc.channel_ready_future(channel).result(timeout=10)
            rss["start"] = memory_kib(process.pid)
            print(f"node at {address}; load for {args.seconds:g} s", file=sys.stderr)
            started = time.monotonic()
            shared.deadline = started + args.seconds
            threads = [
                threading.Thread(target=submitter, args=(n, address, town, args.batch, shared))
                for n in range(args.submitters)
            ] + [
                threading.Thread(target=reader, args=(n, address, shared))
                for n in range(args.readers)
            ]
            for thread in threads:
                thread.start()
            time.sleep(max(0.0, started + args.seconds / 2 - time.monotonic()))
            rss["middle"] = memory_kib(process.pid)
            middle_size = shared.latest.size if shared.latest is not None else base
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            rss["end"] = memory_kib(process.pid)
            if process.poll() is not None:
                shared.fail("node", f"the node exited with status {process.returncode}")
        finally:
            status = stop_node(process)
        if status != 0:
            shared.fail("node", f"the node's shutdown ended with status {status}")
        lost, final_size = lost_acks(data, shared.acked)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"measuring the verify limit ({args.verify_count} signatures)", file=sys.stderr)
    cores = core_count()
    limit = verify_limit(args.verify_count, cores)
    entries_per_second = len(shared.acked) / elapsed
    reads = sum(len(shared.latencies[kind]) for kind in READ_KINDS)
    anon = [rss[point].get("RssAnon") for point in ("middle", "end")]
    result = {
        "benchmark": "load",
        "machine": machine(),
        "seconds": round(elapsed, 2),
        "submitters": args.submitters,
        "readers": args.readers,
        "batch": args.batch,
        "requests": {kind: len(shared.latencies[kind]) for kind in KINDS},
        "latency_ms": {
            kind: {
                "p50": percentile(shared.latencies[kind], 0.50),
                "p99": percentile(shared.latencies[kind], 0.99),
            }
            for kind in KINDS
        },
        "entries_acked": len(shared.acked),
        "entries_per_second": round(entries_per_second, 1),
        "reads_per_second": round(reads / elapsed, 1),
        "log_size": {"start": base, "middle": middle_size, "end": final_size},
        "node_rss_mib": {point: mib(rss[point].get("VmRSS")) for point in rss},
        "node_rss_anon_mib": {point: mib(rss[point].get("RssAnon")) for point in rss},
        "rss_anon_end_over_middle": (
            round(anon[1] / anon[0], 3) if anon[0] and anon[1] is not None else None
        ),
        "verify_threads": cores,
        "verify_limit_per_second": round(limit, 1),
        "ingest_ratio": round(entries_per_second / limit, 3),
        "errors": len(shared.errors),
        "first_errors": shared.errors[:5],
        "lost_acks": lost,
        "ok": not shared.errors and lost == 0,
    }
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
