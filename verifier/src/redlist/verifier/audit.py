"""The audit: a state machine over bytes that re-checks a log from its leaves.

An ``Auditor`` is handed the log's key (from outside the data), then the checkpoint
(``check_checkpoint``: a ``SignedCheckpoint`` its source verified with that key when
reading it), then each leaf's exact bytes in seq order, then the checkpoint again
(``finish``). It fetches nothing, stores nothing, and
starts no thread or process: reading bundles or nodes, and verifying signatures
in parallel, is its driver's job (``source.audit`` and ``nodeaudit.verify_node``
run ``sigschedule.check_leaves``, which calls ``read_all`` and ``signatures_of``
for each chunk of leaves and ``apply`` for each leaf; ``feed`` reads and applies one
leaf, verifying on the spot).
Every defect raises ``VerificationError`` naming the first bad seq and the check
that failed (``results.CHECKS``); once one is raised the auditor is spent.

Each leaf goes through the ledger's one validator (``validator.LogValidator``:
format, seq, time, chain, the points semantics, the Merkle tree), the very checks
a node makes before it appends. The auditor adds what concerns the checkpoint: it
is signed by the log key for this log and fits the trusted heads (``TrustedHead``:
verified earlier, the log must extend them), no leaf lies beyond its tree size,
and at the end the entry count equals that size and the root of all leaves its
root.

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from redlist.ledger import crypto, merkle, points
from redlist.ledger.errors import RedlistError, RuleViolation, VerificationError
from redlist.ledger.i18n import _
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.points import SignatureCheck
from redlist.ledger.state import LedgerState, MemoryState
from redlist.ledger.validator import LogValidator, Reading, Triple, read_leaf
from redlist.verifier.checkwords import CHECK_KINDS, RULE_BROKEN
from redlist.verifier.failure import Checked, Failure, describe_entry
from redlist.verifier.results import (
    STATE_FILE_SOURCE,
    AccountSummaries,
    AccountSummary,
    AuditResult,
    ResumePoint,
    StatementLine,
    TrustedHead,
)

#: Called with each accepted entry of a full audit: its seq, reading and effect, and the
#: points state after it. It may refuse the entry by raising ``VerificationError``.
Observer = Callable[[int, Reading, points.Effect | None, LedgerState], None]


class Auditor:
    """Checks one log, leaf by leaf; see the module docstring for what and in which order.

    ``left`` is the compact range of the leaves before the first one fed (for a
    bundle that starts after seq 0). ``resume`` is where an earlier full audit
    stopped (its state is taken over). ``trusted`` are tree heads verified earlier
    that the log must extend. ``keep_statements_for`` names an account whose
    statement the result carries. ``observer`` sees each entry a full audit accepts.
    """

    def __init__(
        self,
        log_key: VerifierKey,
        *,
        keep_statements_for: str | None = None,
        left: merkle.CompactRange | None = None,
        resume: ResumePoint | None = None,
        trusted: Sequence[TrustedHead] = (),
        observer: Observer | None = None,
    ) -> None:
        self._log_key = log_key
        self._observer = observer
        self._origin = log_key.name
        self._account = keep_statements_for
        if resume is not None:
            if left is not None or resume.size == 0:
                raise RedlistError(_("an audit resumes after at least one entry, without a left"))
            self._state = resume.state
            self._validator = LogValidator(
                self._origin,
                state=resume.state,
                tree=resume.tree,
                last_leaf_hash=resume.last_leaf_hash,
                last_time=resume.last_time,
            )
        elif left is not None and left.end > 0:
            # The smallest subtree of [0, start) is the single leaf start - 1 when start is odd.
            self._state = MemoryState()
            self._validator = LogValidator(
                self._origin,
                partial=True,
                tree=left,
                last_leaf_hash=left.hashes[-1] if left.end % 2 else None,
            )
        else:
            self._state = MemoryState()
            self._validator = LogValidator(self._origin, state=self._state)
        self._full = self._validator.state is not None
        self._start = self._validator.size
        self._first_prev_checked = self._validator.last_leaf_hash is not None
        self._trusted = tuple(trusted)
        self._snapshots: dict[int, bytes] = {}
        for head in self._trusted:
            if head.size == 0:
                self._snapshots[0] = merkle.EMPTY_ROOT
            elif head.size == self._start:
                self._snapshots[head.size] = self._validator.root()
        self._expected: SignedCheckpoint | None = None
        self._expected_size: int | None = None
        self._statement: list[StatementLine] = []
        self._failure: VerificationError | None = None
        #: The last leaf handed to ``apply`` and its seq, to name it in a failure.
        self._recent: tuple[int, Reading] | None = None

    @property
    def start(self) -> int:
        """The seq of the first leaf to be fed."""
        return self._start

    @property
    def next_seq(self) -> int:
        """The seq the next leaf must have."""
        return self._validator.size

    @property
    def checks_signatures(self) -> bool:
        """Whether signatures and balances are checked (not for a partial bundle)."""
        return self._full

    def resume_point(self) -> ResumePoint:
        """Where this audit stands, for a later one to ``resume`` from. Call it after a
        successful ``finish`` of a full (or resumed) audit."""
        validator = self._validator
        last_leaf_hash = validator.last_leaf_hash
        if self._failure is not None or not self._full or last_leaf_hash is None:
            raise RedlistError(_("only a finished full audit of at least one entry can be resumed"))
        if validator.size == 0:
            raise RedlistError(_("only a finished full audit of at least one entry can be resumed"))
        return ResumePoint(validator.tree(), last_leaf_hash, validator.last_time, self._state)

    # -- the checkpoint ----------------------------------------------------

    def check_checkpoint(self, checkpoint: SignedCheckpoint) -> SignedCheckpoint:
        """Check the checkpoint (verified where it was read) against the trusted heads.

        It must have been verified with this audit's log key. Call it before feeding
        leaves: a rollback is then reported before any leaf is read, and extra leaves
        are caught as they come.
        """
        if checkpoint.log_key != self._log_key:
            raise self._fail(
                None,
                "checkpoint",
                f"the checkpoint was verified with key {checkpoint.log_key.describe()}, "
                f"not with this log's key {self._log_key.describe()}",
            )
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
        self._expected_size = checkpoint.size
        if isinstance(self._state, MemoryState):  # room for the ids to come, at once
            self._state.reserve(checkpoint.size)
        return checkpoint

    def _check_head_fits(self, head: TrustedHead, checkpoint: SignedCheckpoint) -> None:
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

    #: Decode each leaf of a chunk without deciding anything (``validator.read_leaf``).
    read_all = staticmethod(LogValidator.read_all)

    def signatures_of(self, readings: list[Reading]) -> list[Triple]:
        """``signatures`` of each reading of a chunk, in order, in one list."""
        return self._validator.signatures_of(readings)

    def apply(self, reading: Reading, verdicts: SignatureCheck = crypto.verify_entry) -> None:
        """Check the next leaf, with ``verdicts`` deciding its signatures."""
        if self._failure is not None:
            raise self._failure
        validator = self._validator
        seq = validator.size
        self._recent = (seq, reading)
        expected_size = self._expected_size
        if expected_size is not None and seq >= expected_size:
            raise self._fail(
                seq,
                "size",
                f"the data holds more entries than the {expected_size} the checkpoint covers",
            )
        try:
            effect = validator.apply(reading, verdicts)
        except RuleViolation as exc:
            raise self._fail(seq, exc.check, exc.message) from None
        if self._trusted:
            size = seq + 1
            for head in self._trusted:
                if head.size == size:
                    self._snapshots[size] = validator.root()
        if effect is not None and self._account is not None and effect.account == self._account:
            self._record_statement(seq, reading, effect)
        if self._observer is not None and self._full:
            try:
                self._observer(seq, reading, effect, self._state)
            except VerificationError as exc:
                self._failure = exc
                raise

    def feed(self, leaf_bytes: bytes) -> None:
        """Check the next leaf, verifying its signatures on the spot."""
        self.apply(read_leaf(bytes(leaf_bytes)))

    def fail_at_next(self, check: str, message: str) -> VerificationError:
        """Report a defect at the next leaf's position (e.g. an undecodable stream);
        the caller has applied every leaf before it, so an earlier defect came first."""
        if self._failure is not None:
            return self._failure
        return self._fail(self.next_seq, check, message)

    def finish(self, checkpoint: SignedCheckpoint) -> AuditResult:
        """Check the checkpoint against the leaves fed; return what was established."""
        if self._failure is not None:
            raise self._failure
        self.check_checkpoint(checkpoint)
        count = self._validator.size
        if count != checkpoint.size:
            raise self._fail(
                count,
                "size",
                f"the checkpoint covers {checkpoint.size} entries but the data ends after "
                f"{count}: entries {count} to {checkpoint.size - 1} are missing",
            )
        root = self._validator.root()
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

    def confirm_signed(self, error: VerificationError, later: Iterable[bytes]) -> VerificationError:
        """``error`` if it may stand, or the tampering it hides.

        A rule-broken failure says that the log signed an entry the town's rules forbid,
        so that the node must be examined. That holds only if the entry's bytes are the
        ones the log signed: a byte changed in a bundle (a signer's key id, a time) can
        make an entry read as breaking a rule before its signature is ever checked. So
        the entry's leaf hash, with ``later`` (the leaves after it, in order), must
        reproduce the checkpoint's root. If it does not, the data was changed after it
        was signed: the failure becomes ``root`` at the same entry, saying whether the
        next entry links to another version of it and what it would break as it reads
        now. Any other failure, or one the root confirms, is returned as it is.
        """
        seq = error.seq
        recent = self._recent
        expected = self._expected
        if (
            CHECK_KINDS.get(error.check) != RULE_BROKEN
            or seq is None
            or recent is None
            or recent[0] != seq
            or expected is None
            or self._validator.size != seq
        ):
            return error
        leaf_hash = merkle.leaf_hash(recent[1].raw)
        tree = self._validator.tree()
        tree.append(leaf_hash)
        relinked = False
        for raw in later:
            if tree.end >= expected.size:
                break  # more leaves than the checkpoint covers: the root cannot match
            data = bytes(raw)
            if tree.end == seq + 1:
                following = read_leaf(data).leaf
                relinked = following is not None and following.prev != leaf_hash
            tree.append(merkle.leaf_hash(data))
        if tree.end == expected.size and tree.root() == expected.root:
            return error
        as_read = f"as it reads now, it breaks the check {error.check}: {error.message}"
        if relinked:
            return self._fail(
                seq,
                "root",
                f"the next entry ({seq + 1}) links to another version of this entry, and the "
                f"entries do not reproduce the root the checkpoint signed: this entry was "
                f"changed after the log signed it ({as_read})",
            )
        return self._fail(
            seq,
            "root",
            f"the entries from this one on do not reproduce the root the checkpoint signed: "
            f"this entry or a later one was changed after the log signed it ({as_read})",
        )

    def explain(self, error: VerificationError) -> Failure:
        """``error`` (raised by this audit) with what held before it and the entry it
        names, described from the leaf this auditor last read and the points state."""
        expected = self._expected
        passed: tuple[str, ...] = ("checkpoint",) if expected is not None else ()
        checked = Checked(
            tree_size=expected.size if expected is not None else None,
            root=expected.root if expected is not None else None,
            start=self._start,
            entries=self._validator.size - self._start,
            signatures=self._validator.signatures_checked,
            passed=passed,
        )
        entry = None
        if error.seq is not None:
            recent = self._recent
            reading = recent[1] if recent is not None and recent[0] == error.seq else None
            state = self._state if self._full else None
            # A "size" failure without a leaf names an entry that is missing, not unreadable.
            if reading is not None or error.check != "size":
                entry = describe_entry(error.seq, reading, state)
        return Failure(error, checked, entry)

    # -- internals ---------------------------------------------------------

    def _fail(self, seq: int | None, check: str, message: str) -> VerificationError:
        self._failure = VerificationError(check, message, seq=seq)
        return self._failure

    def _diverged(self, head: TrustedHead) -> str:
        return (
            f"the entries do not reproduce the root of the checkpoint of {head.size} entries "
            f"held in {head.source}: the log's history was rewritten after it was verified"
        )

    def _record_statement(self, seq: int, reading: Reading, effect: points.Effect) -> None:
        config = self._state.config()
        if config is None or effect.account is None or reading.leaf is None:
            return
        balance = self._state.balance(effect.account)
        self._statement.append(
            StatementLine(
                seq=seq,
                time=reading.leaf.time,
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

    def _result(self, checkpoint: SignedCheckpoint) -> AuditResult:
        state = self._state
        config = state.config() if self._full else None
        accounts: Mapping[str, AccountSummary] = {}
        if config is not None:
            accounts = AccountSummaries(state.balances.snapshot(), config)
        statement = None
        if self._account is not None and self._full:
            statement = tuple(self._statement)
        return AuditResult(
            checkpoint=checkpoint,
            start=self._start,
            balances_recomputed=self._full,
            first_prev_checked=self._first_prev_checked,
            signatures_checked=self._validator.signatures_checked,
            staff_keys=len(state.keys) if self._full else 0,
            rules=len(state.rules) if self._full else 0,
            config=config,
            accounts=accounts,
            statement=statement,
            trusted_heads=self._trusted,
        )


__all__ = ["Auditor", "Observer"]
