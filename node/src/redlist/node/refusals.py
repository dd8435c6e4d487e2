"""How the node answers a refusal: one gRPC status per error, in exactly one place.

:func:`refusal_of` maps every error a call can end with to a :class:`Refusal`: a status
code, the fields of the refusal (check, message in words, envelope index, a limit's
value) and their trailing metadata (the keys of :mod:`redlist.proto.contract`, which
every client reads them with). :func:`bounded_message` cuts a status message to
:data:`MAX_STATUS_MESSAGE_BYTES`, since it may quote the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from redlist.ledger.errors import (
    CONFLICT_CHECK,
    FORMAT_CHECK,
    TEXT_CHECK,
    BatchError,
    CommitFailedError,
    IntegrityError,
    PageTokenError,
    RedlistError,
    StateDamageError,
    StoreError,
    TextError,
)
from redlist.proto.contract import RefusalDetails

#: Checks about who signed: the signers may not make this entry.
PERMISSION_CHECKS = frozenset(
    {"signer-unknown", "signer-revoked", "signature", "signer-role", "quorum"}
)

#: A status message carries at most this many UTF-8 bytes. Messages quote what the
#: caller sent (an account id, a map key, a log name), and a status travels in
#: HTTP/2 trailers, which clients refuse past 8-16 KiB: a longer message would
#: reach the caller as RESOURCE_EXHAUSTED ("metadata size exceeds limit"), with
#: the node's words and the index and check metadata lost.
MAX_STATUS_MESSAGE_BYTES = 1024


@dataclass(frozen=True)
class Refusal:
    """A gRPC status for an error: its code, then the fields of every refusal in their
    order (``CheckError``): check, plain-words message, where (batch ``index``); and
    for a limit, its value.

    The status message is the message in words, with the index and check around it
    as ``CheckError.diagnostics`` puts them; the trailing metadata repeats the
    fields for programs (``redlist.proto.contract``).
    """

    code: grpc.StatusCode
    check: str | None
    message: str
    index: int | None = None
    limit: int | None = None

    @classmethod
    def of_batch(cls, error: BatchError) -> Refusal:
        """The status of a refused envelope: its code follows from the broken check."""
        if error.check in (FORMAT_CHECK, TEXT_CHECK):
            code = grpc.StatusCode.INVALID_ARGUMENT
        elif error.check in PERMISSION_CHECKS:
            code = grpc.StatusCode.PERMISSION_DENIED
        elif error.check == CONFLICT_CHECK:
            code = grpc.StatusCode.ALREADY_EXISTS
        elif error.check == "internal":
            code = grpc.StatusCode.INTERNAL
        else:
            code = grpc.StatusCode.FAILED_PRECONDITION
        return cls(code, error.check, error.message, index=error.index)

    def status_message(self) -> str:
        where = f"envelope {self.index}: " if self.index is not None else ""
        suffix = f" [{self.check}]" if self.check is not None else ""
        return f"{where}{self.message}{suffix}"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return RefusalDetails(self.check, self.index, self.limit).to_metadata()


def refusal_of(error: BaseException) -> Refusal:
    """The status a Submit error is answered with (DESIGN 4; see the proto's Submit), and
    a read's (a page token that continues no read of the account is INVALID_ARGUMENT)."""
    if isinstance(error, BatchError):
        return Refusal.of_batch(error)
    if isinstance(error, PageTokenError):
        return Refusal(grpc.StatusCode.INVALID_ARGUMENT, None, str(error))
    if isinstance(error, TextError):  # the request's texts as a whole (their count)
        return Refusal(grpc.StatusCode.INVALID_ARGUMENT, error.check, error.message, error.index)
    if isinstance(error, StateDamageError):
        return Refusal(
            grpc.StatusCode.DATA_LOSS,
            None,
            f"the node has stopped taking entries, nothing was stored: {error.diagnostics()}",
        )
    if isinstance(error, CommitFailedError):
        return Refusal(
            grpc.StatusCode.UNAVAILABLE,
            None,
            f"the node has stopped taking entries: {error.diagnostics()}",
        )
    if isinstance(error, IntegrityError):
        return Refusal(
            grpc.StatusCode.INTERNAL,
            None,
            f"the node's stored log failed its own checks, nothing was stored: "
            f"{error.diagnostics()}",
        )
    if isinstance(error, StoreError):
        return Refusal(
            grpc.StatusCode.UNAVAILABLE,
            None,
            f"the node cannot store entries now: {error.diagnostics()}",
        )
    if isinstance(error, RedlistError):
        return Refusal(grpc.StatusCode.INTERNAL, None, error.diagnostics())
    return Refusal(grpc.StatusCode.INTERNAL, None, "internal error in the node; nothing was stored")


def bounded_message(message: str, limit: int = MAX_STATUS_MESSAGE_BYTES) -> str:
    """``message`` in at most ``limit`` UTF-8 bytes: a long middle becomes an ellipsis.

    The start (which envelope, what was wrong) and the end (the ``[check]``) are kept.
    """
    encoded = message.encode("utf-8")
    if len(encoded) <= limit:
        return message
    marker = " \u2026 (shortened) \u2026 "
    tail = min(96, limit // 4)
    head = limit - tail - len(marker.encode("utf-8"))
    # "ignore" drops a character cut in half at either edge.
    return (
        encoded[:head].decode("utf-8", "ignore")
        + marker
        + encoded[-tail:].decode("utf-8", "ignore")
    )
