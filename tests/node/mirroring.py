"""Helpers for the mirror's tests: a primary and a mirror served in-process on
127.0.0.1:0 (real gRPC, real LMDB), a primary that lies, and ``redlist-node mirror``
as a subprocess."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio
from tests.node.serving import BIN

from redlist.ledger import codec, merkle
from redlist.ledger.entry import ZERO_HASH
from redlist.ledger.log import Log
from redlist.ledger.mirrorlog import MirrorLog
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.ledger.sigschedule import SignatureScheduler
from redlist.node.metrics import MirrorMetrics
from redlist.node.mirror import Follower, MirrorLimits
from redlist.node.peers import open_peer_channel_sync
from redlist.node.server import NodeServer
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

#: Small steps and short back-offs, so that tests see several of each.
QUICK = MirrorLimits(chunk_entries=5, first_backoff=0.05, max_backoff=0.2, call_timeout=10)


@dataclass
class Mirrored:
    """A mirror served in-process: its copy, follower and address."""

    mirror: MirrorLog
    follower: Follower
    address: str

    async def wait_for(self, size: int, timeout: float = 20.0) -> None:
        """Until the mirror holds ``size`` entries (the event loop keeps serving)."""
        deadline = time.monotonic() + timeout
        while self.mirror.size < size:
            assert time.monotonic() < deadline, f"the mirror holds {self.mirror.size}, not {size}"
            await asyncio.sleep(0.02)


@asynccontextmanager
async def serving(log: Log) -> AsyncIterator[str]:
    """A real primary node serving ``log``; yields its address."""
    node = await NodeServer.start(log, "127.0.0.1:0")
    try:
        yield node.address
    finally:
        await node.stop(grace=1.0)


@asynccontextmanager
async def mirroring(
    data: Path,
    upstream: str,
    log_key: VerifierKey,
    *,
    signer: NoteSigner | None = None,
    limits: MirrorLimits = QUICK,
    metrics: MirrorMetrics | None = None,
) -> AsyncIterator[Mirrored]:
    """A mirror of the log at ``upstream`` kept in ``data`` and served on 127.0.0.1:0."""
    with (
        SignatureScheduler(2) as scheduler,
        MirrorLog.open(data, log_key) as mirror,
        open_peer_channel_sync(upstream, None) as channel,
    ):
        follower = Follower(
            mirror, upstream, channel, scheduler, signer=signer, limits=limits, metrics=metrics
        )
        node = await NodeServer.start(mirror.log, "127.0.0.1:0", follower=follower)
        try:
            yield Mirrored(mirror, follower, node.address)
        finally:
            await node.stop(grace=1.0)


# ---------------------------------------------------------------------------
# A primary that lies: it serves leaves and checkpoints the test wrote


class Forger:
    """Leaves and checkpoints of a log made by hand, signed with the log's key.

    It starts from a real log's leaves (``copy``) and can add any leaf with a correct seq,
    time and chain (``add``), so that only the check under test fails.
    """

    def __init__(self, signer: NoteSigner, leaves: list[bytes]) -> None:
        self.signer = signer
        self.leaves = list(leaves)
        self.notes: dict[int, str] = {}
        self.latest = 0
        #: Added to the start of every LeafBatch sent: non-zero, batches out of place.
        self.batch_offset = 0

    def add(self, envelope: bytes, time_ms: int, *, prev: bytes | None = None) -> None:
        seq = len(self.leaves)
        if prev is None:
            prev = merkle.leaf_hash(self.leaves[-1]) if self.leaves else ZERO_HASH
        self.leaves.append(codec.encode([seq, time_ms, prev, envelope]))

    def sign(self, size: int | None = None, signer: NoteSigner | None = None) -> str:
        """Sign a checkpoint at ``size`` (default: every leaf) and serve it as the latest."""
        size = len(self.leaves) if size is None else size
        root = merkle.root_of([merkle.leaf_hash(leaf) for leaf in self.leaves[:size]])
        note = sign_checkpoint(Checkpoint(self.signer.name, size, root), signer or self.signer).note
        self.notes[size] = note
        self.latest = size
        return note


class ForgedPrimary(ledger_pb2_grpc.LedgerServicer):
    """Serves a :class:`Forger`'s log with the calls a mirror makes."""

    def __init__(self, forger: Forger) -> None:
        self.forger = forger

    async def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: aio.ServicerContext
    ) -> pb.GetCheckpointResponse:
        notes = self.forger.notes
        size = self.forger.latest
        if request.at_most:
            within = [s for s in notes if request.after < s <= min(request.at_most, size)]
            size = max(within) if within else min(s for s in notes if s > request.after)
        return pb.GetCheckpointResponse(checkpoint=notes[size])

    async def GetLeaves(
        self, request: pb.GetLeavesRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.LeafData]:
        for seq in range(request.start, request.end):
            yield pb.LeafData(seq=seq, leaf=self.forger.leaves[seq])

    async def GetLeafBatches(
        self, request: pb.GetLeavesRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.LeafBatch]:
        for start in range(request.start, request.end, 3):  # small batches: 3 leaves each
            end = min(start + 3, request.end)
            yield pb.LeafBatch(
                start=start + self.forger.batch_offset, leaves=self.forger.leaves[start:end]
            )

    async def GetConsistencyProof(
        self, request: pb.ConsistencyProofRequest, context: aio.ServicerContext
    ) -> pb.Proof:
        tree = merkle.MemoryTree(merkle.leaf_hash(leaf) for leaf in self.forger.leaves)
        hashes = merkle.consistency_proof(tree, request.first, request.second)
        return pb.Proof(hashes=hashes, tree_size=request.second)

    async def Follow(
        self, request: pb.FollowRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.FollowEvent]:
        position, sent = request.start, None
        while True:  # whatever the forger makes the latest is sent, as a primary would
            size = self.forger.latest
            if size != sent:
                for seq in range(position, size):
                    yield pb.FollowEvent(leaf=pb.LeafData(seq=seq, leaf=self.forger.leaves[seq]))
                yield pb.FollowEvent(checkpoint=self.forger.notes[size])
                position, sent = max(position, size), size
            await asyncio.sleep(0.02)


@asynccontextmanager
async def forged_primary(forger: Forger) -> AsyncIterator[str]:
    server = aio.server()
    ledger_pb2_grpc.add_LedgerServicer_to_server(ForgedPrimary(forger), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0.5)


# ---------------------------------------------------------------------------
# redlist-node mirror as a subprocess


@contextmanager
def mirror_in_subprocess(
    *flags: str | Path, output: Path, name: str = "mirror"
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``redlist-node mirror FLAGS...``; yields the process and the first address served.

    stdout and stderr go to ``NAME.out`` and ``NAME.err`` in ``output``.
    """
    stdout = output / f"{name}.out"
    with stdout.open("wb") as out, (output / f"{name}.err").open("wb") as err:
        process = subprocess.Popen([BIN / "redlist-node", "mirror", *flags], stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None:
            match = re.search(r"^mirroring log .* on (\S+)$", stdout.read_text(), re.MULTILINE)
            if match:
                address = match.group(1)
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"the mirror did not start: {(output / f'{name}.err').read_text()}"
                )
            time.sleep(0.05)
        yield process, address
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_size(address: str, size: int, log_key: VerifierKey, timeout: float = 60.0) -> None:
    """Poll GetCheckpoint at ``address`` until it is at ``size`` or more."""
    from redlist.ledger.note.checkpoint import open_checkpoint

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        while True:
            try:
                note = stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=5).checkpoint
                if open_checkpoint(note, log_key).size >= size:
                    return
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, f"{address} did not reach size {size}"
            time.sleep(0.05)


def run_cli(*argv: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / argv[0], *argv[1:]], capture_output=True, text=True, timeout=timeout, check=False
    )


__all__ = [
    "QUICK",
    "Forger",
    "Mirrored",
    "forged_primary",
    "mirror_in_subprocess",
    "mirroring",
    "run_cli",
    "serving",
    "wait_for_size",
]
