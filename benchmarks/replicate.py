"""Mirror catch-up and lag (DESIGN 6: catch-up at least 0.8 of the ingest rate).

In one run: a real ``redlist-node serve`` process on 127.0.0.1 takes ``--entries``
awards over gRPC (the ingest rate, timed as ``ingest.py`` times it); then a
``redlist-node mirror`` process copies that log from zero into a fresh data
directory, verifying every entry, and its catch-up rate is timed from its own log
lines (from "mirroring ... size=0" to the commit that reaches the log's size, so
the interpreter's start-up is not counted). Then, with the mirror following, awards
are submitted in batches at ``--steady-share`` of the ingest rate for
``--steady-batches`` batches, and the mirror's lag is measured: in entries (the
primary's acknowledged size minus the mirror's, sampled every few milliseconds) and
in milliseconds (from a batch's acknowledgement to the mirror serving a checkpoint
that covers it). The Ed25519 verify limit (``_limits.py``) is measured in the same
process. One JSON object goes to stdout; progress to stderr.

    python benchmarks/replicate.py [--entries 20000] [--batch 500] [--clients 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from _limits import core_count, machine, verify_limit
from ingest import ORIGIN, BenchTown, make_log

from redlist.ledger.note.checkpoint import open_checkpoint
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.v1 import ledger_pb2, ledger_pb2_grpc

DESIGN_TARGET = 0.8
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


@contextmanager
def node(command: list[str], err: Path) -> Iterator[str]:
    """A ``redlist-node`` subprocess; yields the address from its first stdout line."""
    with err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "redlist.node.cli", *command],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        line = process.stdout.readline() if process.stdout is not None else ""
        match = re.search(r" on (\S+)$", line.strip())
        if match is None:
            raise SystemExit(f"redlist-node {command[0]} did not start: {err.read_text()}")
        yield match[1]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def size_at(stub: ledger_pb2_grpc.LedgerStub, key: VerifierKey) -> int:
    try:
        note = stub.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=10).checkpoint
    except grpc.RpcError:
        return 0  # a mirror that holds nothing yet
    return open_checkpoint(note, key).size


def submit_all(address: str, batches: list[list[bytes]], clients: int) -> float:
    """Submit ``batches`` from ``clients`` threads, each waiting for durability; entries/s."""
    channels = [grpc.insecure_channel(address) for _ in range(clients)]
    stubs = [ledger_pb2_grpc.LedgerStub(channel) for channel in channels]
    errors: list[BaseException] = []

    def client(number: int) -> None:
        try:
            for batch in batches[number::clients]:
                stubs[number].Submit(ledger_pb2.SubmitRequest(envelopes=batch), timeout=120)
        except BaseException as error:  # reported after the run
            errors.append(error)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for channel in channels:
        channel.close()
    if errors:
        raise SystemExit(f"a Submit failed: {errors[0]}")
    return sum(len(batch) for batch in batches) / elapsed


def catch_up_seconds(err: Path, size: int) -> float:
    """From the mirror's start line to its commit reaching ``size``, by its own log lines."""
    start = end = None
    for line in err.read_text().splitlines():
        stamp = _STAMP.match(line)
        if stamp is None:
            continue
        moment = datetime.datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if "mirroring origin=" in line and start is None:
            start = moment
        found = re.search(r" mirrored .* size=(\d+) ", line)
        if found and int(found[1]) >= size and end is None:
            end = moment
    if start is None or end is None:
        raise SystemExit(f"the mirror's log does not show its catch-up: {err.read_text()[-2000:]}")
    return max(end - start, 0.001)


def steady_lag(
    primary: str, mirror: str, key: VerifierKey, batches: list[list[bytes]], pause: float
) -> dict[str, float]:
    """Submit ``batches`` one at a time, ``pause`` seconds apart; the mirror's lag."""
    acked: list[tuple[int, float]] = []  # (size covering the batch, acknowledgement time)
    lags_entries: list[int] = []
    reached: dict[int, float] = {}
    done = threading.Event()

    def watch() -> None:
        with grpc.insecure_channel(mirror) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            while not done.is_set():
                size = size_at(stub, key)
                now = time.perf_counter()
                reached.setdefault(size, now)
                if acked:
                    lags_entries.append(max(0, acked[-1][0] - size))
                time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    with grpc.insecure_channel(primary) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        for batch in batches:
            answer = stub.Submit(ledger_pb2.SubmitRequest(envelopes=batch), timeout=120)
            acked.append((answer.seqs[-1] + 1, time.perf_counter()))
            time.sleep(pause)
    deadline = time.perf_counter() + 60
    while max(reached, default=0) < acked[-1][0] and time.perf_counter() < deadline:
        time.sleep(0.01)
    done.set()
    watcher.join()
    lags_ms = []
    for size, at in acked:
        first = min((when for held, when in reached.items() if held >= size), default=None)
        if first is None:
            raise SystemExit(f"the mirror never reached size {size}")
        lags_ms.append(max(0.0, (first - at) * 1000))
    return {
        "lag_ms_median": round(statistics.median(lags_ms), 1),
        "lag_ms_max": round(max(lags_ms), 1),
        "lag_entries_median": statistics.median(lags_entries) if lags_entries else 0,
        "lag_entries_max": max(lags_entries, default=0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--steady-batches", type=int, default=40)
    parser.add_argument("--steady-batch", type=int, default=100)
    parser.add_argument("--steady-share", type=float, default=0.5)
    parser.add_argument("--verify-count", type=int, default=20_000)
    args = parser.parse_args(argv)
    cores = core_count()

    town = BenchTown()
    key = NoteSigner(ORIGIN, town.log_key).verifier()
    genesis, setup = town.genesis(), town.setup()
    print(
        f"signing {args.entries} + {args.steady_batches * args.steady_batch} awards",
        file=sys.stderr,
    )
    awards = town.awards(args.entries)
    batches = [awards[i : i + args.batch] for i in range(0, len(awards), args.batch)]
    steady = town.awards(args.steady_batches * args.steady_batch)
    steady_batches = [
        steady[i : i + args.steady_batch] for i in range(0, len(steady), args.steady_batch)
    ]
    limit_before = verify_limit(args.verify_count, cores)
    with tempfile.TemporaryDirectory(prefix="redlist-replicate-") as scratch:
        root = Path(scratch)
        base = make_log(root / "primary", town, genesis, setup)
        quiet = ("--listen", "127.0.0.1:0", "--log-level", "info")
        with node(
            ["serve", "--data", str(root / "primary"), *quiet], root / "serve.err"
        ) as primary:
            ingest = submit_all(primary, batches, args.clients)
            size = base + args.entries
            print(f"ingest: {ingest:,.0f} entries/s", file=sys.stderr)
            (root / "log.pub").write_text(key.encode() + "\n")
            mirror_command = [
                "mirror",
                "--data",
                str(root / "mirror"),
                "--from",
                primary,
                "--log-key",
                str(root / "log.pub"),
                *quiet,
            ]
            with node(mirror_command, root / "mirror.err") as mirror:
                with grpc.insecure_channel(mirror) as channel:
                    stub = ledger_pb2_grpc.LedgerStub(channel)
                    deadline = time.monotonic() + 600
                    while size_at(stub, key) < size:
                        if time.monotonic() > deadline:
                            raise SystemExit("the mirror did not catch up in 10 minutes")
                        time.sleep(0.01)
                catch_up = size / catch_up_seconds(root / "mirror.err", size)
                print(f"catch-up: {catch_up:,.0f} entries/s", file=sys.stderr)
                pause = args.steady_batch / (ingest * args.steady_share)
                lag = steady_lag(primary, mirror, key, steady_batches, pause)
    limit = statistics.median([limit_before, verify_limit(args.verify_count, cores)])
    result = {
        "benchmark": "replicate",
        "machine": machine(),
        "entries": size,
        "batch": args.batch,
        "clients": args.clients,
        "ingest_entries_per_second": round(ingest, 1),
        "catch_up_entries_per_second": round(catch_up, 1),
        "catch_up_to_ingest": round(catch_up / ingest, 3),
        "target_catch_up_to_ingest": DESIGN_TARGET,
        "meets_target": catch_up / ingest >= DESIGN_TARGET,
        "verify_threads": cores,
        "verify_limit_per_second": round(limit, 1),
        "ingest_ratio": round(ingest / limit, 3),
        "catch_up_ratio": round(catch_up / limit, 3),
        "steady_entries_per_second": round(ingest * args.steady_share, 1),
        "steady_batches": args.steady_batches,
        "steady_batch": args.steady_batch,
        **lag,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
