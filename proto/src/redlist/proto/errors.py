"""The errors of talking to a node: they belong to the client, not to the pure core.

Three failure domains, each a subclass of the core's error for the same outcome, so
a program that maps errors to exit codes needs to know nothing new:

* :class:`NodeUnreachableError` (a ``SourceError``): no usable node answered: a
  malformed address, a connection that failed, a call that timed out, a server that
  does not offer redlist's service;
* :class:`WireError` (a ``FormatError``): the node answered, but not in the
  protocol's shape (a leaf under the wrong seq, a seq per envelope missing);
* :class:`NodeError` (a ``CheckError``): the node answered a call with an error
  status: it refused, or it failed. Read from the status and its trailing metadata
  in one place, :meth:`NodeError.from_status`, by every client.
"""

from __future__ import annotations

from collections.abc import Iterable

from redlist.ledger.errors import CheckError, FormatError, SourceError
from redlist.ledger.i18n import N_, _
from redlist.ledger.text import shown
from redlist.proto.contract import RefusalDetails

#: The most characters kept of what another node said (an error's details) in a
#: message or a log line: enough for gRPC's "failed to connect to all addresses; last
#: error: ..." with its cause, bounded against a peer that sends pages.
PEER_WORDS_LIMIT = 300


def peer_words(text: str, limit: int = PEER_WORDS_LIMIT) -> str:
    """What another node said, for a message or a log line: stripped, control and
    other unprintable characters written as ``\\u{XXXX}`` (a peer cannot start a log
    line of its own), cut to ``limit`` characters."""
    text = shown(text.strip())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


#: Status codes that mean the node failed, rather than refused the request.
FAILURE_CODES = frozenset({"INTERNAL", "UNKNOWN", "DATA_LOSS"})
#: What the person who signed can do about a refusal of who signed, in their language:
#: the node's own reason stays English (docs/adr/0034), and these are the refusals
#: staff meet first with a new or an old key.
SIGNER_ADVICE = {
    "read-signature": N_(
        "Sign with your own staff key (--signer): one the town's admin has registered in "
        "this log and not revoked, on a computer whose clock is right."
    ),
    "signer-unknown": N_(
        "The key that signed is not registered in this town's log: the town's admin "
        "registers it with 'redlist key add'."
    ),
    "signer-revoked": N_(
        "The key that signed was revoked: ask the town's admin to register a new key for you."
    ),
}


class NodeUnreachableError(SourceError):
    """No usable node answered at the address (the verifier and ``redlist`` exit 2)."""


class WireError(FormatError):
    """A node's answer that does not have the shape the protocol promises."""


class NodeError(CheckError):
    """A node answered a request with an error status (it refused, or it failed).

    The fields of every ``CheckError``, in their order: ``check`` (the broken rule,
    a ``points.CHECKS`` identifier, or the exceeded limit, ``"max-batch"``; None when
    the node named none), ``message`` (the node's own words, without the index and
    check), ``index`` (the refused envelope's position in the batch); then what
    only a node's answer has: ``code``, the gRPC status code name
    (``"FAILED_PRECONDITION"``); ``limit``, the value of the limit exceeded;
    ``retry_after_ms``, the wait the rate limit asks for; and ``action``, what was
    refused in the caller's words ("the award", "row 7 of awards.csv").

    A node that cannot be reached at all is a :class:`NodeUnreachableError`, not this.
    """

    def __init__(
        self,
        check: str | None,
        message: str,
        *,
        index: int | None = None,
        code: str,
        limit: int | None = None,
        retry_after_ms: int | None = None,
        action: str | None = None,
    ) -> None:
        super().__init__(check, message, index=index)
        self.code = code
        self.limit = limit
        self.retry_after_ms = retry_after_ms
        self.action = action

    @classmethod
    def from_status(
        cls,
        code: str,
        details: str,
        metadata: Iterable[tuple[str, str | bytes]],
        *,
        action: str | None = None,
    ) -> NodeError:
        """The error a status answers with: ``code`` (its name), the status message
        ``details`` and the trailing ``metadata`` (``redlist.proto.contract``)."""
        found = RefusalDetails.from_metadata(metadata)
        message = found.strip(details.strip()) or _("(the node gave no reason)")
        return cls(
            found.check,
            message,
            index=found.index,
            code=code,
            limit=found.limit,
            retry_after_ms=found.retry_after_ms,
            action=action,
        )

    def about(self, action: str) -> NodeError:
        """The same error, saying what was refused (``action``)."""
        return NodeError(
            self.check,
            self.message,
            index=self.index,
            code=self.code,
            limit=self.limit,
            retry_after_ms=self.retry_after_ms,
            action=action,
        )

    @property
    def failed(self) -> bool:
        """Whether the node failed (INTERNAL, ...) rather than refused."""
        return self.code in FAILURE_CODES

    def diagnostics(self) -> str:
        subject = self.action or _("the request")
        if self.failed:
            verb = _("the node failed while handling {subject}").format(subject=subject)
        else:
            verb = _("the node refused {subject}").format(subject=subject)
        status = (
            self.code
            if self.check is None
            else _("{code}, check {check}").format(code=self.code, check=self.check)
        )
        # The node's own reason stays English (docs/adr/0034); the words around it do not.
        advice = SIGNER_ADVICE.get(self.check or "")
        if advice is not None and not self.failed:
            return _("{verb}: {message}. {advice} [{status}]").format(
                verb=verb, message=self.message, advice=_(advice), status=status
            )
        return _("{verb}: {message} [{status}]").format(
            verb=verb, message=self.message, status=status
        )


__all__ = [
    "FAILURE_CODES",
    "PEER_WORDS_LIMIT",
    "SIGNER_ADVICE",
    "NodeError",
    "NodeUnreachableError",
    "WireError",
    "peer_words",
]
