"""Every error the ledger core raises, one root per failure domain.

Messages are written for the people who read them: a town clerk whose award was
refused, an auditor whose bundle failed. Each names what was wrong and, where it
applies, which entry (``seq`` or batch ``index``) and which rule (``check``).
"""

from __future__ import annotations


class RedlistError(Exception):
    """Root of every error redlist raises on purpose."""

    def diagnostics(self) -> str:
        """A human explanation, suitable for printing as-is."""
        return str(self)


class FormatError(RedlistError):
    """Bytes that are not a valid format v1 object (body, envelope, leaf, bundle file)."""


class ProofError(RedlistError):
    """A Merkle inclusion or consistency proof that does not verify, or bad proof inputs."""


class NoteError(RedlistError):
    """A signed note, checkpoint or verifier key that is malformed or does not verify."""


class KeyFileError(RedlistError):
    """A key file or key string that cannot be used."""


class RuleViolation(RedlistError):
    """An entry that breaks a rule of the points semantics (DESIGN 3.4).

    ``check`` is a short stable identifier of the broken rule (for example
    ``"signer-role"``), ``seq`` the entry's position in the log when known.
    """

    def __init__(self, check: str, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.check = check
        self.message = message
        self.seq = seq

    def at(self, seq: int) -> RuleViolation:
        """The same violation, located at ``seq``."""
        return RuleViolation(self.check, self.message, seq)

    def diagnostics(self) -> str:
        where = f"entry {self.seq}: " if self.seq is not None else ""
        return f"{where}{self.message} [{self.check}]"


class StoreError(RedlistError):
    """The store cannot do what was asked (missing, full, unreadable, or locked)."""


class ConflictError(StoreError):
    """An entry id that is already in the log with different bytes."""


class IntegrityError(StoreError):
    """The stored log fails its own consistency checks (chain, tree, checkpoint)."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class BatchError(RedlistError):
    """One envelope of a submitted batch was refused; nothing of the batch was written.

    ``index`` is the envelope's position in the batch (0-based), ``cause`` the
    FormatError, RuleViolation or ConflictError that refused it.
    """

    def __init__(self, index: int, cause: RedlistError) -> None:
        super().__init__(f"envelope {index}: {cause.diagnostics()}")
        self.index = index
        self.cause = cause


class VerificationError(RedlistError):
    """An audit found a defect in the data it was given (the verifier's exit code 1).

    ``check`` names what failed (a ``points.CHECKS`` identifier for the points
    rules, or one of the verifier's own: ``"chain"``, ``"root"``, ``"checkpoint"``,
    ...), ``seq`` the first bad entry, or ``None`` when the defect is not in one
    entry (the checkpoint, the manifest, the tree as a whole).
    """

    def __init__(self, seq: int | None, check: str, message: str) -> None:
        super().__init__(message)
        self.seq = seq
        self.check = check
        self.message = message

    def diagnostics(self) -> str:
        where = f"entry {self.seq}: " if self.seq is not None else ""
        return f"{where}{self.message} [{self.check}]"


class SourceError(RedlistError):
    """What an audit needs cannot be read: a missing bundle file or directory, an
    unreadable state file, a node that does not answer (the verifier's exit code 2)."""


class NodeError(RedlistError):
    """A node answered a request with an error status (it refused, or it failed).

    ``code`` is the gRPC status code name (``"FAILED_PRECONDITION"``), ``message``
    the node's own explanation. When the node refused one entry of a batch it says
    which and why in trailing metadata: ``index`` (``redlist-index``, 0-based) and
    ``check`` (``redlist-check``, a ``points.CHECKS`` identifier). ``action`` is what
    was refused in the caller's words ("the award", "row 7 of awards.csv").

    A node that cannot be reached at all is a ``SourceError``, not this.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        check: str | None = None,
        index: int | None = None,
        action: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.check = check
        self.index = index
        self.action = action

    def about(self, action: str) -> NodeError:
        """The same error, saying what was refused (``action``)."""
        return NodeError(self.code, self.message, check=self.check, index=self.index, action=action)

    def diagnostics(self) -> str:
        subject = self.action or "the request"
        if self.code in ("INTERNAL", "UNKNOWN", "DATA_LOSS"):
            verb = f"the node failed while handling {subject}"
        else:
            verb = f"the node refused {subject}"
        status = self.code if self.check is None else f"{self.code}, check {self.check}"
        return f"{verb}: {self.message} [{status}]"
