"""Ingest over gRPC, durable (DESIGN 6): entries/s as a share of the all-core verify limit.

A real ``redlist-node serve`` process on 127.0.0.1 takes awards that were signed
beforehand, in batches, from several client threads; a run is timed from the
first request to the last acknowledgement (each one durable). Each run starts
from a fresh log. In the same process, the Ed25519 verify limit is measured with
the library the ledger verifies with, on as many threads as there are cores
(``benchmarks/_limits.py``). One JSON object goes to stdout; progress to stderr.

Beside the rate, the CPU time an entry cost over the same span (where ``/proc`` says):
the node's process with its signature workers, and this process's clients. Other work
on a shared machine slows the rate far more than it changes these, so they compare
two versions of the code where the rate cannot (docs/performance.md).

    python benchmarks/ingest.py [--entries 20000] [--batch 500] [--clients 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from _limits import core_count, machine, verify_limit

from redlist.ledger import codec, crypto, deeddate
from redlist.ledger.entry import Award, Genesis, Grade, KeyChange, RuleChange, TownConfig
from redlist.ledger.log import Log
from redlist.ledger.note.keys import NoteSigner
from redlist.v1 import ledger_pb2, ledger_pb2_grpc

ORIGIN = "bench.redlist.example/log"
CONFIG = TownConfig(1000, (Grade("A", 960), Grade("B", None)), 2, 7, "Asia/Shanghai")
DESIGN_TARGET = 0.5
#: Signatures of ``BenchTown.setup`` beyond one an entry: the council's two on the rule.
EXTRA_SETUP_SIGNATURES = 2


class BenchTown:
    """Fixed keys and a counter of entry ids: the same envelopes are valid in every run."""

    def __init__(self) -> None:
        def key(role: str) -> crypto.SigningKey:
            return crypto.SigningKey.from_seed(hashlib.sha256(b"bench/" + role.encode()).digest())

        self.admin, self.grid, self.log_key = key("admin"), key("grid"), key("log")
        self.council = (key("council-1"), key("council-2"))
        self.now_ms = time.time_ns() // 1_000_000
        self._ids = 0
        self._awarded = 0  # the resident the next batch of awards starts at

    def next_id(self) -> bytes:
        self._ids += 1
        return hashlib.sha256(b"bench/entry/%d" % self._ids).digest()[:16]

    def today(self) -> str:
        """The deed date of the day of ``now_ms`` in the town's time zone."""
        return deeddate.format_date(deeddate.day_of(self.now_ms, deeddate.log_zone(CONFIG.tz)))

    def sign(self, body: bytes, *signers: crypto.SigningKey) -> bytes:
        ordered = sorted(signers, key=lambda signer: signer.key_id)
        return codec.encode(
            [body, [[signer.key_id, crypto.sign_entry(signer, body)] for signer in ordered]]
        )

    def genesis(self) -> bytes:
        body = Genesis(ORIGIN, self.next_id(), self.now_ms, self.admin.public, CONFIG)
        return self.sign(body.to_bytes(), self.admin)

    def setup(self) -> list[bytes]:
        """The grid worker and two council members (signed by the admin alone while the
        log is set up), then the rule, with the council's approval (the governance)."""
        staff = [
            KeyChange(ORIGIN, self.next_id(), self.now_ms, "add", key.public, name, (role,))
            for key, name, role in (
                (self.grid, "grid", "grid"),
                (self.council[0], "council one", "council"),
                (self.council[1], "council two", "council"),
            )
        ]
        rule = RuleChange(
            ORIGIN,
            self.next_id(),
            self.now_ms,
            "set",
            "clean-pond",
            "Pond",
            "environment",
            5,
            False,
        )
        return [
            *(self.sign(key.to_bytes(), self.admin) for key in staff),
            self.sign(rule.to_bytes(), self.admin, *self.council),
        ]

    def skip_ids(self, count: int) -> None:
        """Continue the ids after ``count`` of them (to sign a later part elsewhere)."""
        self._ids = count

    def awards(self, count: int, accounts: int = 5000, first: int | None = None) -> list[bytes]:
        """``count`` awards under the rule, to ``accounts`` residents in turn, from the
        ``first``-th resident on (by default where the previous call stopped, so that
        batches of a growing log go round all the residents)."""
        if first is None:
            first = self._awarded
        self._awarded = first + count
        return [
            self.sign(
                Award(
                    ORIGIN,
                    self.next_id(),
                    self.now_ms,
                    f"resident-{n % accounts}",
                    "clean-pond",
                    date=self.today(),
                ).to_bytes(),
                self.grid,
            )
            for n in range(first, first + count)
        ]


def make_log(data: Path, town: BenchTown, genesis: bytes, setup: list[bytes]) -> int:
    signer = NoteSigner(ORIGIN, town.log_key)
    with Log.create(
        data, origin=ORIGIN, log_signer=signer, genesis=genesis, now_ms=town.now_ms
    ) as log:
        log.append(setup, now_ms=town.now_ms)
        return log.size


@dataclass(frozen=True)
class RunFigures:
    """One run: entries acknowledged a second, and CPU µs an entry over the same span
    (None where the system does not say)."""

    entries_per_second: float
    node_cpu_us: float | None
    client_cpu_us: float | None


def process_tree_cpu(pid: int) -> float | None:
    """CPU seconds (user and system) used so far by ``pid`` and its living descendants
    (the node and its signature workers), from ``/proc``; None without it."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return None
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            if current == pid:
                return None
            continue  # a worker that just exited
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
        for task in tasks:
            with contextlib.suppress(OSError):
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return total / ticks


def own_cpu() -> float:
    """CPU seconds this process (every thread) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_node(
    data: Path,
    *,
    prefix: Sequence[str] = (),
    options: Sequence[str] = (),
    stderr: int | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """``redlist-node serve`` of ``data`` on 127.0.0.1 in a subprocess (run by ``prefix``
    when given, as ``scripts/count_instructions.py`` runs it under callgrind): the
    process, and the address it serves on, from the first line it prints."""
    process = subprocess.Popen(
        [
            *prefix,
            *(sys.executable, "-m", "redlist.node.cli", "serve", "--data", str(data)),
            *("--listen", "127.0.0.1:0", "--log-level", "warning", *options),
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    line = process.stdout.readline() if process.stdout is not None else ""
    match = re.search(r" on (\S+)$", line.strip())
    if match is None:
        process.kill()
        _, said = process.communicate(timeout=60)
        raise SystemExit(f"the node did not start: {line!r} {said or ''}")
    return process, match[1]


def submit_in_turns(
    stubs: Sequence[ledger_pb2_grpc.LedgerStub],
    requests: Sequence[ledger_pb2.SubmitRequest],
    *,
    timeout: float,
) -> None:
    """Submit ``requests`` from one thread a stub, each taking every n-th request in
    order and the next only once the last is answered; SystemExit if any failed."""
    clients = len(stubs)
    errors: list[BaseException] = []

    def client(number: int) -> None:
        try:
            for request in requests[number::clients]:
                stubs[number].Submit(request, timeout=timeout)
        except BaseException as error:  # reported after the run
            errors.append(error)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"a Submit failed: {errors[0]}")


def ingest_run(data: Path, batches: list[list[bytes]], clients: int) -> RunFigures:
    """Serve ``data`` in a subprocess, submit ``batches`` from ``clients`` threads."""
    process, address = start_node(data)
    try:
        channels = [grpc.insecure_channel(address) for _ in range(clients)]
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=10)
        stubs = [ledger_pb2_grpc.LedgerStub(channel) for channel in channels]
        requests = [ledger_pb2.SubmitRequest(envelopes=batch) for batch in batches]
        node_before, client_before = process_tree_cpu(process.pid), own_cpu()
        started = time.perf_counter()
        submit_in_turns(stubs, requests, timeout=120)
        elapsed = time.perf_counter() - started
        node_after, client_after = process_tree_cpu(process.pid), own_cpu()
        for channel in channels:
            channel.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    entries = sum(len(batch) for batch in batches)
    node_cpu = None
    if node_before is not None and node_after is not None:
        node_cpu = (node_after - node_before) / entries * 1e6
    return RunFigures(entries / elapsed, node_cpu, (client_after - client_before) / entries * 1e6)


def _us(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f} µs"


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return round(statistics.median(known), 1) if known else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--verify-count", type=int, default=20_000)
    args = parser.parse_args(argv)
    cores = core_count()

    town = BenchTown()
    genesis, setup = town.genesis(), town.setup()
    print(f"signing {args.entries} awards", file=sys.stderr)
    awards = town.awards(args.entries)
    batches = [awards[i : i + args.batch] for i in range(0, len(awards), args.batch)]

    rates: list[float] = []
    limits: list[float] = []
    node_cpu: list[float | None] = []
    client_cpu: list[float | None] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="redlist-ingest-") as scratch:
            data = Path(scratch) / "data"
            base = make_log(data, town, genesis, setup)
            figures = ingest_run(data, batches, args.clients)
            with Log.open(data, readonly=True) as log:
                if log.size != base + args.entries:
                    raise SystemExit(
                        f"run {run}: {log.size - base} entries stored, not {args.entries}"
                    )
        limits.append(verify_limit(args.verify_count, cores))
        rates.append(figures.entries_per_second)
        node_cpu.append(figures.node_cpu_us)
        client_cpu.append(figures.client_cpu_us)
        print(
            f"run {run + 1}: {figures.entries_per_second:,.0f} entries/s; verify limit "
            f"{limits[-1]:,.0f}/s; CPU an entry: node and workers {_us(figures.node_cpu_us)}, "
            f"clients {_us(figures.client_cpu_us)}",
            file=sys.stderr,
        )

    ingest = statistics.median(rates)
    limit = statistics.median(limits)
    result = {
        "benchmark": "ingest",
        "machine": machine(),
        "entries": args.entries,
        "batch": args.batch,
        "clients": args.clients,
        "runs": [round(rate, 1) for rate in rates],
        "entries_per_second": round(ingest, 1),
        # CPU time an entry (µs, medians): the node with its workers, and the clients.
        "node_cpu_us_per_entry": _median(node_cpu),
        "client_cpu_us_per_entry": _median(client_cpu),
        "verify_threads": cores,
        "verify_limit_per_second": round(limit, 1),
        "ratio": round(ingest / limit, 3),
        "target_ratio": DESIGN_TARGET,
        "meets_target": ingest / limit >= DESIGN_TARGET,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
