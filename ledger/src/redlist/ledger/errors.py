"""Every error the ledger core raises, one root per failure domain.

Messages are written for the people who read them: a town clerk whose award was
refused, an auditor whose bundle failed. Each names what was wrong and, where it
applies, which entry (``seq`` or batch ``index``) and which rule (``check``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # wording builds on this module
    from redlist.ledger.wording import Words

#: The check of an envelope that is not well-formed format v1 (``points.CHECKS``).
FORMAT_CHECK = "format"
#: The check of an entry id already in the log with other bytes (``points.CHECKS``).
CONFLICT_CHECK = "duplicate-id"
#: The check of a free text that does not match its commitment, or is missing or malformed.
TEXT_CHECK = "text"


class RedlistError(Exception):
    """Root of every error redlist raises on purpose.

    ``words``: the message worded for translation, where the core gave it words
    (``wording``; shown with ``i18n.in_words``), else None.
    """

    words: Words | None = None

    def diagnostics(self) -> str:
        """A human explanation, suitable for printing as-is."""
        return str(self)


class FormatError(RedlistError):
    """Bytes that are not a valid format v1 object (body, envelope, leaf, bundle file)."""


class PageTokenError(RedlistError):
    """A page token that does not continue a read of this account: malformed, issued
    for another account, or naming a tree size or an entry the log does not have."""


class ProofError(RedlistError):
    """A Merkle inclusion or consistency proof that does not verify, or bad proof inputs."""


class NoteError(RedlistError):
    """A signed note, checkpoint or verifier key that is malformed or does not verify."""


class PolicyError(RedlistError):
    """A witness policy (c2sp.org/tlog-policy) that cannot be used: malformed, or not
    for this log. ``line`` is the policy file's line (1-based) at fault, or None for a
    policy built in code; the message already names it."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class KeyFileError(RedlistError):
    """A key file or key string that cannot be used."""


class CheckError(RedlistError):
    """An entry, a request or a log that fails a named check: the shape every refusal shares.

    Every such error carries the same fields, in the same order: ``check``, a short
    stable identifier of the broken rule (``points.CHECKS``, the verifier's own such
    as ``"chain"`` or ``"root"``, or the wire's such as ``"max-batch"``; None only
    when a node refused without naming one); ``message``, plain words without the
    location or the check; then where it applies, by keyword: ``seq``, the entry's
    position in the log, and ``index``, the envelope's position in a submitted batch.
    Either is None when unknown or not applicable.

    ``diagnostics()`` reads "envelope 3: <message> [check]" (or "entry 17: ...").
    """

    def __init__(
        self,
        check: str | None,
        message: str,
        *,
        seq: int | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.check = check
        self.message = message
        self.seq = seq
        self.index = index

    def where(self) -> str:
        """ "envelope 3: ", "entry 17: " or "": the location, as a message prefix."""
        if self.index is not None:
            return f"envelope {self.index}: "
        if self.seq is not None:
            return f"entry {self.seq}: "
        return ""

    def diagnostics(self) -> str:
        suffix = f" [{self.check}]" if self.check is not None else ""
        return f"{self.where()}{self.message}{suffix}"


class RuleViolation(CheckError):
    """An entry that breaks a rule of the points semantics (DESIGN 3.4).

    ``check`` is a ``points.CHECKS`` identifier (for example ``"signer-role"``),
    ``seq`` the entry's position in the log when known.
    """

    check: str

    def __init__(self, check: str, message: str, *, seq: int | None = None) -> None:
        super().__init__(check, message, seq=seq)

    def at(self, seq: int) -> RuleViolation:
        """The same violation, located at ``seq``."""
        return RuleViolation(self.check, self.message, seq=seq)


class MirrorRefusal(CheckError):
    """What a mirror refuses from the log it copies: a leaf that fails a check of the
    validator (its ``check`` and ``seq``), or a checkpoint that is not signed by the
    log (``checkpoint``), does not match the leaves sent (``root``), is smaller than
    what the mirror holds (``rollback``) or contradicts it (``split-view``). Nothing
    of what was refused is stored."""

    check: str

    def __init__(self, check: str, message: str, *, seq: int | None = None) -> None:
        super().__init__(check, message, seq=seq)


class StoreError(RedlistError):
    """The store cannot do what was asked (missing, full, unreadable, or locked)."""


class ConflictError(StoreError):
    """An entry id that is already in the log with different bytes."""


class IntegrityError(StoreError):
    """The stored log fails its own consistency checks (chain, tree, checkpoint)."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class StateDamageError(IntegrityError):
    """A state record (a balance, a staff key, a rule, an index entry...) that does not
    match its checksum: the store was damaged under the node (a disk error, an edit
    outside redlist).

    ``table`` names the table, ``record`` the record in words ("account dgc-0001").
    A store that meets one takes no more writes until it is repaired, so the node
    never signs an entry decided on a state it cannot trust; reads of the log itself
    (checkpoints, leaves, proofs) go on.
    """

    def __init__(
        self, table: str, record: str, problem: str = "does not match its checksum"
    ) -> None:
        super().__init__(
            f"the stored state is damaged: the {table} record of {record} {problem}. "
            "The ledger takes no more writes; reads of the log still work. Run "
            "`redlist-node check --full` for a report, and restore the data directory from a "
            "backup or a mirror"
        )
        self.table = table
        self.record = record


class TextError(CheckError):
    """A free text that cannot go with its entry (DESIGN 9.2): malformed, missing beside
    a commitment, given for a field the entry does not commit to, or not matching its
    commitment. ``field`` names the body's field when known. Check ``text``."""

    check: str

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        seq: int | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(TEXT_CHECK, message, seq=seq, index=index)
        self.field = field


class RegisterError(RedlistError):
    """The resident register refuses what was asked (DESIGN 9.1): an account it does not
    hold, one it already holds, or one whose personal data was erased. Nothing changed."""


class PublicityError(RedlistError):
    """A month's publicity cannot be written or read (DESIGN 9.3): a month that is not
    over or lies before the log, a boundary checkpoint this copy of the log lacks, or a
    damaged record of a publication."""


class CommitFailedError(StoreError):
    """The disk failed while a write transaction was being committed: a write or an
    fsync of the ledger's file returned an error (EIO, ENOSPC...).

    Whether the transaction reached the disk is unknown, and after a failed fsync the
    kernel may have dropped the unwritten pages, so that a second fsync succeeds on
    nothing (PostgreSQL's "fsyncgate"). So nothing is retried: the store takes no more
    writes for as long as it is open, and only a restart, whose open re-checks the
    log's tail, decides what was stored. ``in_doubt`` is true for the commit that
    failed (its batch may be stored) and false for every write refused afterwards
    (nothing of those was stored). ``reason`` is LMDB's own words.
    """

    def __init__(self, reason: str, *, in_doubt: bool) -> None:
        if in_doubt:
            outcome = (
                "whether this write reached the disk is unknown: send it again once the "
                "node has been restarted (a stored entry gets its seq back)"
            )
        else:
            outcome = "nothing of this write was stored"
        super().__init__(
            f"the ledger's disk failed during a commit ({reason}); the ledger takes no more "
            f"writes until it is reopened, and never retries a failed fsync. {outcome}. "
            "Reads of what was committed before go on. Check the disk, then restart: "
            "opening the ledger re-checks the end of the log"
        )
        self.reason = reason
        self.in_doubt = in_doubt


class BatchError(CheckError):
    """One envelope of a submitted batch was refused; nothing of the batch was written.

    ``cause`` is the FormatError, RuleViolation or ConflictError that refused it,
    ``index`` the envelope's position in the batch (0-based). ``check`` and
    ``message`` are the cause's: its check for a ``RuleViolation``, ``"format"`` for
    a ``FormatError``, ``"duplicate-id"`` for a ``ConflictError``. The entry was
    never appended, so there is no ``seq``.
    """

    check: str
    index: int

    def __init__(self, cause: RedlistError, *, index: int) -> None:
        if isinstance(cause, CheckError) and cause.check is not None:
            check, message = cause.check, cause.message
        elif isinstance(cause, ConflictError):
            check, message = CONFLICT_CHECK, str(cause)
        elif isinstance(cause, FormatError):
            # "envelope 3: envelope: ..." would say the same word twice.
            check, message = FORMAT_CHECK, str(cause).removeprefix("envelope: ")
        else:
            check, message = "internal", cause.diagnostics()
        super().__init__(check, message, index=index)
        self.cause = cause

    def __str__(self) -> str:
        return self.diagnostics()


class VerificationError(CheckError):
    """An audit found a defect in the data it was given (the verifier's exit code 1).

    ``check`` names what failed (a ``points.CHECKS`` identifier for the points
    rules, or one of the verifier's own: ``"chain"``, ``"root"``, ``"checkpoint"``,
    ...), ``seq`` the first bad entry, or ``None`` when the defect is not in one
    entry (the checkpoint, the manifest, the tree as a whole).
    """

    check: str

    def __init__(self, check: str, message: str, *, seq: int | None = None) -> None:
        super().__init__(check, message, seq=seq)


class SourceError(RedlistError):
    """What an audit needs cannot be read: a missing bundle file or directory, an
    unreadable state file, a node that does not answer (the verifier's exit code 2)."""


class AttestationError(CheckError):
    """An auditor's attestation (DESIGN 8.6) that cannot be relied on.

    ``check`` says which rule it breaks, one of ``attestation.CHECKS``: ``format``
    (not a well-formed attestation file), ``auditor`` (signed by no trusted auditor),
    ``signature`` (a trusted auditor's signature does not verify: altered),
    ``expired``, ``checkpoint`` (the checkpoint beside it is not the one attested),
    ``log-signature`` (that checkpoint is not signed by the log's key) or
    ``witness-policy`` (it lacks the cosignatures a policy asks for).
    """

    check: str

    def __init__(self, check: str, message: str) -> None:
        super().__init__(check, message)
