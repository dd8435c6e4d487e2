"""Memory under abuse: a real ``redlist-node serve`` stays under its configured ceiling.

The node runs as a subprocess with small limits (:data:`FLAGS`), so its ceiling
(:func:`redlist.node.config.memory_ceiling`) is a few hundred MB, and one client,
at 127.0.0.1, abuses it the ways docs/reliability.md ("Memory under abuse") lists:

* undecodable 4 MiB ``Submit`` requests, one after another (each INVALID_ARGUMENT);
* 60 MiB requests, over the message limit (each RESOURCE_EXHAUSTED, unread);
* well-formed envelopes with junk signatures, 4 MiB a request (PERMISSION_DENIED);
* 24 of those undecodable requests at once, round after round (the client's call
  limit refuses some);
* 20 ``GetLeaves`` streams over a 24 MB log that are never read (the client's
  stream limit refuses some; the node ends the others once a write has waited
  ``stream_write_seconds``).

Throughout, a second client (at ::1, so a client of its own) asks for the
checkpoint in a loop: every one of its calls must be answered. At the end the
node's peak resident memory (``VmHWM`` in ``/proc/PID/status``, which the kernel
keeps, so no peak is missed between samples) must be under the ceiling. The
ceiling is configuration, not timing: nothing here asserts how fast anything is.

``make soak`` (REDLIST_SOAK=1) repeats each abuse ten times as often.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from tests.builders import RuleSpec, Town, corrupt_signature, create_log, submit_request
from tests.node.serving import serve_in_subprocess

from redlist.node.config import memory_ceiling
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

SCALE = 10 if os.environ.get("REDLIST_SOAK") == "1" else 1
MiB = 1024 * 1024
MAX_MESSAGE_BYTES = 4 * MiB
MAX_CALLS = 12
MAX_CALLS_PER_CLIENT = 8
MAX_STREAMS = 8
MAX_STREAMS_PER_CLIENT = 6
STREAM_WRITE_SECONDS = 2
FLAGS = (
    *("--max-message-bytes", str(MAX_MESSAGE_BYTES)),
    *("--max-calls", str(MAX_CALLS), "--max-calls-per-client", str(MAX_CALLS_PER_CLIENT)),
    *("--max-streams", str(MAX_STREAMS)),
    *("--max-streams-per-client", str(MAX_STREAMS_PER_CLIENT)),
    *("--stream-write-timeout", str(STREAM_WRITE_SECONDS)),
)
CEILING = memory_ceiling(
    max_calls=MAX_CALLS, max_message_bytes=MAX_MESSAGE_BYTES, max_streams=MAX_STREAMS
)
#: Rule entries of about 60 KB each in the log: 24 MB, more than gRPC buffers.
LONG_RULES = 400
#: The client side takes messages of any size: the node's limit is under test.
UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _has_ipv6_loopback(), reason="needs ::1 beside 127.0.0.1 for a second client"
)


@dataclass
class Data:
    directory: Path
    size: int
    junk_signed: list[bytes]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    town = Town.generate()
    directory = tmp_path_factory.mktemp("memory-soak") / "data"
    with create_log(directory, town, setup=True) as log:
        for first in range(0, LONG_RULES, 100):
            rules = [RuleSpec(f"long-{n}", "x" * 60_000, "m", 1) for n in range(first, first + 100)]
            log.append([town.set_rule(rule) for rule in rules], now_ms=town.now_ms)
        size = log.size
    # Well formed, signed by the admin, each signature with one bit flipped: 68 of
    # them make a request just under 4 MiB.
    long = RuleSpec("junk", "y" * 61_000, "m", 1)
    junk_signed = [corrupt_signature(town.set_rule(long)) for _ in range(68)]
    return Data(directory, size, junk_signed)


class Memory:
    """The node's resident memory, sampled, and the kernel's high-water mark."""

    def __init__(self, pid: int) -> None:
        self._status = Path(f"/proc/{pid}/status")

    def read(self, field_name: str) -> int:
        match = re.search(rf"^{field_name}:\s+(\d+) kB", self._status.read_text(), re.MULTILINE)
        assert match is not None, f"no {field_name} in {self._status}"
        return int(match[1]) * 1024

    @property
    def resident(self) -> int:
        return self.read("VmRSS")

    @property
    def peak(self) -> int:
        return self.read("VmHWM")


@dataclass
class Prober:
    """Another client's GetCheckpoint, in a loop, in a thread."""

    address: str
    answered: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with grpc.insecure_channel(self.address) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            while not self._stop.is_set():
                try:
                    stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=30)
                    self.answered += 1
                except grpc.RpcError as error:
                    self.failures.append(f"{error.code()}: {error.details()}")
                self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Phase:
    name: str
    before: int
    after: int
    answered: int
    codes: Counter[str]
    seconds: float


def _code(call: Callable[[], object]) -> str:
    try:
        call()
    except grpc.RpcError as error:
        return error.code().name
    return "OK"


def test_the_node_stays_under_its_memory_ceiling_under_abuse(data: Data, tmp_path: Path) -> None:
    pids: list[int] = []

    def started(process: subprocess.Popen[bytes]) -> None:
        pids.append(process.pid)

    with serve_in_subprocess(
        data.directory, *FLAGS, output=tmp_path, listen="localhost:0", started=started
    ) as address:
        port = address.rpartition(":")[2]
        memory = Memory(pids[0])
        base = memory.resident
        prober = Prober(f"[::1]:{port}")
        probing = threading.Thread(target=prober.run, name="prober")
        probing.start()
        phases: list[Phase] = []
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=UNLIMITED) as channel:
                abuse = Abuse(channel, f"127.0.0.1:{port}", data, tmp_path / "serve.err")
                for name, run in abuse.phases():
                    before, answered = memory.resident, prober.answered
                    began = time.monotonic()
                    codes = run()
                    seconds = time.monotonic() - began
                    while prober.answered == answered and not prober.failures:
                        time.sleep(0.05)  # answered during this phase too
                    phases.append(
                        Phase(
                            name,
                            before,
                            memory.resident,
                            prober.answered - answered,
                            codes,
                            seconds,
                        )
                    )
        finally:
            prober.stop()
            probing.join()
        peak = memory.peak

    report = [
        f"memory soak (scale {SCALE}): ceiling {CEILING / MiB:.0f} MiB, idle {base / MiB:.0f}"
    ]
    for phase in phases:
        report.append(
            f"  {phase.name}: {phase.before / MiB:.0f} -> {phase.after / MiB:.0f} MiB, "
            f"{dict(phase.codes)}, other client answered {phase.answered} "
            f"({phase.seconds:.1f} s)"
        )
    report.append(f"  peak {peak / MiB:.0f} MiB; other client answered {prober.answered} in all")
    print("\n".join(report))
    assert prober.failures == []
    assert peak < CEILING, "\n".join(report)


class Abuse:
    """The abuses of the module docstring, each a phase returning the codes it got."""

    def __init__(self, channel: grpc.Channel, address: str, data: Data, log_file: Path) -> None:
        self._raw_submit = channel.unary_unary("/redlist.v1.Ledger/Submit")
        self._stub = ledger_pb2_grpc.LedgerStub(channel)
        self._address = address
        self._data = data
        self._log_file = log_file

    def phases(self) -> Iterator[tuple[str, Callable[[], Counter[str]]]]:
        yield "undecodable 4 MiB Submits, one at a time", self.undecodable
        yield "60 MiB Submits, over the message limit", self.oversized
        yield "junk signatures, 4 MiB a Submit", self.junk_signatures
        yield "24 undecodable 4 MiB Submits at once", self.concurrent
        yield "20 GetLeaves streams never read", self.unread_streams

    def undecodable(self) -> Counter[str]:
        junk = b"\xff" * (MAX_MESSAGE_BYTES - 1024)
        codes = Counter(
            _code(lambda: self._raw_submit(junk, timeout=60)) for _ in range(15 * SCALE)
        )
        assert set(codes) == {"INVALID_ARGUMENT"}
        return codes

    def oversized(self) -> Counter[str]:
        junk = b"\xff" * (60 * MiB)
        codes = Counter(
            _code(lambda: self._raw_submit(junk, timeout=60)) for _ in range(20 * SCALE)
        )
        assert set(codes) == {"RESOURCE_EXHAUSTED"}
        return codes

    def junk_signatures(self) -> Counter[str]:
        request = submit_request(self._data.junk_signed)
        assert MAX_MESSAGE_BYTES - 200_000 < request.ByteSize() < MAX_MESSAGE_BYTES
        codes = Counter(
            _code(lambda: self._stub.Submit(request, timeout=60)) for _ in range(10 * SCALE)
        )
        assert set(codes) == {"PERMISSION_DENIED"}
        return codes

    def concurrent(self) -> Counter[str]:
        junk = b"\xff" * (MAX_MESSAGE_BYTES - 1024)
        # A connection each (channels with equal arguments would share one).
        channels = [
            grpc.insecure_channel(self._address, options=[*UNLIMITED, ("redlist.test.n", n)])
            for n in range(24)
        ]

        def one(channel: grpc.Channel) -> list[str]:
            submit = channel.unary_unary("/redlist.v1.Ledger/Submit")
            return [_code(lambda: submit(junk, timeout=60)) for _ in range(3 * SCALE)]

        try:
            with ThreadPoolExecutor(len(channels)) as pool:
                codes = Counter(code for codes in pool.map(one, channels) for code in codes)
        finally:
            for channel in channels:
                channel.close()
        # RESOURCE_EXHAUSTED: over the client's call limit, refused unread. How many
        # overlap depends on timing, so only the kinds of answer are checked.
        assert set(codes) <= {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}
        assert codes["INVALID_ARGUMENT"] > 0
        return codes

    def unread_streams(self) -> Counter[str]:
        codes: Counter[str] = Counter()
        for _ in range(SCALE):
            codes.update(self._unread_round())
        return codes

    def _unread_round(self) -> Counter[str]:
        ended_before = self._ended_streams()
        channels = [grpc.insecure_channel(self._address, options=UNLIMITED) for _ in range(20)]
        codes: Counter[str] = Counter()
        streams = []
        try:
            for channel in channels:
                stream = ledger_pb2_grpc.LedgerStub(channel).GetLeaves(
                    pb.GetLeavesRequest(start=0, end=self._data.size)
                )
                try:
                    next(stream)  # admitted and under way: now nobody reads it
                    streams.append(stream)
                    codes["open"] += 1
                except grpc.RpcError as error:
                    codes[error.code().name] += 1
            assert codes["open"] == MAX_STREAMS_PER_CLIENT
            # The node ends each one once a write has waited long enough (no bound on
            # how long that takes is asserted; the test's own time limit stands).
            while self._ended_streams() < ended_before + len(streams):
                time.sleep(0.1)
            codes["ended by the node"] += len(streams)
        finally:
            for stream in streams:
                stream.cancel()
            for channel in channels:
                channel.close()
        return codes

    def _ended_streams(self) -> int:
        return self._log_file.read_text(errors="replace").count("did not read it for")
