"""A mirror following another town's log (DESIGN 8.3, 8.5): catch up, follow, refuse, alarm.

:class:`Follower` runs on a thread of its own beside the node's gRPC server, and keeps a
:class:`~redlist.ledger.mirrorlog.MirrorLog` up to date with the log's node (the
*primary*) at ``upstream``. Each round:

1. ``GetCheckpoint``: the primary's latest checkpoint, verified with the log key;
2. catch-up in steps: ``GetCheckpoint(after, at_most)`` gives a checkpoint the log
   signed at most ``chunk_entries`` beyond what is held (or the next one), the leaves
   up to it come from ``GetLeafBatches`` (refused beyond ``chunk_bytes``), and both are
   stored together (``MirrorLog.extend``: every leaf through the validator, the root
   compared with the checkpoint's, one durable commit). The next step is fetched
   while one is verified and stored, so at most two are held;
3. then ``Follow`` from the size held, in batches: leaves are collected until the checkpoint that
   covers them arrives, and stored with it. Leaves beyond the bounds without a
   checkpoint end the stream and the round starts again (catch-up in steps).

Before any checkpoint is used it is judged against the latest one held
(:meth:`Follower._judge`): signed by the log key; not smaller than what is held (a
*rollback*); at the same size, the same root; at a larger size, the primary's
consistency proof from the held size must verify. Two validly signed checkpoints that
cannot both be true (two roots at one size, a failing proof, or a smaller checkpoint
whose root is not that of the held tree at its size, recomputed locally) are a *split
view*: both notes (and the proof) are written as evidence (:mod:`redlist.node.evidence`),
the alarm is raised (an error line, the metric, health NOT_SERVING) and the follower
stops until an operator acts: evidence of this log in the data directory keeps it
stopped, also after a restart.

Any other failure (the primary unreachable, a refused leaf or checkpoint) is logged,
named (what, which seq, which address), and retried after a back-off doubling from
``first_backoff`` to ``max_backoff`` seconds; a commit resets it. Whatever was stored
stays, and is what the node serves.

With a mirror key (``signer``) the follower cosigns each checkpoint once its entries
are durably stored (C2SP tlog-mirror: "I hold this and will serve it"). The checkpoint
served is the primary's, with the cosignature lines the primary attached to exactly
its text, plus the mirror's; it is also kept in ``DIR/cosigned-checkpoint``, so that
``redlist-node export`` puts it in a bundle and a restarted mirror serves it at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from redlist.ledger import merkle
from redlist.ledger.errors import MirrorRefusal, NoteError, ProofError, RedlistError
from redlist.ledger.mirrorlog import MirrorLog, PreparedLeaves
from redlist.ledger.note.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint
from redlist.ledger.note.cosignature import cosign_checkpoint
from redlist.ledger.note.keys import NoteSigner, cosignature_time
from redlist.ledger.note.signed import Note, NoteSignature
from redlist.ledger.note.syntax import excerpt
from redlist.ledger.sigschedule import SignatureScheduler
from redlist.ledger.witness import SplitViewEvidence
from redlist.node.cosigning import COSIGNED_FILE, read_cosigned, write_atomically
from redlist.node.evidence import list_evidence, write_evidence
from redlist.node.metrics import MirrorMetrics
from redlist.proto.errors import peer_words
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

logger = logging.getLogger(__name__)

#: Entries one catch-up step asks for (each step is one durable commit).
CHUNK_ENTRIES = 4096
#: Bytes of leaves held at once; a step or a Follow batch beyond it is not taken.
CHUNK_BYTES = 16 * 1024 * 1024
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
#: How long one unary call or one step's leaves may take.
CALL_TIMEOUT = 30.0


class _SplitView(Exception):
    """Raised inside a round once the evidence is written: the follower stops."""


class _StreamEnded(Exception):
    """A Follow stream that ended without an error: start a new round."""


@dataclass(frozen=True)
class MirrorLimits:
    """How much a mirror holds at once and how it backs off."""

    chunk_entries: int = CHUNK_ENTRIES
    chunk_bytes: int = CHUNK_BYTES
    first_backoff: float = FIRST_BACKOFF
    max_backoff: float = MAX_BACKOFF
    call_timeout: float = CALL_TIMEOUT


class Follower:
    """Keeps ``mirror`` up to date with the primary at ``upstream``; see the module docstring.

    ``channel`` reaches the primary (``peers.open_peer_channel``); the caller owns it,
    the mirror and the scheduler.
    """

    def __init__(
        self,
        mirror: MirrorLog,
        upstream: str,
        channel: grpc.Channel,
        scheduler: SignatureScheduler,
        *,
        signer: NoteSigner | None = None,
        limits: MirrorLimits | None = None,
        metrics: MirrorMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mirror = mirror
        self.upstream = upstream
        self._stub = ledger_pb2_grpc.LedgerStub(channel)
        self._scheduler = scheduler
        self._signer = signer
        self._limits = limits or MirrorLimits()
        self._on_commit: Callable[[int], None] | None = None
        self._on_alarm: Callable[[str], None] | None = None
        self._metrics = metrics
        self._clock = clock
        self._stop = threading.Event()
        self._call: grpc.RpcContext | None = None
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._served: SignedCheckpoint | None = None
        #: Why the follower stopped for good (a split view), else None.
        self.alarm: str | None = None
        self._load_served()
        self._check_kept_evidence()
        if metrics is not None:
            metrics.tree_size.labels(self.mirror.origin).set(self.mirror.size)
            metrics.alarm.labels(self.mirror.origin).set(0 if self.alarm is None else 1)

    def attach(self, on_commit: Callable[[int], None], on_alarm: Callable[[str], None]) -> None:
        """Call ``on_commit(size)`` after each commit and ``on_alarm(message)`` when a
        split view is found (both on the follower's thread); the node's server does."""
        self._on_commit, self._on_alarm = on_commit, on_alarm

    # -- what the node serves -------------------------------------------------

    def served(self, checkpoint: SignedCheckpoint) -> SignedCheckpoint:
        """``checkpoint`` as served: with the cosignatures kept for exactly its text."""
        served = self._served
        if served is not None and served.text == checkpoint.text:
            return served
        return checkpoint

    @property
    def submit_refusal(self) -> str:
        """What a Submit to this mirror is answered."""
        return (
            f"this node is a mirror of log {excerpt(self.mirror.origin)} at {self.upstream}; "
            "it takes no entries: submit to the town's own node"
        )

    # -- running --------------------------------------------------------------

    def start(self) -> None:
        """Run :meth:`run` on a thread of its own."""
        self._thread = threading.Thread(
            target=self.run, name=f"redlist-mirror-{self.upstream}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop following (a commit under way finishes first) and wait for the thread."""
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def run(self) -> None:
        """Follow until :meth:`stop`, or until a split view is found."""
        if self.alarm is not None:
            return
        logger.info(
            "mirroring origin=%s from=%s size=%d",
            excerpt(self.mirror.origin),
            self.upstream,
            self.mirror.size,
        )
        while not self._stop.is_set():
            try:
                self._round()
            except _SplitView:
                return
            except _StreamEnded:
                if self._stop.is_set():
                    return
                logger.info("follow stream ended from=%s: starting again", self.upstream)
                self._failures = max(self._failures, 1)
            except MirrorRefusal as refusal:
                if self._stop.is_set():
                    return
                self._failures += 1
                if self._metrics is not None:
                    self._metrics.refusals.labels(self.mirror.origin, refusal.check).inc()
                logger.error(
                    "refused from=%s origin=%s seq=%s check=%s: %s",
                    self.upstream,
                    excerpt(self.mirror.origin),
                    "-" if refusal.seq is None else refusal.seq,
                    refusal.check,
                    refusal.message,
                )
            except grpc.RpcError as error:
                if self._stop.is_set():
                    return
                self._failures += 1
                self._answering(False)
                logger.warning(
                    "primary not answering from=%s code=%s: %s",
                    self.upstream,
                    error.code().name,
                    peer_words(error.details() or ""),
                )
            except RedlistError as error:
                if self._stop.is_set():
                    return
                self._failures += 1
                logger.error("mirror failed from=%s: %s", self.upstream, error.diagnostics())
            delay = self._backoff()
            logger.info("retrying from=%s in_seconds=%.1f", self.upstream, delay)
            self._stop.wait(delay)

    def _backoff(self) -> float:
        limits = self._limits
        return min(limits.max_backoff, limits.first_backoff * 2 ** max(0, self._failures - 1))

    # -- one round: catch up, then follow -------------------------------------

    def _round(self) -> None:
        latest = self._fetch_checkpoint(pb.GetCheckpointRequest())
        self._judge(latest)
        # The next step is fetched, decoded and sent for signature checks while this one
        # is stored: at most two steps are held at once. ``known``: the keys that the
        # steps prepared so far register, in order (``MirrorLog.prepare``).
        known: dict[bytes, bytes] = {}
        with ThreadPoolExecutor(1, thread_name_prefix="redlist-mirror-fetch") as fetcher:
            held = self.mirror.size
            ahead = fetcher.submit(self._fetch_step, held, known) if held < latest.size else None
            while ahead is not None and not self._stop.is_set():
                step, leaves = ahead.result()
                ahead = None
                if step.size < latest.size:
                    ahead = fetcher.submit(self._fetch_step, step.size, known)
                if step.text == latest.text:
                    step = latest  # the latest, with the cosignatures the primary has for it
                self._judge(step)
                self._commit(leaves, step)
        if not self._stop.is_set():
            self._follow()

    def _fetch_step(
        self, held: int, known: dict[bytes, bytes]
    ) -> tuple[SignedCheckpoint, PreparedLeaves]:
        """The checkpoint the log signed at most ``chunk_entries`` beyond ``held`` (or
        its next one), and the leaves up to it, prepared (``MirrorLog.prepare``)."""
        request = pb.GetCheckpointRequest(after=held, at_most=held + self._limits.chunk_entries)
        step = self._fetch_checkpoint(request)
        if step.size <= held:
            raise MirrorRefusal(
                "checkpoint", f"asked for a checkpoint beyond {held}, the primary sent {step.size}"
            )
        leaves = self._fetch_leaves(held, step.size)
        return step, self.mirror.prepare(leaves, self._scheduler, first=held, known=known)

    def _follow(self) -> None:
        start = self.mirror.size
        call = self._stub.Follow(pb.FollowRequest(start=start, batches=True))
        self._call = call
        if self._stop.is_set():
            # stop() ran before it could see this call: it sets the flag, then reads
            # _call; this sets _call, then reads the flag. One of the two cancels it.
            call.cancel()
        pending: list[bytes] = []
        held_bytes = 0
        try:
            if self._stop.is_set():  # stop() came before the call was there to cancel
                raise _StreamEnded()
            for event in call:
                which = event.WhichOneof("event")
                if which == "leaves" or which == "leaf":
                    if which == "leaves":
                        first, leaves = event.leaves.start, list(event.leaves.leaves)
                    else:
                        first, leaves = event.leaf.seq, [event.leaf.leaf]
                    due = start + len(pending)
                    if first != due:
                        raise MirrorRefusal(
                            "seq", f"the primary sent entry {first} where {due} was due"
                        )
                    pending.extend(leaves)
                    held_bytes += sum(map(len, leaves))
                    if (
                        len(pending) > self._limits.chunk_entries
                        or held_bytes > self._limits.chunk_bytes
                    ):
                        logger.info(
                            "follow batch beyond the mirror's bounds from=%s: catching up in steps",
                            self.upstream,
                        )
                        raise _StreamEnded()
                    continue
                checkpoint = self._open(event.checkpoint)
                self._judge(checkpoint)
                if checkpoint.size == self.mirror.size:
                    # The checkpoint held: sent first on every stream, and again when
                    # the primary has collected more cosignatures for it.
                    self._refresh(checkpoint)
                    continue
                self._commit(pending, checkpoint)
                start, pending, held_bytes = checkpoint.size, [], 0
        except grpc.RpcError as error:
            if self._stop.is_set() or error.code() == grpc.StatusCode.CANCELLED:
                raise _StreamEnded() from None
            raise
        finally:
            self._call = None
            call.cancel()
        raise _StreamEnded()

    # -- calls to the primary -------------------------------------------------

    def _fetch_checkpoint(self, request: pb.GetCheckpointRequest) -> SignedCheckpoint:
        answer = self._stub.GetCheckpoint(request, timeout=self._limits.call_timeout)
        self._answering(True)
        return self._open(answer.checkpoint)

    def _answering(self, answering: bool) -> None:
        if self._metrics is not None:
            self._metrics.primary_answering.labels(self.mirror.origin).set(1 if answering else 0)

    def _open(self, note: str) -> SignedCheckpoint:
        try:
            return open_checkpoint(note, self.mirror.log_key)
        except NoteError as error:
            served = _origin_of(note)
            if served is not None and served != self.mirror.origin:
                raise MirrorRefusal(
                    "checkpoint",
                    f"the node at {self.upstream} serves log {excerpt(served)!r}, not log "
                    f"{excerpt(self.mirror.origin)!r} (the log key given): a wrong --from "
                    "address or a wrong --log-key",
                ) from None
            raise MirrorRefusal(
                "checkpoint", f"the primary's checkpoint is not signed by the log key: {error}"
            ) from None

    def _fetch_leaves(self, start: int, end: int) -> list[bytes]:
        """Leaves ``[start, end)``, at most ``chunk_bytes`` of them (else ``MirrorRefusal``)."""
        call = self._stub.GetLeafBatches(
            pb.GetLeavesRequest(start=start, end=end), timeout=self._limits.call_timeout
        )
        self._call = call
        leaves: list[bytes] = []
        total = 0
        try:
            if self._stop.is_set():  # stop() came before the call was there to cancel
                call.cancel()
            for batch in call:
                due = start + len(leaves)
                if batch.start != due or len(batch.leaves) > end - due:
                    raise MirrorRefusal(
                        "seq",
                        f"the primary sent entries [{batch.start}, "
                        f"{batch.start + len(batch.leaves)}) where {due} was due "
                        f"and {end} the end",
                    )
                received = list(batch.leaves)
                total += sum(map(len, received))
                if total > self._limits.chunk_bytes:
                    raise MirrorRefusal(
                        "size",
                        f"the log's commit ending at size {end} holds more than "
                        f"{self._limits.chunk_bytes} bytes of entries, more than this mirror "
                        "takes at once (raise its chunk_bytes)",
                        seq=due,
                    )
                leaves.extend(received)
        finally:
            self._call = None
        if len(leaves) != end - start:
            raise MirrorRefusal(
                "size", f"the primary sent {len(leaves)} of entries [{start}, {end})"
            )
        return leaves

    # -- deciding -------------------------------------------------------------

    def _judge(self, new: SignedCheckpoint) -> None:
        """Refuse a rollback, and a checkpoint the held one cannot be consistent with."""
        held = self.mirror.held()
        if held is None:
            return  # the empty tree is a prefix of every tree
        if new.size < held.size:
            if self.mirror.root_at(new.size) != new.root:
                local = tuple(self.mirror.log.consistency_proof(new.size, held.size))
                self._split(SplitViewEvidence(new.origin, new.note, held.note, local))
            raise MirrorRefusal(
                "rollback",
                f"the primary's checkpoint is of {new.size} entries, fewer than the "
                f"{held.size} the mirror holds: it was rolled back (restored from a backup?)",
            )
        if new.size == held.size:
            if new.root != held.root:
                self._split(SplitViewEvidence(new.origin, held.note, new.note, ()))
            return
        request = pb.ConsistencyProofRequest(first=held.size, second=new.size)
        proof = tuple(
            self._stub.GetConsistencyProof(request, timeout=self._limits.call_timeout).hashes
        )
        try:
            merkle.verify_consistency(held.size, new.size, proof, held.root, new.root)
        except ProofError:
            self._split(SplitViewEvidence(new.origin, held.note, new.note, proof))

    def _split(self, evidence: SplitViewEvidence) -> None:
        path = write_evidence(self.mirror.data_dir, evidence)
        message = (
            f"split view: the log's node at {self.upstream} showed a checkpoint that "
            f"contradicts one this mirror holds; evidence {path}"
        )
        logger.error(
            "split view origin=%s from=%s evidence=%s: following stopped until an operator acts",
            excerpt(evidence.origin),
            self.upstream,
            path,
        )
        self._raise_alarm(message)
        raise _SplitView()

    def _raise_alarm(self, message: str) -> None:
        self.alarm = message
        if self._metrics is not None:
            self._metrics.alarm.labels(self.mirror.origin).set(1)
        if self._on_alarm is not None:
            self._on_alarm(message)

    def _check_kept_evidence(self) -> None:
        """Evidence of this log kept in the data directory keeps the follower stopped."""
        kept = [
            item.path
            for item in list_evidence(self.mirror.data_dir)
            if item.evidence is None or item.evidence.origin == self.mirror.origin
        ]
        if kept:
            logger.error(
                "split view origin=%s evidence=%s: not following until an operator moves the "
                "evidence out of %s",
                excerpt(self.mirror.origin),
                kept[-1],
                kept[-1].parent,
            )
            self.alarm = f"split-view evidence is kept in {kept[-1]}"

    # -- storing --------------------------------------------------------------

    def _commit(self, leaves: list[bytes] | PreparedLeaves, checkpoint: SignedCheckpoint) -> None:
        if not isinstance(leaves, PreparedLeaves):
            leaves = self.mirror.prepare(leaves, self._scheduler)
        self.mirror.store(leaves, checkpoint)
        served = self._cosigned(checkpoint)
        self._served = served
        self._keep(served)
        self._failures = 0
        logger.info(
            "mirrored origin=%s size=%d entries=%d from=%s",
            excerpt(checkpoint.origin),
            checkpoint.size,
            len(leaves),
            self.upstream,
        )
        if self._metrics is not None:
            self._metrics.tree_size.labels(self.mirror.origin).set(checkpoint.size)
            self._metrics.entries.labels(self.mirror.origin).inc(len(leaves))
        if self._on_commit is not None:
            self._on_commit(checkpoint.size)

    def _refresh(self, checkpoint: SignedCheckpoint) -> None:
        """Serve the held checkpoint with the primary's new cosignature lines, if any.

        ``checkpoint`` has the size held and passed ``_judge``, so the same text.
        """
        served = self._served
        if served is None or served.text != checkpoint.text:
            return
        if self._primary_lines(checkpoint) == self._primary_lines(served):
            return
        self._served = self._cosigned(checkpoint)
        self._keep(self._served)
        if self._on_commit is not None:
            self._on_commit(checkpoint.size)  # Follow streams send it again

    def _primary_lines(self, checkpoint: SignedCheckpoint) -> tuple[NoteSignature, ...]:
        """The log's signature and the well-formed cosignature lines not by this mirror."""
        return tuple(
            line
            for line in checkpoint.signatures
            if line.is_by(checkpoint.log_key)
            or (
                (self._signer is None or not line.is_by(self._signer.cosignature_verifier()))
                and cosignature_time(line.signature) is not None
            )
        )

    def _cosigned(self, checkpoint: SignedCheckpoint) -> SignedCheckpoint:
        """The primary's checkpoint with its well-formed cosignature lines, and ours."""
        lines = self._primary_lines(checkpoint)
        kept = SignedCheckpoint(Note(checkpoint.text, lines).encode(), checkpoint.log_key)
        if self._signer is None:
            return kept
        # Only now: every entry up to this checkpoint is durably stored (extend committed).
        return cosign_checkpoint(kept, self._signer, int(self._clock()))

    def _keep(self, served: SignedCheckpoint) -> None:
        if len(served.signatures) < 2:
            return  # nothing beyond the log's own signature to keep
        path = self.mirror.data_dir / COSIGNED_FILE
        try:
            write_atomically(path, served.note.encode("utf-8"))
        except OSError as error:
            logger.warning("cannot keep the cosigned checkpoint in %s: %s", path, error)

    def _load_served(self) -> None:
        held = self.mirror.held()
        if held is None:
            return
        kept = read_cosigned(self.mirror.data_dir, self.mirror.log_key)
        if kept is not None and kept.text == held.text:
            if self._signer is None or any(
                line.is_by(self._signer.cosignature_verifier()) for line in kept.signatures
            ):
                self._served = kept
                return
            held = kept
        self._served = self._cosigned(held)
        self._keep(self._served)


def _origin_of(note: str) -> str | None:
    """The origin line of a checkpoint note, None if it is not one."""
    try:
        return Checkpoint.from_text(Note.parse(note).text).origin
    except (NoteError, ValueError):
        return None


__all__ = ["CHUNK_BYTES", "CHUNK_ENTRIES", "Follower", "MirrorLimits"]
