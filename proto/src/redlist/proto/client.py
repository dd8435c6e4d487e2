"""The read-only client of a town node's ``Ledger`` service: the auditor's, and the base
of the staff tools' client.

:class:`NodeConnection` is what every client of a node shares: it checks the
address, opens a synchronous gRPC channel (plaintext, or TLS with
:class:`RemoteTLS`) over the generated stubs, reads the checkpoint, the node's
limits and an account's figures (page by page, ``account_pages``: every page of one
read at the first page's checkpoint, which the client checks), and reads every
failed call the same way: one
that reached no usable node is a ``NodeUnreachableError``, an answer with an error
status a ``NodeError`` (``redlist.proto.errors``: code, check, index and limit from
the status and its trailing metadata). What such an answer means is left to each
client (``_error``): to the auditor it means the check could not be made, to the
staff tools that the node refused.

``NodeClient`` is the auditor's client. It asks only what an auditor needs: the
checkpoint, leaves, inclusion and consistency proofs, and account figures. It
never submits. It turns wire messages into plain values and checks nothing a node
says beyond their shape: every answer is verified by the caller against the log
key and its own computations.

Errors. Any gRPC failure, whether the node cannot be reached, does not answer in
time, or answers a call with an error status, is a ``SourceError`` (the verifier
exits 2: the check could not be made): a ``NodeUnreachableError``, or a
``SourceError`` quoting the node's refusal. A node that refuses to show data it
signed for proves nothing wrong by itself, so it is not reported as a defect. A
stream of leaves that skips or repeats a seq is a ``WireError`` (a
``FormatError``); the caller reports it at the seq that was due.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc

from redlist.ledger.crypto import SigningKey
from redlist.ledger.errors import KeyFileError, RedlistError, SourceError
from redlist.ledger.i18n import N_, _
from redlist.ledger.textcommit import EntryText
from redlist.proto.contract import Limits, RefusalDetails, read_message
from redlist.proto.errors import NodeError, NodeUnreachableError, WireError, peer_words
from redlist.v1 import ledger_pb2, ledger_pb2_grpc

#: How long one call may take (for leaves: one window of them) before the node
#: counts as not answering.
DEFAULT_TIMEOUT_S = 60.0
#: Leaves asked for per GetLeaves call: each window has its own deadline, so a long
#: log is streamed as many bounded calls rather than one call without a deadline.
LEAF_WINDOW = 4096
#: Largest answer read; the node's own request limit is what bounds what is sent.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Entries asked for per GetAccount page by ``get_account``, which keeps them all
#: anyway: the node serves fewer when its maximum or its byte bound per page is lower.
MAX_PAGE_SIZE = 1000

_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})")

# Status codes that mean "no usable node at this address", as opposed to an answer.
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

# A plaintext client meets a TLS node (or the reverse) as a closed connection.
_TLS_HINT = N_(
    "; if the node serves TLS, give --tls-ca (and --tls-cert and --tls-key if it "
    "requires client certificates)"
)
_TLS_CHECKS = N_(
    "; over TLS also check that --tls-ca holds the CA of the node's certificate, that "
    "the certificate names this host, and, if the node requires client certificates, "
    "--tls-cert and --tls-key"
)


def check_address(address: str) -> str:
    """``address`` if it has the form ``HOST:PORT`` (``[v6]:PORT`` for IPv6)."""
    match = _ADDRESS.fullmatch(address)
    if match is None or not 0 < int(match["port"]) <= 65535:
        raise NodeUnreachableError(
            _("the node address {address!r} is not HOST:PORT (for example 127.0.0.1:7420)").format(
                address=address
            )
        )
    return address


@dataclass(frozen=True)
class RemoteTLS:
    """PEM files for reaching a node over TLS: the CA to trust, this client's cert and key.

    ``ca`` None trusts the CAs gRPC trusts by default; ``cert`` and ``key`` go
    together and are needed only by a node that requires client certificates.
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """The credentials for a gRPC channel; ``KeyFileError`` names a missing file."""
        if (self.cert is None) != (self.key is None):
            raise KeyFileError(
                _("a client certificate needs its key: give --tls-cert and --tls-key together")
            )
        return grpc.ssl_channel_credentials(
            root_certificates=_read_pem(self.ca, "--tls-ca"),
            private_key=_read_pem(self.key, "--tls-key"),
            certificate_chain=_read_pem(self.cert, "--tls-cert"),
        )


@dataclass(frozen=True)
class RemoteProof:
    """A Merkle audit path as the node sent it, and the tree size it says it is for."""

    hashes: tuple[bytes, ...]
    tree_size: int


@dataclass(frozen=True)
class RemoteEntry:
    """One award or redemption of an account, as the node lists it.

    ``points``: for an award, the rule's points times ``qty`` (negative for a
    deduction); for a redemption, the points spent (positive). ``rule`` and
    ``qty`` are empty and 0 for a redemption, ``item`` is empty for an award.
    ``time`` is the node's integration time, ``at`` the author's; both in ms since
    1970 UTC. ``reversed_by`` is the seq of the reversal, if any. ``has_text``: the
    entry commits to a note or an item, so an empty ``note`` or ``item`` is withheld
    (``RemoteAccount.texts_withheld``) or erased, not absent.
    """

    seq: int
    time: int
    at: int
    kind: str
    rule: str
    qty: int
    note: str
    item: str
    points: int
    reversed_by: int | None
    has_text: bool = False
    #: An award's deed date (``YYYY-MM-DD``), empty for a redemption.
    date: str = ""
    #: An award the resident declared (本人申报), reviewed by the council.
    declared: bool = False

    @property
    def reversed(self) -> bool:
        return self.reversed_by is not None


@dataclass(frozen=True)
class RemoteRecognition:
    """A grade of another town the node recognised for an account (DESIGN 8.6): its
    ``grade`` there for ``foreign_account`` in log ``origin``, counted as ``equivalent``
    here, from an attestation by ``auditor`` (a verifier key string) at ``tree_size``
    of that log; ``expires`` and ``recognised_at`` in POSIX seconds; ``expired`` by the
    node's clock. The node's word: its own record, not part of the log."""

    origin: str
    foreign_account: str
    grade: str
    equivalent: str
    score: int
    auditor: str
    tree_size: int
    expires: int
    recognised_at: int
    expired: bool


@dataclass(frozen=True)
class RemoteAccount:
    """An account's figures (DESIGN 3.4) and entries as the node states them, at the
    node's ``checkpoint``: all of them (``get_account``), or one page's
    (``account_pages``)."""

    account: str
    score: int
    spendable: int
    redeemed: int
    earned: int
    grade: str
    entries: tuple[RemoteEntry, ...]
    checkpoint: str
    #: Other towns' grades recognised here; the node lists them on the first page only.
    recognised: tuple[RemoteRecognition, ...] = ()
    #: The node sent no free texts: the reader is anonymous, or the node keeps none.
    texts_withheld: bool = True

    def figures(self) -> tuple[str, int, int, int, int, str, str]:
        """Everything but the entries: what every page of one read repeats."""
        return (
            self.account,
            self.score,
            self.spendable,
            self.redeemed,
            self.earned,
            self.grade,
            self.checkpoint,
        )


class NodeConnection(ABC):
    """A synchronous connection to the ``Ledger`` service of the node at ``address``.

    Plaintext unless ``tls`` is given. Use as a context manager, or call ``close``.
    Subclasses add their calls and say, in ``_error``, what a failed call means.
    """

    def __init__(self, address: str, *, tls: RemoteTLS | None, timeout: float) -> None:
        self.address = check_address(str(address))
        self.tls = tls
        self.timeout = timeout
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        if tls is None:
            self._channel = grpc.insecure_channel(self.address, options=options)
        else:
            credentials = tls.channel_credentials()
            self._channel = grpc.secure_channel(self.address, credentials, options=options)
        self._stub = ledger_pb2_grpc.LedgerStub(self._channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def get_checkpoint(self) -> str:
        """The node's latest checkpoint (signed note text), unverified."""
        try:
            response = self._stub.GetCheckpoint(
                ledger_pb2.GetCheckpointRequest(), timeout=self.timeout
            )
        except grpc.RpcError as error:
            raise self._error(error, "GetCheckpoint") from None
        return response.checkpoint

    def get_limits(self) -> Limits:
        """What the node accepts in one Submit: envelopes, bytes per envelope and per request."""
        try:
            message = self._stub.GetLimits(ledger_pb2.GetLimitsRequest(), timeout=self.timeout)
        except grpc.RpcError as error:
            raise self._error(error, "GetLimits") from None
        return Limits.from_message(message)

    def account_pages(
        self, account: str, *, page_size: int = 0, read_key: SigningKey | None = None
    ) -> Generator[RemoteAccount, None, None]:
        """The node's figures and entries for ``account``, one page at a time.

        Each page repeats the figures and the checkpoint they are at, with that page's
        entries (``page_size`` at most; 0 leaves the number to the node). A page whose
        figures or checkpoint differ from the first page's, entries that do not follow
        each other in increasing seq order, or a page that promises more but lists
        nothing are a ``WireError``: the pages do not describe one state. Only one
        page is held at a time.

        With ``read_key`` (a staff key registered in the log), each request is signed
        (``contract.read_message``), so the node sends the free texts too.
        """
        first: RemoteAccount | None = None
        last_seq = -1
        token = b""
        number = 0
        while True:
            number += 1
            request = ledger_pb2.GetAccountRequest(
                account=account, page_size=page_size, page_token=token
            )
            if read_key is not None:
                request.read_signature.CopyFrom(read_signature(read_key, "GetAccount", account))
            try:
                message = self._stub.GetAccount(request, timeout=self.timeout)
            except grpc.RpcError as error:
                raise self._error(error, f"GetAccount for {account}") from None
            page = RemoteAccount(
                # A node may leave the name out: the figures are then for the one asked for.
                account=message.account or account,
                score=message.score,
                spendable=message.spendable,
                redeemed=message.redeemed,
                earned=message.earned,
                grade=message.grade,
                entries=_entries(message.entries),
                checkpoint=message.checkpoint,
                recognised=tuple(
                    RemoteRecognition(
                        origin=item.origin,
                        foreign_account=item.foreign_account,
                        grade=item.grade,
                        equivalent=item.equivalent,
                        score=item.score,
                        auditor=item.auditor,
                        tree_size=item.tree_size,
                        expires=item.expires,
                        recognised_at=item.recognised_at,
                        expired=item.expired,
                    )
                    for item in message.recognised
                ),
                texts_withheld=message.texts_withheld,
            )
            if first is None:
                first = page
            elif page.figures() != first.figures():
                raise WireError(
                    _(
                        "the node's pages of account {account} disagree: page {number} states "
                        "other figures or another checkpoint than page 1"
                    ).format(account=account, number=number)
                )
            for entry in page.entries:
                if entry.seq <= last_seq:
                    raise WireError(
                        _(
                            "the node's pages of account {account} list entry {seq} after entry "
                            "{last_seq}: entries are repeated or out of order"
                        ).format(account=account, seq=entry.seq, last_seq=last_seq)
                    )
                last_seq = entry.seq
            token = message.next_page_token
            if token and not page.entries:
                raise WireError(
                    _(
                        "the node's page {number} of account {account} lists no entry but promises "
                        "more"
                    ).format(number=number, account=account)
                )
            yield page
            if not token:
                return

    def get_account(self, account: str) -> RemoteAccount:
        """The node's figures and every entry for ``account``, with the checkpoint they
        are at: all pages of ``account_pages`` in one value (held in memory at once; a
        reader of a long account reads page by page instead)."""
        pages = self.account_pages(account, page_size=MAX_PAGE_SIZE)
        first = next(pages)
        entries = list(first.entries)
        for page in pages:
            entries.extend(page.entries)
        return replace(first, entries=tuple(entries))

    # -- errors --------------------------------------------------------------

    @abstractmethod
    def _error(self, error: grpc.RpcError, call: str) -> RedlistError:
        """The error to raise for ``call`` (its method name first: "GetAccount for A")."""

    def _unreachable(
        self, error: grpc.RpcError, call: str, *, consequence: str = ""
    ) -> NodeUnreachableError | None:
        """The error for a ``call`` that found no usable node; None if the node answered.

        ``consequence`` is added to the message when the connection failed or the
        node did not answer in time (what that leaves undecided).
        """
        code = error.code()
        details = peer_words(error.details() or "")
        if code in _UNREACHABLE and not _said_by_node(error):
            hint = ""
            if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                problem = _("it did not answer in time")
            else:
                problem = _("is it running, and is the address right?")
                hint = _(_TLS_HINT) if self.tls is None else _(_TLS_CHECKS)
            # The transport's own words help an operator (refused, DNS, TLS ...).
            said = f" ({details})" if details else ""
            return NodeUnreachableError(
                _(
                    "cannot reach the node at {address}: {problem}{said}{hint} "
                    "[{name}]{consequence}"
                ).format(
                    address=self.address,
                    problem=problem,
                    said=said,
                    hint=hint,
                    name=code.name,
                    consequence=consequence,
                )
            )
        if code is grpc.StatusCode.UNIMPLEMENTED:
            return NodeUnreachableError(
                _(
                    "cannot reach the node at {address}: the server there does not offer redlist's "
                    "{split} call; is it a redlist node? [{name}]"
                ).format(address=self.address, split=call.split()[0], name=code.name)
            )
        return None

    @staticmethod
    def _refusal(error: grpc.RpcError, action: str | None = None) -> NodeError:
        """The node's answer with an error status, read as every client reads it."""
        return NodeError.from_status(
            error.code().name,
            error.details() or "",
            ((item.key, item.value) for item in error.trailing_metadata() or ()),
            action=action,
        )


class NodeClient(NodeConnection):
    """The auditor's read-only client of the node at ``address`` (``HOST:PORT``).

    Plaintext unless ``tls`` is given. Use as a context manager, or call ``close``.
    ``leaves_fetched`` counts the leaves received so far.
    """

    def __init__(
        self,
        address: str,
        *,
        tls: RemoteTLS | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        leaf_window: int = LEAF_WINDOW,
    ) -> None:
        super().__init__(address, tls=tls, timeout=timeout)
        self.leaf_window = max(1, leaf_window)
        self.leaves_fetched = 0

    def describe(self) -> str:
        return f"node {self.address}"

    # -- the calls -----------------------------------------------------------

    def get_leaves(self, start: int, end: int) -> Iterator[bytes]:
        """Each leaf's exact bytes for ``start <= seq < end``, in order.

        Asked for in windows of ``leaf_window`` leaves. A leaf sent under another
        seq than the one due is a ``FormatError``; a stream that ends early simply
        stops (the audit then finds entries missing).
        """
        expected = start
        while expected < end:
            window_end = min(end, expected + self.leaf_window)
            request = ledger_pb2.GetLeavesRequest(start=expected, end=window_end)
            before = expected
            call = self._stub.GetLeaves(request, timeout=self.timeout)
            try:
                for message in call:
                    if message.seq != expected:
                        raise WireError(
                            _(
                                "the node sent entry {seq} where entry {expected} was due: entries "
                                "are missing, repeated or out of order"
                            ).format(seq=message.seq, expected=expected)
                        )
                    self.leaves_fetched += 1
                    expected += 1
                    yield message.leaf
            except grpc.RpcError as error:
                raise self._error(error, f"GetLeaves [{before}, {window_end})") from None
            finally:
                call.cancel()  # a no-op once the stream is complete; frees it when abandoned
            if expected < window_end:
                return  # the node ended the stream early; the audit names what is missing

    def get_inclusion_proof(self, seq: int, tree_size: int) -> RemoteProof:
        """The node's inclusion proof of entry ``seq`` in the tree of ``tree_size``."""
        request = ledger_pb2.InclusionProofRequest(seq=seq, tree_size=tree_size)
        try:
            proof = self._stub.GetInclusionProof(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise self._error(error, f"GetInclusionProof for entry {seq}") from None
        return RemoteProof(tuple(proof.hashes), proof.tree_size)

    def get_consistency_proof(self, first: int, second: int) -> RemoteProof:
        """The node's consistency proof from tree size ``first`` to ``second``."""
        request = ledger_pb2.ConsistencyProofRequest(first=first, second=second)
        try:
            proof = self._stub.GetConsistencyProof(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise self._error(error, f"GetConsistencyProof from {first} to {second}") from None
        return RemoteProof(tuple(proof.hashes), proof.tree_size)

    # -- errors --------------------------------------------------------------

    def _error(self, error: grpc.RpcError, call: str) -> SourceError:
        unreachable = self._unreachable(error, call)
        if unreachable is not None:
            return unreachable
        refusal = self._refusal(error)
        said = f" ({peer_words(refusal.message)})" if error.details() else ""
        status = (
            refusal.code
            if refusal.check is None
            else _("{code}, check {check}").format(code=refusal.code, check=refusal.check)
        )
        return SourceError(
            _(
                "cannot verify the node at {address}: it answered {call} with an error{said} "
                "[{status}]"
            ).format(address=self.address, call=call, said=said, status=status)
        )


def _entries(messages: Sequence[ledger_pb2.AccountEntry]) -> tuple[RemoteEntry, ...]:
    return tuple(
        RemoteEntry(
            seq=entry.seq,
            time=entry.time,
            at=entry.at,
            kind=entry.kind,
            rule=entry.rule,
            qty=entry.qty,
            note=entry.note,
            item=entry.item,
            points=entry.points,
            # The wire has no "absent": reversed_by is only meaningful with reversed.
            reversed_by=entry.reversed_by if entry.reversed else None,
            has_text=entry.has_text,
            date=entry.date,
            declared=entry.declared,
        )
        for entry in messages
    )


def read_signature(key: SigningKey, method: str, subject: str) -> ledger_pb2.ReadSignature:
    """``key``'s signature over a read of ``subject`` by ``method``, timed now."""
    now = int(time.time())
    signature = key.sign(read_message(method, subject, now))
    return ledger_pb2.ReadSignature(key_id=key.key_id, time=now, signature=signature)


def texts_message(texts: Mapping[str, EntryText]) -> ledger_pb2.EntryTexts:
    """The wire form of one entry's free texts (``SubmitRequest.texts``)."""
    return ledger_pb2.EntryTexts(
        fields={
            name: ledger_pb2.Text(text=value.text, salt=value.salt) for name, value in texts.items()
        }
    )


def _read_pem(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(
            _("the file {path} given with {flag} does not exist").format(path=path, flag=flag)
        ) from None
    except OSError as error:
        raise KeyFileError(
            _("cannot read the file {path} given with {flag}: {value}").format(
                path=path, flag=flag, value=error.strerror or error
            )
        ) from None


def _said_by_node(error: grpc.RpcError) -> bool:
    """Whether the node itself answered with this status (its refusal details), as a
    mirror still catching up does with UNAVAILABLE."""
    metadata = ((item.key, item.value) for item in error.trailing_metadata() or ())
    return RefusalDetails.from_metadata(metadata).check is not None


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "LEAF_WINDOW",
    "MAX_MESSAGE_BYTES",
    "MAX_PAGE_SIZE",
    "NodeClient",
    "NodeConnection",
    "RemoteAccount",
    "RemoteEntry",
    "RemoteProof",
    "RemoteRecognition",
    "RemoteTLS",
    "check_address",
    "read_signature",
    "texts_message",
]
