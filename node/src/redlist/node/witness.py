"""A town node as witness of other towns' logs (C2SP tlog-witness over gRPC; DESIGN 8.2).

:class:`WitnessConfig` is what the operator configured: the cosigning key and its name
(``--witness-key``, ``--witness-name``) and the logs to witness (``--witness-for``,
each an origin and its log key). :class:`Witness` joins it to the durable state
(:class:`~redlist.ledger.witnessstore.WitnessStore`) and the evidence directory, and
:meth:`Witness.add_checkpoint` does one request, blocking:

1. the checkpoint's origin is read (a note that is not a checkpoint: ``BAD_REQUEST``)
   and looked up (not configured: ``UNKNOWN_LOG``);
2. :func:`redlist.ledger.witness.add_checkpoint` decides against the stored head;
3. a split view is written as evidence (:mod:`redlist.node.evidence`), logged as an
   error and raised as the log's alarm before the refusal is raised;
4. the new head is stored with a compare-and-swap on ``old_size``, durably;
5. only then is the cosignature line returned, timed by the node's clock.

**Alarms.** A witnessed log with split-view evidence in the data directory is
*alarmed* (:attr:`Witness.alarmed`): from the refusal that wrote the evidence, and
after a restart for as long as the evidence is kept there (an operator clears the
alarm by moving the log's folder out of ``DIR/evidence/`` and restarting). The node
shows it as the metric ``redlist_witness_split_view{origin}`` = 1 and the health
service :func:`health_service` of that log (``redlist.v1.Witness/<origin>``)
NOT_SERVING; its own log and the witness's other logs keep serving. The witness
goes on answering for an alarmed log as before: it cosigns only checkpoints that
extend the one it cosigned, so it never vouches for the other history.

:class:`WitnessServicer` is the gRPC face: each ``Refusal`` becomes the status DESIGN
8.2 names, ``OLD_SIZE_MISMATCH`` with the stored size in the trailing metadata
:data:`redlist.proto.contract.WITNESS_SIZE_KEY`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from redlist.ledger import keyfile, logkeyfile
from redlist.ledger.errors import KeyFileError, NoteError, RedlistError
from redlist.ledger.note.checkpoint import Checkpoint, open_checkpoint
from redlist.ledger.note.cosignature import cosign_checkpoint
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.ledger.note.signed import Note
from redlist.ledger.note.syntax import excerpt
from redlist.ledger.witness import Refusal, WitnessRefusal, add_checkpoint
from redlist.ledger.witnessstore import WitnessStore
from redlist.node.evidence import list_evidence, origin_hash, write_evidence
from redlist.node.refusals import bounded_message, refusal_of
from redlist.proto.contract import WITNESS_SIZE_KEY
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

logger = logging.getLogger(__name__)

WITNESS_SERVICE = pb.DESCRIPTOR.services_by_name["Witness"].full_name


def health_service(origin: str) -> str:
    """The health service name of one witnessed log: ``redlist.v1.Witness/<origin>``.

    SERVING while the witness holds no split-view evidence of that log, NOT_SERVING
    once it does (``grpc_health_probe -service 'redlist.v1.Witness/<origin>'``).
    """
    return f"{WITNESS_SERVICE}/{origin}"


#: The gRPC status of each refusal (DESIGN 8.2).
STATUS_OF: Mapping[Refusal, grpc.StatusCode] = {
    Refusal.UNKNOWN_LOG: grpc.StatusCode.NOT_FOUND,
    Refusal.BAD_SIGNATURE: grpc.StatusCode.PERMISSION_DENIED,
    Refusal.BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.OLD_SIZE_MISMATCH: grpc.StatusCode.ABORTED,
    Refusal.INCONSISTENT: grpc.StatusCode.FAILED_PRECONDITION,
}


@dataclass(frozen=True)
class WitnessConfig:
    """The cosigning key (named) and the logs witnessed, by origin."""

    signer: NoteSigner
    logs: Mapping[str, VerifierKey]

    def verifier_key(self) -> str:
        """The witness's verifier key string (key type 0x04), as ``GetWitnessKey`` says it."""
        return self.signer.cosignature_verifier().encode()

    @classmethod
    def load(cls, key_file: Path, name: str | None, witness_for: Sequence[str]) -> WitnessConfig:
        """Read the key (a ``redlist keygen`` file) and the log keys (strings or files).

        The cosigner's name is ``name`` or else the one in the key's public twin
        (``FILE.pub``, ``# name:``). Two logs with one origin are refused: the witness
        would not know whose checkpoint it was shown.
        """
        key = keyfile.read_signing_key(key_file)
        if name is None:
            name = keyfile.read_holder_name(key_file)
            if name is None:
                raise KeyFileError(
                    f"the witness key {key_file} has no name (its {key_file.name}.pub is "
                    "missing or names nobody): give --witness-name"
                )
        try:
            signer = NoteSigner(name, key)
        except NoteError as error:
            raise KeyFileError(
                f"the witness name {name!r} cannot name a cosigner ({error}): give "
                "--witness-name with a name without spaces or '+'"
            ) from None
        if not witness_for:
            raise KeyFileError("a witness needs at least one log to witness: give --witness-for")
        logs: dict[str, VerifierKey] = {}
        for given in witness_for:
            log_key = logkeyfile.read_log_key(given)
            if log_key.name in logs and logs[log_key.name] != log_key:
                raise KeyFileError(
                    f"two log keys for the origin {excerpt(log_key.name)!r} in --witness-for: "
                    "a witness follows one key per origin"
                )
            logs[log_key.name] = log_key
        return cls(signer, logs)


class Witness:
    """A configured witness with its open state; the caller opens and closes the store."""

    def __init__(
        self,
        config: WitnessConfig,
        store: WitnessStore,
        data_dir: Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._store = store
        self._data_dir = data_dir
        self._clock = clock
        self._on_alarm: Callable[[str], None] | None = None
        #: The witnessed logs (origins) with split-view evidence kept: alarmed.
        self.alarmed: set[str] = set()
        self._check_kept_evidence()

    def attach(self, on_alarm: Callable[[str], None]) -> None:
        """Call ``on_alarm(origin)`` when a split view of that log is found (on the
        thread that runs ``add_checkpoint``); the node's server does."""
        self._on_alarm = on_alarm

    def _check_kept_evidence(self) -> None:
        """Evidence kept from an earlier run raises the alarm of its log again."""
        folders = {origin_hash(origin): origin for origin in self.config.logs}
        for item in list_evidence(self._data_dir):
            origin = folders.get(item.path.parent.name)
            if origin is not None and origin not in self.alarmed:
                self.alarmed.add(origin)
                logger.error(
                    "split view origin=%s evidence=%s: alarm raised (kept evidence) until an "
                    "operator moves %s out of the data directory",
                    excerpt(origin),
                    item.path,
                    item.path.parent,
                )

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> str:
        """Cosign ``note`` or raise ``WitnessRefusal``; returns the cosignature line."""
        origin = _origin_of(note)
        log_key = self.config.logs.get(origin)
        if log_key is None:
            raise WitnessRefusal(
                Refusal.UNKNOWN_LOG, f"this witness does not follow log {excerpt(origin)!r}"
            )
        held = self._store.head(log_key)
        try:
            head = add_checkpoint(held, old_size, proof, note, log_key)
        except WitnessRefusal as refusal:
            if refusal.evidence is not None:
                path = write_evidence(self._data_dir, refusal.evidence)
                logger.error("split view origin=%s evidence=%s: %s", excerpt(origin), path, refusal)
                self._raise_alarm(origin)
            raise
        cosigned = cosign_checkpoint(
            open_checkpoint(note, log_key), self.config.signer, int(self._clock())
        )
        cosigner = self.config.signer.cosignature_verifier()
        line = next(sig for sig in cosigned.signatures if sig.is_by(cosigner))
        self._store.swap(log_key, old_size, head)  # durable before anyone is told
        logger.info("cosigned origin=%s size=%d", excerpt(origin), head.size)
        return line.encode() + "\n"

    def _raise_alarm(self, origin: str) -> None:
        self.alarmed.add(origin)
        if self._on_alarm is not None:
            self._on_alarm(origin)


def _origin_of(note: str) -> str:
    try:
        return Checkpoint.from_text(Note.parse(note).text).origin
    except NoteError as error:
        raise WitnessRefusal(Refusal.BAD_REQUEST, f"not a signed checkpoint: {error}") from None


_AnyContext = aio.ServicerContext[Any, Any]


class WitnessServicer(ledger_pb2_grpc.WitnessServicer):
    """``redlist.v1.Witness``: each call runs on ``executor`` (LMDB and fsync block)."""

    def __init__(self, witness: Witness, executor: Executor) -> None:
        self._witness = witness
        self._executor = executor

    async def AddCheckpoint(
        self,
        request: pb.AddCheckpointRequest,
        context: aio.ServicerContext[pb.AddCheckpointRequest, pb.AddCheckpointResponse],
    ) -> pb.AddCheckpointResponse:
        work = partial(
            self._witness.add_checkpoint,
            request.old_size,
            tuple(request.consistency_proof),
            request.checkpoint,
        )
        try:
            line = await asyncio.get_running_loop().run_in_executor(self._executor, work)
        except WitnessRefusal as refusal:
            await _refuse(context, refusal)
        except RedlistError as error:
            status = refusal_of(error)
            message = status.status_message()
            logger.error("witness failed code=%s: %s", status.code.name, message)
            await context.abort(status.code, bounded_message(message))
        return pb.AddCheckpointResponse(cosignature=line)

    async def GetWitnessKey(
        self,
        request: pb.GetWitnessKeyRequest,
        context: aio.ServicerContext[pb.GetWitnessKeyRequest, pb.GetWitnessKeyResponse],
    ) -> pb.GetWitnessKeyResponse:
        return pb.GetWitnessKeyResponse(verifier_key=self._witness.config.verifier_key())


async def _refuse(context: _AnyContext, refusal: WitnessRefusal) -> None:
    code = STATUS_OF[refusal.reason]
    metadata: tuple[tuple[str, str], ...] = ()
    if refusal.stored_size is not None:
        metadata = ((WITNESS_SIZE_KEY, str(refusal.stored_size)),)
    message = bounded_message(str(refusal))
    logger.info("witness refused code=%s reason=%s: %s", code.name, refusal.reason.value, message)
    await context.abort(code, message, metadata)
