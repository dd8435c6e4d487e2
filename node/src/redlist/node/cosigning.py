"""A primary collecting its witnesses' cosignatures (DESIGN 8.4; ``--ask-witness``).

:class:`Cosigner` is a background task of the node. Each time the log has grown
(woken by the node's :class:`~redlist.node.batcher.TreeWatch`, at most once every
``interval`` seconds) it asks every configured witness, in parallel and each with
a time-out, to cosign the latest checkpoint (``Witness.AddCheckpoint``):

* it remembers per witness the tree size that witness last cosigned (0 at start,
  or the size of the cosigned checkpoint kept on disk) and sends the consistency
  proof from there;
* a witness that answers ABORTED with its stored size
  (:data:`redlist.proto.contract.WITNESS_SIZE_KEY`) is asked again at once from
  that size;
* it reaches them through :func:`redlist.node.peers.open_peer_channel`: over TLS
  with this town's certificate when given ``peer_tls``, else plaintext to loopback;
* a returned line is used only if it is one cosignature line by that witness's
  key that verifies over the checkpoint (``verify_cosignature``);
* a witness that is down or refuses is logged as a warning and asked again after
  a back-off doubling from :data:`FIRST_BACKOFF` to :data:`MAX_BACKOFF`; nothing
  else waits for it.

What the node serves (:meth:`Cosigner.served`) is the log-signed checkpoint plus
the cosignature lines of the witnesses that cosigned exactly that checkpoint: a
cosignature for an older size is never attached to a newer checkpoint. The latest
cosigned note is also written to ``DIR/cosigned-checkpoint`` (atomically), so
``redlist-node export`` can put it in a bundle and a restarted node serves it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import grpc
from grpc import aio

from redlist.ledger.errors import FormatError, IntegrityError, NoteError
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.note.cosignature import verify_cosignature
from redlist.ledger.note.keys import ALG_COSIGNATURE_V1, VerifierKey
from redlist.ledger.note.signed import Note, NoteSignature
from redlist.ledger.note.syntax import excerpt
from redlist.node.batcher import TreeWatch
from redlist.node.config import parse_address
from redlist.node.peers import open_peer_channel
from redlist.node.tls import PeerMaterial
from redlist.proto.contract import WITNESS_SIZE_KEY
from redlist.proto.errors import peer_words
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

logger = logging.getLogger(__name__)

#: The file in the data directory holding the latest cosigned checkpoint note.
COSIGNED_FILE = "cosigned-checkpoint"
#: How long one AddCheckpoint may take before the witness counts as down.
CALL_TIMEOUT = 10.0
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
#: Largest answer taken from a witness (one cosignature line is about 150 bytes).
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class AskedWitness:
    """A witness the primary asks: its address and its cosigning key (type 0x04)."""

    address: str
    key: VerifierKey

    @classmethod
    def parse(cls, address: str, key: str) -> AskedWitness:
        """Check ``ADDR VKEY`` as given to ``--ask-witness``; bad input is a ``FormatError``."""
        parse_address(address, "--ask-witness")
        try:
            verifier = VerifierKey.parse(key)
        except NoteError as error:
            raise FormatError(f"--ask-witness {address}: {error}") from None
        if verifier.algorithm != ALG_COSIGNATURE_V1:
            raise FormatError(
                f"--ask-witness {address}: key {excerpt(verifier.name)} is a log key, not a "
                "witness's cosigning key (ask the witness: GetWitnessKey)"
            )
        return cls(address, verifier)


@dataclass
class _Progress:
    """What one witness has done for this node (mutable, owned by the cosigner's task)."""

    size: int = 0
    #: The witness's line over ``cosigned_text`` (the checkpoint text it cosigned).
    line: NoteSignature | None = None
    cosigned_text: str | None = None
    failures: int = 0
    retry_at: float = 0.0


class Cosigner:
    """Collects cosignatures for ``log``; :meth:`start` runs it, :meth:`close` ends it."""

    def __init__(
        self,
        log: Log,
        witnesses: Sequence[AskedWitness],
        watch: TreeWatch,
        reads: Executor,
        data_dir: Path,
        *,
        interval: float = 0.0,
        call_timeout: float = CALL_TIMEOUT,
        peer_tls: PeerMaterial | None = None,
    ) -> None:
        self._log = log
        self._witnesses = tuple(witnesses)
        self._watch = watch
        self._reads = reads
        self._path = data_dir / COSIGNED_FILE
        self._interval = interval
        self._call_timeout = call_timeout
        self._peer_tls = peer_tls
        self._progress = {witness.address: _Progress() for witness in self._witnesses}
        self._channels: dict[str, aio.Channel] = {}
        self._latest: SignedCheckpoint | None = None
        self._task: asyncio.Task[None] | None = None

    def served(self, checkpoint: SignedCheckpoint) -> SignedCheckpoint:
        """``checkpoint`` with the cosignatures collected for exactly it, if any."""
        latest = self._latest
        if latest is not None and latest.text == checkpoint.text:
            return latest
        return checkpoint

    async def start(self) -> None:
        """Load the cosigned checkpoint kept on disk, then run the collecting task."""
        loop = asyncio.get_running_loop()
        kept = await loop.run_in_executor(
            self._reads, partial(read_cosigned, self._path.parent, self._log.verifier_key)
        )
        if kept is not None:
            self._latest = kept
            for witness in self._witnesses:
                for signature in kept.signatures:
                    if signature.is_by(witness.key):
                        progress = self._progress[witness.address]
                        progress.size = kept.size
                        progress.line, progress.cosigned_text = signature, kept.text
        self._task = asyncio.create_task(self._run(), name="redlist-cosigner")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for channel in self._channels.values():
            await channel.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        asked_for = -1
        while not self._watch.closed:
            target = await loop.run_in_executor(self._reads, self._log.checkpoint)
            now = time.monotonic()
            due = [
                witness
                for witness in self._witnesses
                if self._progress[witness.address].cosigned_text != target.text
                and self._progress[witness.address].retry_at <= now
            ]
            if due:
                await asyncio.gather(*(self._ask(witness, target) for witness in due))
                self._publish(target)
                await loop.run_in_executor(self._reads, self._keep)
            asked_for = target.size
            pending = [
                progress.retry_at
                for progress in self._progress.values()
                if progress.cosigned_text != target.text
            ]
            wait = None if not pending else max(0.0, min(pending) - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._watch.wait_beyond(asked_for), wait)
            if self._interval > 0:
                await asyncio.sleep(self._interval)

    async def _ask(self, witness: AskedWitness, target: SignedCheckpoint) -> None:
        progress = self._progress[witness.address]
        try:
            # One retry: a witness that reports its size is asked again from there.
            for _attempt in range(2):
                size = await self._asked_from(witness, progress, target)
                if size is None:
                    break
                progress.size = size
            else:
                raise _Refused("the witness kept reporting another size")
        except _Refused as refused:
            progress.failures += 1
            delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (progress.failures - 1))
            progress.retry_at = time.monotonic() + delay
            logger.warning(
                "witness not cosigning address=%s key=%s size=%d retry_seconds=%.0f: %s",
                witness.address,
                witness.key.encode(),
                target.size,
                delay,
                refused,
            )
        else:
            if progress.failures:
                logger.info("witness cosigning again address=%s", witness.address)
            progress.failures, progress.retry_at = 0, 0.0

    async def _asked_from(
        self, witness: AskedWitness, progress: _Progress, target: SignedCheckpoint
    ) -> int | None:
        """One AddCheckpoint; None when cosigned, else the size the witness reported."""
        old = progress.size
        if old > target.size:
            raise _Refused(
                f"the witness holds size {old}, beyond this log's {target.size}: it was shown "
                "a larger tree of this log"
            )
        proof: list[bytes] = []
        if 0 < old < target.size:
            loop = asyncio.get_running_loop()
            proof = await loop.run_in_executor(
                self._reads, self._log.consistency_proof, old, target.size
            )
        request = pb.AddCheckpointRequest(
            old_size=old, consistency_proof=proof, checkpoint=target.note
        )
        stub = ledger_pb2_grpc.WitnessStub(self._channel(witness.address))
        try:
            answer = await stub.AddCheckpoint(request, timeout=self._call_timeout)
        except aio.AioRpcError as error:
            reported = _reported_size(error)
            if error.code() == grpc.StatusCode.ABORTED and reported is not None:
                if reported == old:
                    raise _Refused(f"ABORTED at size {old} it reports itself") from None
                return reported
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise _Refused(
                    f"the node at {witness.address} is not a witness (it offers no "
                    "AddCheckpoint): check the address given with --ask-witness"
                ) from None
            raise _Refused(f"{error.code().name}: {peer_words(error.details() or '')}") from None
        line = _checked_line(answer.cosignature, witness.key, target)
        progress.size = target.size
        progress.line, progress.cosigned_text = line, target.text
        logger.info("cosigned by witness address=%s size=%d", witness.address, target.size)
        return None

    def _channel(self, address: str) -> aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = open_peer_channel(
                address,
                self._peer_tls,
                options=[("grpc.max_receive_message_length", MAX_ANSWER_BYTES)],
                what="--ask-witness",
            )
            self._channels[address] = channel
        return channel

    def _publish(self, target: SignedCheckpoint) -> None:
        """Serve ``target`` with every line over exactly its text (none: serve it plain)."""
        lines = tuple(
            progress.line
            for progress in self._progress.values()
            if progress.line is not None and progress.cosigned_text == target.text
        )
        if lines:
            latest = _with_lines(target, lines)
            if self._latest is None or latest.note != self._latest.note:
                self._latest = latest
                self._watch.touch()  # Follow streams send the checkpoint again, cosigned

    def _keep(self) -> None:
        """Write the cosigned checkpoint served to disk, atomically (best effort)."""
        latest = self._latest
        if latest is None:
            return
        try:
            if self._path.exists() and self._path.read_text("utf-8") == latest.note:
                return
            write_atomically(self._path, latest.note.encode("utf-8"))
        except OSError as error:
            logger.warning("cannot keep the cosigned checkpoint in %s: %s", self._path, error)


class _Refused(Exception):
    """A witness did not cosign this time (down, refused, or answered nonsense)."""


def _reported_size(error: aio.AioRpcError) -> int | None:
    for key, value in error.trailing_metadata() or ():
        if key == WITNESS_SIZE_KEY and isinstance(value, str) and value.isdigit():
            return int(value[:20])
    return None


def _checked_line(answer: str, key: VerifierKey, target: SignedCheckpoint) -> NoteSignature:
    """The witness's one cosignature line, verified over ``target``; else ``_Refused``."""
    try:
        if not answer.endswith("\n") or answer.count("\n") != 1:
            raise NoteError("the answer is not one signature line")
        line = NoteSignature.parse(answer[:-1])
        if not line.is_by(key):
            raise NoteError(
                f"the line is signed by {excerpt(line.name)}+{line.key_hash.hex()}, not by "
                f"the configured key {key.describe()}: check --ask-witness's key"
            )
        verify_cosignature(_with_lines(target, (line,)), key)
    except NoteError as error:
        raise _Refused(f"its cosignature was refused: {error}") from None
    return line


def _with_lines(target: SignedCheckpoint, lines: Sequence[NoteSignature]) -> SignedCheckpoint:
    keep = tuple(
        signature
        for signature in target.signatures
        if not any(
            (signature.name, signature.key_hash) == (line.name, line.key_hash) for line in lines
        )
    )
    return SignedCheckpoint(Note(target.text, (*keep, *lines)).encode(), target.log_key)


def read_cosigned(data_dir: Path, log_key: VerifierKey) -> SignedCheckpoint | None:
    """The cosigned checkpoint kept in ``data_dir``, verified with the log's key.

    None when there is none; ``IntegrityError`` when the file does not hold a
    checkpoint signed by this log (the file was damaged or replaced).
    """
    path = data_dir / COSIGNED_FILE
    try:
        note = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise IntegrityError(f"cannot read the cosigned checkpoint {path}: {error}") from None
    try:
        return SignedCheckpoint(note, log_key)
    except NoteError as error:
        raise IntegrityError(
            f"{path} does not hold a checkpoint of this log ({error}); remove it and the "
            "node collects cosignatures again"
        ) from None


def write_atomically(path: Path, data: bytes) -> None:
    descriptor, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(staging, 0o644)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
