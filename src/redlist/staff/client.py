"""A blocking client of one town node's ``Ledger`` service (DESIGN 4), for the staff tools.

``LedgerClient`` is synchronous by construction: it opens a plain (non-asyncio)
gRPC channel and calls the generated ``LedgerStub`` directly; there is no async
variant to choose between at run time. Each method turns the wire messages into
the values below, so commands never touch protobuf.

Errors, in words the clerk and the operator both understand:

* the node cannot be reached, does not answer in time, or does not offer the
  Ledger service: ``SourceError`` (``redlist`` exits 2), starting with
  "cannot reach the node at ADDR";
* the node answered with an error status: ``NodeError`` carrying the status code
  name, the node's message and, when the node attached them as trailing metadata,
  the batch index (``redlist-index``) and the broken rule (``redlist-check``)
  (``redlist`` exits 1);
* what the node sent cannot be read (a checkpoint or leaf that is not format v1):
  ``FormatError`` or ``NoteError``.

Nothing the node says is verified here: this client submits entries and shows
figures. Auditing a node is ``redlist-verify``'s job.

Transport: plaintext unless TLS is asked for. :func:`add_node_argument` gives
every command ``--node`` together with ``--tls-ca``, ``--tls-cert`` and
``--tls-key``, and stores them as one :class:`NodeAddress` in ``args.node``, so
``LedgerClient(args.node)`` connects the way the user asked. Any of the three
turns TLS on: ``--tls-ca`` is the CA that signed the node's certificate (the
system's trusted CAs when absent); ``--tls-cert`` and ``--tls-key`` are this
client's own certificate and key, for a node that requires them (mutual TLS).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from redlist.ledger.entry import AnyBody, Envelope, Genesis, Leaf, decode_body
from redlist.ledger.errors import FormatError, KeyFileError, NodeError, RedlistError, SourceError
from redlist.ledger.note import Checkpoint, Note
from redlist.v1 import ledger_pb2, ledger_pb2_grpc

#: How long a read call may take before the node counts as not answering.
DEFAULT_TIMEOUT_S = 30.0
#: Submit waits for a durable commit of the whole batch, so it gets longer.
SUBMIT_TIMEOUT_S = 120.0
#: Largest answer read (a busy account's statement can be long); the node's own
#: request limit is what bounds a Submit.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

#: Trailing metadata keys a node attaches when it refuses an entry of a batch.
INDEX_METADATA = "redlist-index"
CHECK_METADATA = "redlist-check"

_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>[0-9]{1,5})")

# A plaintext client meets a TLS node (or the reverse) as a closed connection.
_TLS_HINT = (
    "; if the node serves TLS, give --tls-ca (and --tls-cert and --tls-key if it "
    "requires client certificates)"
)
_TLS_CHECKS = (
    "; over TLS also check that --tls-ca holds the CA of the node's certificate, that "
    "the certificate names this host, and, if the node requires client certificates, "
    "--tls-cert and --tls-key"
)

# Status codes that mean "no usable node at this address", as opposed to an answer.
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def check_address(address: str) -> str:
    """``address`` if it has the form ``HOST:PORT`` (``[v6]:PORT`` for IPv6)."""
    match = _ADDRESS.fullmatch(address)
    if match is None or not 0 < int(match["port"]) <= 65535:
        raise SourceError(
            f"the node address {address!r} is not HOST:PORT (for example 127.0.0.1:7420)"
        )
    return address


@dataclass(frozen=True)
class ClientTLS:
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
                "a client certificate needs its key: give --tls-cert and --tls-key together"
            )
        return grpc.ssl_channel_credentials(
            root_certificates=_read_pem(self.ca, "--tls-ca"),
            private_key=_read_pem(self.key, "--tls-key"),
            certificate_chain=_read_pem(self.cert, "--tls-cert"),
        )


class NodeAddress(str):
    """A node's ``HOST:PORT`` as typed after ``--node``, with the TLS files given beside it.

    It is the address text itself (a ``str``), so it prints and compares as one;
    ``tls`` is None for plaintext.
    """

    tls: ClientTLS | None

    def __new__(cls, address: str, tls: ClientTLS | None = None) -> NodeAddress:
        node = super().__new__(cls, address)
        node.tls = tls
        return node


class _NodeOption(argparse.Action):
    """Stores its value, then rebuilds ``args.node`` from ``--node`` and the TLS flags.

    argparse takes options in any order, so each of them recombines what is
    known so far; after parsing, ``args.node`` reflects all of them.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        address = getattr(namespace, "node", None)
        if address is None:
            return
        paths = (getattr(namespace, name, None) for name in ("tls_ca", "tls_cert", "tls_key"))
        ca, cert, key = paths
        tls = ClientTLS(ca, cert, key) if (ca or cert or key) else None
        namespace.node = NodeAddress(str(address), tls)


def add_node_argument(parser: argparse.ArgumentParser) -> None:
    """``--node HOST:PORT`` and its TLS options; ``args.node`` becomes a :class:`NodeAddress`."""
    parser.add_argument(
        "--node",
        required=True,
        action=_NodeOption,
        metavar="HOST:PORT",
        help="the town node's address, e.g. 127.0.0.1:7420",
    )
    tls = parser.add_argument_group("reaching the node over TLS (plaintext when not given)")
    tls.add_argument(
        "--tls-ca",
        dest="tls_ca",
        type=Path,
        action=_NodeOption,
        metavar="FILE",
        help="the CA certificate (PEM) that signed the node's certificate",
    )
    tls.add_argument(
        "--tls-cert",
        dest="tls_cert",
        type=Path,
        action=_NodeOption,
        metavar="FILE",
        help="this client's certificate (PEM), for a node that requires one",
    )
    tls.add_argument(
        "--tls-key",
        dest="tls_key",
        type=Path,
        action=_NodeOption,
        metavar="FILE",
        help="the private key (PEM) of --tls-cert",
    )


def read_checkpoint(text: str) -> Checkpoint:
    """The checkpoint in a signed note, *without* checking its signatures.

    Good enough to learn the log's origin and size from the node the entries
    are sent to; an auditor checks signatures with the log key (redlist-verify).
    """
    return Checkpoint.from_text(Note.parse(text).text)


@dataclass(frozen=True)
class SubmitResult:
    """The seq of every submitted envelope (in order) and the checkpoint covering them."""

    seqs: tuple[int, ...]
    checkpoint: str

    @property
    def tree_size(self) -> int:
        """The size of the log at ``checkpoint``: one past every seq in ``seqs``."""
        return read_checkpoint(self.checkpoint).size


@dataclass(frozen=True)
class AccountEntry:
    """One award or redemption of an account, as the node reports it.

    ``points``: for an award, the rule's points times ``qty`` (negative for a
    deduction); for a redemption, the points spent (positive). ``time`` is the
    node's integration time, ``at`` the author's; both in ms since 1970 UTC.
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

    @property
    def reversed(self) -> bool:
        return self.reversed_by is not None


@dataclass(frozen=True)
class AccountView:
    """An account's balances (DESIGN 3.4) and entries as of ``checkpoint``."""

    account: str
    score: int
    spendable: int
    redeemed: int
    earned: int
    grade: str
    entries: tuple[AccountEntry, ...]
    checkpoint: str


class LedgerClient:
    """A synchronous client of the ``Ledger`` service of the node at ``address``.

    Use it as a context manager (or call ``close``) so the channel is released.
    ``tls`` (default: the one a :class:`NodeAddress` carries) selects TLS; without
    it the channel is plaintext.
    """

    def __init__(
        self,
        address: str,
        *,
        tls: ClientTLS | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        submit_timeout: float = SUBMIT_TIMEOUT_S,
    ) -> None:
        if tls is None and isinstance(address, NodeAddress):
            tls = address.tls
        self.address = check_address(str(address))
        self.tls = tls
        self.timeout = timeout
        self.submit_timeout = submit_timeout
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

    def __enter__(self) -> LedgerClient:
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

    # -- writing -------------------------------------------------------------

    def submit(self, envelopes: Sequence[bytes], *, action: str | None = None) -> SubmitResult:
        """Append ``envelopes`` as one atomic batch; their seqs and the covering checkpoint.

        ``action`` says what is being submitted ("the award"); a refusal names it.
        An envelope already in the log byte for byte gets its existing seq back.
        """
        request = ledger_pb2.SubmitRequest(envelopes=list(envelopes))
        try:
            response = self._stub.Submit(request, timeout=self.submit_timeout)
        except grpc.RpcError as error:
            raise self._error(error, "Submit", action, writing=True) from None
        seqs = tuple(response.seqs)
        if len(seqs) != len(envelopes):
            raise FormatError(
                f"the node answered {len(seqs)} entry numbers for {len(envelopes)} entries"
            )
        return SubmitResult(seqs, response.checkpoint)

    # -- reading -------------------------------------------------------------

    def get_checkpoint(self) -> str:
        """The node's latest checkpoint (signed note text)."""
        try:
            response = self._stub.GetCheckpoint(
                ledger_pb2.GetCheckpointRequest(), timeout=self.timeout
            )
        except grpc.RpcError as error:
            raise self._error(error, "GetCheckpoint") from None
        return response.checkpoint

    def latest(self) -> Checkpoint:
        """The node's latest checkpoint, read (not verified): origin, size and root.

        Its origin (first line) is the log name every entry body must carry.
        """
        return read_checkpoint(self.get_checkpoint())

    def get_leaves(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(seq, leaf bytes)`` for ``start <= seq < end``, in order."""
        request = ledger_pb2.GetLeavesRequest(start=start, end=end)
        expected = start
        try:
            for message in self._stub.GetLeaves(request, timeout=self.timeout):
                if message.seq != expected:
                    raise FormatError(f"the node sent leaf {message.seq} where {expected} was due")
                yield message.seq, message.leaf
                expected += 1
        except grpc.RpcError as error:
            raise self._error(error, "GetLeaves") from None
        if expected != end:
            raise FormatError(f"the node sent leaves {start} to {expected - 1}, not to {end - 1}")

    def get_body(self, seq: int) -> AnyBody:
        """The decoded body of entry ``seq``."""
        for _, data in self.get_leaves(seq, seq + 1):
            leaf = Leaf.from_bytes(data)
            return decode_body(Envelope.from_bytes(leaf.envelope).body)
        raise FormatError(f"the node sent no leaf for entry {seq}")  # pragma: no cover

    def get_genesis(self) -> Genesis:
        """Entry 0: the admin key and the town's configuration (scale, quorum, time zone)."""
        body = self.get_body(0)
        if not isinstance(body, Genesis):
            raise FormatError(f"entry 0 of the log is a {body.kind} entry, not the genesis")
        return body

    def get_account(self, account: str) -> AccountView:
        """``account``'s balances and its awards and redemptions."""
        request = ledger_pb2.GetAccountRequest(account=account)
        try:
            message = self._stub.GetAccount(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise self._error(error, "GetAccount", f"the account query for {account}") from None
        return AccountView(
            account=message.account or account,
            score=message.score,
            spendable=message.spendable,
            redeemed=message.redeemed,
            earned=message.earned,
            grade=message.grade,
            entries=tuple(
                AccountEntry(
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
                )
                for entry in message.entries
            ),
            checkpoint=message.checkpoint,
        )

    # -- errors --------------------------------------------------------------

    def _error(
        self,
        error: grpc.RpcError,
        method: str,
        action: str | None = None,
        *,
        writing: bool = False,
    ) -> RedlistError:
        code = error.code()
        details = (error.details() or "").strip()
        if code in _UNREACHABLE:
            hint = ""
            if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                problem = "it did not answer in time"
            else:
                problem = "is it running, and is the address right?"
                hint = _TLS_HINT if self.tls is None else _TLS_CHECKS
            # The transport's own words help an operator (refused, DNS, TLS ...).
            said = f" ({_shorten(details)})" if details else ""
            message = (
                f"cannot reach the node at {self.address}: {problem}{said}{hint} [{code.name}]"
            )
            if writing:
                # The batch may have been committed just before the answer was lost.
                message += (
                    "; the entries may or may not have been recorded: check with "
                    "'redlist account' before submitting them again"
                )
            return SourceError(message)
        if code is grpc.StatusCode.UNIMPLEMENTED:
            return SourceError(
                f"cannot reach the node at {self.address}: the server there does not offer "
                f"redlist's {method} call; is it a redlist node? [{code.name}]"
            )
        metadata = _metadata(error)
        check = metadata.get(CHECK_METADATA) or None
        index_text = metadata.get(INDEX_METADATA, "")
        index = int(index_text) if index_text.isdigit() else None
        return NodeError(
            code.name,
            _clean_message(details, index, check) or "(the node gave no reason)",
            check=check,
            index=index,
            action=action,
        )


def _read_pem(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"the file {path} given with {flag} does not exist") from None
    except OSError as error:
        raise KeyFileError(
            f"cannot read the file {path} given with {flag}: {error.strerror or error}"
        ) from None


def _metadata(error: grpc.RpcError) -> dict[str, str]:
    """The text entries of an error's trailing metadata."""
    found: dict[str, str] = {}
    for item in error.trailing_metadata() or ():
        value: str | bytes = item.value
        found[item.key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return found


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clean_message(details: str, index: int | None, check: str | None) -> str:
    """The node's message without the parts shown separately (batch index, check)."""
    if index is not None:
        prefix = f"envelope {index}: "
        if details.startswith(prefix):
            details = details[len(prefix) :]
    if check is not None:
        suffix = f" [{check}]"
        if details.endswith(suffix):
            details = details[: -len(suffix)]
    return details
