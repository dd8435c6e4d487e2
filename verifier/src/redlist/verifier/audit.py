"""The audit: a state machine over bytes that re-checks a log from its leaves.

An ``Auditor`` is handed the log's key (from outside the data), then each leaf's
exact bytes in seq order (``feed``), then the signed checkpoint (``finish``).
It fetches nothing and stores nothing; reading bundles or nodes is the caller's
job. Every defect raises ``VerificationError`` naming the first bad seq and the
check that failed (``CHECKS``); once one is raised the auditor is spent.

What is checked, per leaf: the leaf decodes (canonical msgpack), its seq is its
position, the node's time never goes back, ``prev`` is the leaf hash of the entry
before (zero at seq 0), the envelope decodes, and the points semantics accepts the
entry (``points.apply_entry`` over an in-memory state: genesis, log name,
signatures, roles, revocations, rules, quorum, overdraw, reversals, unique ids,
author time). At the end: the entry count equals the checkpoint's tree size and
the Merkle root of all leaves equals its root; the checkpoint itself is signed by
the log key (``check_checkpoint``, which a caller should run first so a forged
checkpoint fails before any leaf is read).

A bundle that starts after seq 0 (``left`` given) is checked for format, seq,
time, chain (from its second entry; the first entry's link is checked only when
``left`` happens to end with that leaf hash) and log name, and its root is
recomputed from ``left`` and its leaves. The points semantics needs the state
built by every earlier entry, so signatures and balances are *not* re-checked
for it; the result says so (``balances_recomputed``).

An audit can instead *resume* where an earlier full audit stopped
(``resume``, taken from that audit's ``resume_point``): it then starts with the
earlier state, tree, chain link and time, and checks the later entries
completely, balances included.

Speed: Ed25519 verification dominates, so leaves are taken in chunks; each
chunk's signatures are verified elsewhere while an earlier chunk runs through
the semantics, which only looks the results up. Where: on worker processes
(``workers.VerifyPool``) for a long log on a machine with several cores, since
they never wait for this thread's GIL; else on threads (the crypto library
releases the GIL, but a thread re-takes it after each signature, which can take
up to the interpreter's switch interval while the semantics runs: the
``redlist-verify`` command shortens that interval); or on a caller's executor.
Key ids are never reused in a log, so a key id seen in a genesis or key entry
names one public key for good; a lookup that misses, or finds the signature
with another key or body, falls back to verifying on the spot, so the
precomputation never decides an outcome.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from redlist.ledger import crypto, merkle, points
from redlist.ledger.entry import (
    ZERO_HASH,
    Envelope,
    Genesis,
    KeyChange,
    Leaf,
    TownConfig,
    decode_body,
)
from redlist.ledger.errors import (
    FormatError,
    NoteError,
    RedlistError,
    RuleViolation,
    VerificationError,
)
from redlist.ledger.note import Checkpoint, VerifierKey, open_checkpoint
from redlist.ledger.sigworkers import VerifyPool
from redlist.ledger.state import MemoryState

#: Every check the audit can fail, by identifier: the points rules and the log's own.
CHECKS: Mapping[str, str] = {
    **points.CHECKS,
    "format": "every leaf, envelope and body must be well-formed, canonical format v1 bytes",
    "seq": "each entry's seq must be its position in the log",
    "time": "the node's integration time may never go back",
    "chain": "each entry's prev must be the leaf hash of the entry before it",
    "size": "the checkpoint's tree size must equal the number of entries",
    "root": "the Merkle root of the entries must equal the checkpoint's root",
    "checkpoint": "the checkpoint must be signed by the log key, for this log",
    "manifest": "the bundle's manifest must agree with its checkpoint",
    "left": "a bundle's left file must be the compact range of the entries before it",
    "previous-checkpoint": "a bundle's previous checkpoint must be signed by the log key",
    "consistency": "a new checkpoint must extend every checkpoint verified before",
    "rollback": "a log never shrinks below a size verified before",
    "account-view": "a node's figures for an account must equal those recomputed from its log",
    "inclusion": "a node's inclusion proofs must put its entries in the tree it signed",
}

#: Leaves per chunk: big enough to keep the verifying threads busy, small enough
#: that a failure is reported soon.
CHUNK_SIZE = 512
#: A chunk closes early once its leaves hold this many bytes: with 64 KiB entries,
#: the chunks in flight then hold about 24 MiB rather than 100.
CHUNK_BYTES = 8 * 1024 * 1024
#: Chunks whose signatures may be out for verification while an older one runs
#: through the semantics: with two, the workers find the next chunk waiting.
IN_FLIGHT = 2

#: Entries left to check from which ``Auditor`` verifies on processes by default.
#: Starting a worker process costs a few tenths of a second; below this, threads.
PROCESS_MIN_ENTRIES = 20_000

#: ``TrustedHead.source`` of the head pinned by an earlier run (see ``statefile``):
#: a log smaller than it was rolled back.
STATE_FILE_SOURCE = "the state file"

# Cheap byte patterns that every canonical genesis / key body contains; only those
# bodies are decoded ahead of the semantics to learn public keys.
_KIND_GENESIS = b"\xa4kind\xa7genesis"
_KIND_KEY = b"\xa4kind\xa3key"


@dataclass(frozen=True)
class TrustedHead:
    """A tree size and root known from elsewhere, which the audited log must extend.

    ``source`` says where it came from, for messages ("the state file",
    "previous-checkpoint").
    """

    size: int
    root: bytes
    source: str


@dataclass(frozen=True)
class ResumePoint:
    """Where a full audit stopped (after at least one entry), to check later entries only.

    ``state`` is the points semantics' state after entry ``size - 1``, ``tree`` the
    compact range of the leaves ``[0, size)``, ``last_leaf_hash`` and ``last_time``
    the last entry's leaf hash and node time. An auditor resuming from it takes
    ``state`` over and changes it as it goes.
    """

    tree: merkle.CompactRange
    last_leaf_hash: bytes
    last_time: int
    state: MemoryState

    @property
    def size(self) -> int:
        return self.tree.end


@dataclass(frozen=True)
class AccountSummary:
    """An account's balances as recomputed from the log (DESIGN 3.4)."""

    score: int
    earned: int
    spendable: int
    redeemed: int
    grade: str
    entries: int


@dataclass(frozen=True)
class StatementLine:
    """One entry that touched an account, and the account's totals after it.

    ``points`` is the change to earned points, ``redeemed`` the change to redeemed
    points (negative when a redemption is reversed); ``time`` is the node's time (ms).
    """

    seq: int
    time: int
    kind: str
    rule: str | None
    points: int
    redeemed: int
    signers: tuple[str, ...]
    target: int | None
    score: int
    spendable: int


@dataclass(frozen=True)
class AuditResult:
    """What a successful audit established."""

    checkpoint: Checkpoint
    #: The signed checkpoint note exactly as verified.
    checkpoint_text: str
    start: int
    #: Signatures, roles and balances were recomputed (only when ``start == 0``).
    balances_recomputed: bool
    #: The first entry's ``prev`` was checked (always when ``start == 0``).
    first_prev_checked: bool
    signatures_checked: int
    staff_keys: int
    rules: int
    config: TownConfig | None
    accounts: Mapping[str, AccountSummary]
    #: The statement of ``keep_statements_for``, or None when not asked or not recomputed.
    statement: tuple[StatementLine, ...] | None
    trusted_heads: tuple[TrustedHead, ...] = ()

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def tree_size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    @property
    def entries(self) -> int:
        """How many entries were checked."""
        return self.checkpoint.size - self.start


@dataclass
class _Prepared:
    """A leaf that passed the structural checks, waiting for the semantics."""

    seq: int
    time: int
    envelope: Envelope


class _Outcomes(Protocol):
    """Signature outcomes on their way: a ``Future`` or a ``workers.Pending``."""

    def result(self) -> list[bool]: ...


@dataclass
class _Chunk:
    prepared: list[_Prepared]
    triples: list[tuple[bytes, bytes, bytes]]
    futures: list[_Outcomes]
    #: A structural failure after the prepared leaves, raised once they are applied.
    failure: VerificationError | None = None
    #: Signature -> ((public key, body, signature), verified?), as computed ahead.
    results: dict[bytes, tuple[tuple[bytes, bytes, bytes], bool]] = field(default_factory=dict)


class Auditor:
    """Checks one log, leaf by leaf; see the module docstring for what and in which order.

    ``left`` is the compact range of the leaves before the first one fed (for a
    bundle that starts after seq 0). ``trusted`` are tree heads verified earlier
    that the log must extend. Signatures are verified on ``executor`` when given
    (the caller owns it; ``workers`` should be its size), else by ``workers``
    (default: one per available core) worker processes when ``processes`` is
    true, threads when it is false. ``processes=None`` decides: processes when
    there are at least two workers and the checkpoint, checked before the first
    leaves, leaves at least ``PROCESS_MIN_ENTRIES`` entries to check (starting
    them takes a moment). Use as a context manager, or call ``close``.
    """

    def __init__(
        self,
        log_key: VerifierKey,
        *,
        keep_statements_for: str | None = None,
        left: merkle.CompactRange | None = None,
        resume: ResumePoint | None = None,
        trusted: Sequence[TrustedHead] = (),
        workers: int | None = None,
        executor: Executor | None = None,
        processes: bool | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._log_key = log_key
        self._origin = log_key.name
        self._account = keep_statements_for
        self._tree = merkle.CompactRange()
        if resume is not None:
            if left is not None or resume.size == 0:
                raise RedlistError("an audit resumes after at least one entry, without a left")
            left = resume.tree
        if left is not None:
            self._tree = merkle.CompactRange.from_hashes(left.end, left.hashes)
        self._start = self._tree.end
        self._next_seq = self._start
        self._full = self._start == 0 or resume is not None
        self._prev_hash: bytes | None = ZERO_HASH
        if resume is not None:
            self._prev_hash = resume.last_leaf_hash
        elif not self._full:
            # The smallest subtree of [0, start) is the single leaf start - 1 when start is odd.
            self._prev_hash = self._tree.hashes[-1] if self._start % 2 else None
        self._first_prev_checked = self._prev_hash is not None
        self._last_time = -1 if resume is None else resume.last_time
        self._trusted = tuple(trusted)
        self._snapshots: dict[int, bytes] = {}
        for head in self._trusted:
            if head.size == 0:
                self._snapshots[0] = merkle.EMPTY_ROOT
            elif head.size == self._start:
                self._snapshots[head.size] = self._tree.root()
        self._expected: Checkpoint | None = None
        self._expected_text = ""
        self._state = MemoryState() if resume is None else resume.state
        self._public_by_key_id: dict[bytes, bytes] = {
            key_id: record.public for key_id, record in self._state.keys.items()
        }
        self._statement: list[StatementLine] = []
        self._signatures = 0
        self._chunk_size = chunk_size
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        #: Chunks whose signatures are being verified, oldest first (``IN_FLIGHT`` at most).
        self._in_flight: deque[_Chunk] = deque()
        self._failure: VerificationError | None = None
        self._workers = workers or _available_cores()
        # A caller's executor (e.g. a process pool) is used as is and left running.
        self._executor = executor
        self._processes = processes
        self._pool: ThreadPoolExecutor | None = None
        self._process_pool: VerifyPool | None = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> Auditor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the verifying threads or processes (waiting for the ones running)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._process_pool is not None:
            self._process_pool.close()
            self._process_pool = None

    @property
    def start(self) -> int:
        """The seq of the first leaf to be fed."""
        return self._start

    @property
    def next_seq(self) -> int:
        """The seq the next fed leaf must have (leaves received so far plus ``start``)."""
        return self._next_seq + len(self._pending)

    def resume_point(self) -> ResumePoint:
        """Where this audit stands, for a later one to ``resume`` from. Call it after a
        successful ``finish`` of a full (or resumed) audit; the auditor is spent then."""
        if (
            self._failure is not None
            or not self._full
            or self._pending
            or self._in_flight
            or self._prev_hash is None
            or self._next_seq == 0
        ):
            raise RedlistError("only a finished full audit of at least one entry can be resumed")
        tree = merkle.CompactRange.from_hashes(self._tree.end, self._tree.hashes)
        return ResumePoint(tree, self._prev_hash, self._last_time, self._state)

    # -- the checkpoint ----------------------------------------------------

    def check_checkpoint(self, checkpoint_text: bytes | str) -> Checkpoint:
        """Verify the signed checkpoint against the log key and the trusted heads.

        Call it before feeding leaves: a forged checkpoint or a rollback is then
        reported before any leaf is read, and extra leaves are caught as they come.
        """
        try:
            checkpoint = open_checkpoint(checkpoint_text, self._log_key)
        except NoteError as exc:
            raise self._fail(None, "checkpoint", f"the checkpoint does not verify: {exc}") from None
        if checkpoint.size < self._start:
            raise self._fail(
                None,
                "size",
                f"the checkpoint covers {checkpoint.size} entries, but the data starts at "
                f"entry {self._start}",
            )
        for head in self._trusted:
            self._check_head_fits(head, checkpoint)
        self._expected = checkpoint
        if self._executor is None and self._full:
            self._start_processes()  # they get ready while the first leaves are read
        self._expected_text = (
            checkpoint_text if isinstance(checkpoint_text, str) else bytes(checkpoint_text).decode()
        )
        return checkpoint

    def _check_head_fits(self, head: TrustedHead, checkpoint: Checkpoint) -> None:
        if head.size > checkpoint.size:
            check = "rollback" if head.source == STATE_FILE_SOURCE else "consistency"
            raise self._fail(
                None,
                check,
                f"the checkpoint covers {checkpoint.size} entries, but {head.source} holds "
                f"a verified checkpoint of {head.size} entries: the log was rolled back",
            )
        if head.size == checkpoint.size and head.root != checkpoint.root:
            raise self._fail(
                None,
                "consistency",
                f"the checkpoint and {head.source} both cover {head.size} entries but with "
                f"different roots: the log has shown two histories",
            )
        if 0 < head.size < self._start:
            raise self._fail(
                None,
                "consistency",
                f"{head.source} holds a checkpoint of {head.size} entries, but the data "
                f"starts at entry {self._start}: the entries in between are needed to "
                "prove the new checkpoint extends it",
            )
        snapshot = self._snapshots.get(head.size)
        if snapshot is not None and snapshot != head.root:
            raise self._fail(None, "consistency", self._diverged(head))

    # -- leaves ------------------------------------------------------------

    def feed(self, leaf_bytes: bytes) -> None:
        """Take the next leaf's exact bytes. Leaves are checked in chunks, so a
        ``VerificationError`` raised here may concern a leaf fed a little earlier."""
        if self._failure is not None:
            raise self._failure
        self._pending.append(bytes(leaf_bytes))
        self._pending_bytes += len(leaf_bytes)
        if len(self._pending) >= self._chunk_size or self._pending_bytes >= CHUNK_BYTES:
            self._flush_pending()

    def fail_at_next(self, check: str, message: str) -> VerificationError:
        """Report a defect at the next leaf's position (e.g. an undecodable stream),
        after checking every leaf already fed so an earlier defect is named first."""
        if self._failure is not None:
            return self._failure
        seq = self.next_seq
        self._flush_pending()
        self._apply_in_flight()
        return self._fail(seq, check, message)

    def finish(self, checkpoint_text: bytes | str) -> AuditResult:
        """Check the leaves still pending and the checkpoint; return what was established."""
        if self._failure is not None:
            raise self._failure
        checkpoint = self.check_checkpoint(checkpoint_text)
        self._flush_pending()
        self._apply_in_flight()
        self.close()
        count = self._next_seq
        if count != checkpoint.size:
            raise self._fail(
                count,
                "size",
                f"the checkpoint covers {checkpoint.size} entries but the data ends after "
                f"{count}: entries {count} to {checkpoint.size - 1} are missing",
            )
        root = self._tree.root()
        if root != checkpoint.root:
            if self._start == 0 and count > self._start:
                # Every earlier leaf is pinned by the next one's prev link, all of which
                # held; only the newest leaf is pinned by nothing but the root.
                raise self._fail(
                    count - 1,
                    "root",
                    f"the Merkle root of the entries is {root.hex()}, the checkpoint signed "
                    f"{checkpoint.root.hex()}: the hash chain holds, so the newest entry "
                    f"({count - 1}) is not the one the checkpoint signed",
                )
            raise self._fail(
                None,
                "root",
                f"the Merkle root of the entries is {root.hex()}, the checkpoint signed "
                f"{checkpoint.root.hex()}: entries were changed, added or removed",
            )
        for head in self._trusted:
            if self._snapshots.get(head.size) != head.root:
                raise self._fail(None, "consistency", self._diverged(head))
        return self._result(checkpoint)

    # -- internals ---------------------------------------------------------

    def _fail(self, seq: int | None, check: str, message: str) -> VerificationError:
        self._failure = VerificationError(check, message, seq=seq)
        self.close()
        return self._failure

    def _diverged(self, head: TrustedHead) -> str:
        return (
            f"the entries do not reproduce the root of the checkpoint of {head.size} entries "
            f"held in {head.source}: the log's history was rewritten after it was verified"
        )

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        raw_leaves, self._pending, self._pending_bytes = self._pending, [], 0
        chunk = self._prepare(raw_leaves)
        self._in_flight.append(chunk)
        if chunk.failure is not None:
            self._apply_in_flight()
            self._failure = chunk.failure
            self.close()
            raise chunk.failure
        while len(self._in_flight) > IN_FLIGHT:
            self._apply_chunk(self._in_flight.popleft())

    def _prepare(self, raw_leaves: list[bytes]) -> _Chunk:
        """The structural checks of a chunk, in order; then start its signature checks."""
        chunk = _Chunk([], [], [])
        expected_size = self._expected.size if self._expected is not None else None
        # Runs for every leaf: the attribute look-ups are hoisted out of the loop.
        check_leaf, full, publics = self._check_leaf, self._full, self._public_by_key_id
        prepared_leaves, triples = chunk.prepared, chunk.triples
        for raw in raw_leaves:
            try:
                prepared = check_leaf(self._next_seq, raw, expected_size)
            except VerificationError as exc:
                chunk.failure = exc
                break
            prepared_leaves.append(prepared)
            if full:
                envelope = prepared.envelope
                body = envelope.body
                if _KIND_KEY in body or _KIND_GENESIS in body:
                    self._learn_keys(envelope)
                for signature in envelope.signatures:
                    public = publics.get(signature.key_id)
                    if public is not None:
                        triples.append((public, body, signature.signature))
        if chunk.triples:
            chunk.futures = self._submit(chunk.triples)
        return chunk

    def _check_leaf(self, seq: int, raw: bytes, expected_size: int | None) -> _Prepared:
        if expected_size is not None and seq >= expected_size:
            raise VerificationError(
                "size",
                f"the data holds more entries than the {expected_size} the checkpoint covers",
                seq=seq,
            )
        try:
            leaf = Leaf.from_bytes(raw)
        except FormatError as exc:
            raise VerificationError("format", f"the leaf cannot be read: {exc}", seq=seq) from None
        if leaf.seq != seq:
            raise VerificationError(
                "seq",
                f"the entry at position {seq} says it is entry {leaf.seq}: entries were "
                "removed, inserted or reordered",
                seq=seq,
            )
        if leaf.time < self._last_time:
            raise VerificationError(
                "time",
                f"the node's time {leaf.time} ms goes back from {self._last_time} ms at the "
                "entry before",
                seq=seq,
            )
        if self._prev_hash is not None and leaf.prev != self._prev_hash:
            raise VerificationError(
                "chain",
                "the entry's prev is not the leaf hash of the entry before it: the entry "
                "before was changed, removed or reordered",
                seq=seq,
            )
        try:
            envelope = Envelope.from_bytes(leaf.envelope)
        except FormatError as exc:
            raise VerificationError(
                "format", f"the envelope cannot be read: {exc}", seq=seq
            ) from None
        leaf_hash = merkle.leaf_hash(raw)
        self._tree.append(leaf_hash)
        self._prev_hash = leaf_hash
        self._last_time = leaf.time
        self._next_seq = seq + 1
        if self._trusted:
            for head in self._trusted:
                if head.size == self._next_seq:
                    self._snapshots[head.size] = self._tree.root()
        return _Prepared(seq, leaf.time, envelope)

    def _learn_keys(self, envelope: Envelope) -> None:
        """Remember the public key a genesis or key entry (by its bytes) registers."""
        try:
            decoded = decode_body(envelope.body)
        except FormatError:
            return  # the semantics reports it, at the right moment
        if isinstance(decoded, Genesis):
            self._public_by_key_id.setdefault(crypto.key_id(decoded.admin), decoded.admin)
        elif isinstance(decoded, KeyChange) and decoded.op == "add":
            self._public_by_key_id.setdefault(crypto.key_id(decoded.pub), decoded.pub)

    def _submit(self, triples: list[tuple[bytes, bytes, bytes]]) -> list[_Outcomes]:
        executor = self._executor
        # Threads verify while the worker processes start (a fraction of a second).
        if executor is None and self._start_processes():
            pool = self._process_pool
            if pool is not None and pool.started():
                return list(pool.submit(triples))
        if executor is None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._workers, thread_name_prefix="redlist-verify"
                )
            executor = self._pool
        share = -(-len(triples) // self._workers)
        return [
            executor.submit(_verify_all, triples[begin : begin + share])
            for begin in range(0, len(triples), share)
        ]

    def _apply_in_flight(self) -> None:
        """Run every chunk in flight through the semantics, oldest first."""
        while self._in_flight:
            self._apply_chunk(self._in_flight.popleft())

    def _apply_chunk(self, chunk: _Chunk) -> None:
        if not chunk.prepared:
            return
        if not self._full:
            for prepared in chunk.prepared:
                self._check_partial(prepared)
            return
        outcomes = [ok for future in chunk.futures for ok in future.result()]
        results = chunk.results
        for triple, ok in zip(chunk.triples, outcomes, strict=True):
            results.setdefault(triple[2], (triple, ok))

        def check_signature(public: bytes, body: bytes, signature: bytes) -> bool:
            known = results.get(signature)
            if known is not None and known[0][0] == public and known[0][1] == body:
                return known[1]
            return crypto.verify_entry(public, body, signature)

        state, origin, account = self._state, self._origin, self._account
        apply_entry = points.apply_entry
        signatures = 0
        for prepared in chunk.prepared:
            envelope = prepared.envelope
            try:
                effect = apply_entry(
                    state,
                    origin=origin,
                    seq=prepared.seq,
                    time=prepared.time,
                    envelope=envelope,
                    check_signature=check_signature,
                )
            except RuleViolation as exc:
                self._signatures += signatures
                raise self._fail(prepared.seq, exc.check, exc.message) from None
            signatures += len(envelope.signatures)
            if account is not None and effect.account == account:
                self._record_statement(prepared, effect)
        self._signatures += signatures

    def _check_partial(self, prepared: _Prepared) -> None:
        try:
            body = decode_body(prepared.envelope.body)
        except FormatError as exc:
            raise self._fail(prepared.seq, "format", str(exc)) from None
        if body.log != self._origin:
            raise self._fail(
                prepared.seq,
                "log",
                f"the entry is meant for log {body.log!r}, not for this log {self._origin!r}",
            )

    def _record_statement(self, prepared: _Prepared, effect: points.Effect) -> None:
        config = self._state.config()
        if config is None or effect.account is None:  # not after an accepted entry
            return
        balance = self._state.balance(effect.account)
        self._statement.append(
            StatementLine(
                seq=prepared.seq,
                time=prepared.time,
                kind=effect.kind,
                rule=effect.rule,
                points=effect.earned_delta,
                redeemed=effect.redeemed_delta,
                signers=effect.signers,
                target=effect.target,
                score=balance.score(config),
                spendable=balance.spendable,
            )
        )

    def _result(self, checkpoint: Checkpoint) -> AuditResult:
        state = self._state
        config = state.config() if self._full else None
        accounts: dict[str, AccountSummary] = {}
        if config is not None:
            for account in sorted(state.balances):
                balance = state.balances[account]
                score = balance.score(config)
                accounts[account] = AccountSummary(
                    score=score,
                    earned=balance.earned,
                    spendable=balance.spendable,
                    redeemed=balance.redeemed,
                    grade=config.grade_of(score),
                    entries=balance.entries,
                )
        statement = None
        if self._account is not None and self._full:
            statement = tuple(self._statement)
        return AuditResult(
            checkpoint=checkpoint,
            checkpoint_text=self._expected_text,
            start=self._start,
            balances_recomputed=self._full,
            first_prev_checked=self._first_prev_checked,
            signatures_checked=self._signatures,
            staff_keys=len(state.keys) if self._full else 0,
            rules=len(state.rules) if self._full else 0,
            config=config,
            accounts=accounts,
            statement=statement,
            trusted_heads=self._trusted,
        )

    def _start_processes(self) -> bool:
        """Start the worker processes if they are to be used; whether they are."""
        if self._processes is None:
            if self._workers < 2 or self._expected is None:
                return False
            self._processes = self._expected.size - self._next_seq >= PROCESS_MIN_ENTRIES
        if self._processes and self._process_pool is None:
            self._process_pool = VerifyPool(self._workers)
        return self._processes


def _verify_all(triples: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    verify = crypto.verify_entry
    return [verify(public, body, signature) for public, body, signature in triples]


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on every platform
        return max(1, os.cpu_count() or 1)


__all__ = [
    "CHECKS",
    "CHUNK_SIZE",
    "PROCESS_MIN_ENTRIES",
    "STATE_FILE_SOURCE",
    "AccountSummary",
    "AuditResult",
    "Auditor",
    "ResumePoint",
    "StatementLine",
    "TrustedHead",
]
