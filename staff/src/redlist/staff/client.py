"""A blocking client of one town node's ``Ledger`` service (DESIGN 4), for the staff tools.

``LedgerClient`` builds on the auditor's :class:`~redlist.proto.client.NodeConnection`
(address check, channel, TLS, the checkpoint and account calls and their
conversion) and adds what staff need: submitting entries and reading single
entries. It is synchronous by construction: a plain (non-asyncio) gRPC channel
over the generated ``LedgerStub``; there is no async variant to choose between at
run time. Each method turns the wire messages into plain values, so commands never
touch protobuf.

Errors, in words the clerk and the operator both understand:

* the node cannot be reached, does not answer in time, or does not offer the
  Ledger service: ``NodeUnreachableError`` (a ``SourceError``; ``redlist`` exits
  2), starting with "cannot reach the node at ADDR";
* the node answered with an error status: ``NodeError``, read by the base class
  as every client reads it (``redlist.proto.errors``): the status code name, the
  node's message and, when the node attached them as trailing metadata, the
  broken rule, the batch index and the limit exceeded (``redlist`` exits 1);
* what the node sent is not what the protocol promises: ``WireError``; cannot be
  read (a checkpoint or leaf that is not format v1): ``FormatError`` or
  ``NoteError``.

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
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from redlist.ledger.entry import AnyBody, Envelope, Genesis, Leaf, decode_body
from redlist.ledger.errors import FormatError, RedlistError
from redlist.ledger.note.checkpoint import Checkpoint
from redlist.ledger.note.signed import Note
from redlist.proto.client import NodeConnection, RemoteAccount, RemoteTLS
from redlist.proto.errors import NodeError, WireError
from redlist.v1 import ledger_pb2

#: How long a read call may take before the node counts as not answering.
DEFAULT_TIMEOUT_S = 30.0
#: Submit waits for a durable commit of the whole batch, so it gets longer.
SUBMIT_TIMEOUT_S = 120.0

# The batch may have been committed just before the answer was lost.
_MAYBE_RECORDED = (
    "; the entries may or may not have been recorded: check with "
    "'redlist account' before submitting them again"
)


class NodeAddress(str):
    """A node's ``HOST:PORT`` as typed after ``--node``, with the TLS files given beside it.

    It is the address text itself (a ``str``), so it prints and compares as one;
    ``tls`` is None for plaintext.
    """

    tls: RemoteTLS | None

    def __new__(cls, address: str, tls: RemoteTLS | None = None) -> NodeAddress:
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
        tls = RemoteTLS(ca, cert, key) if (ca or cert or key) else None
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


class LedgerClient(NodeConnection):
    """A synchronous client of the ``Ledger`` service of the node at ``address``.

    Use it as a context manager (or call ``close``) so the channel is released.
    ``tls`` (default: the one a :class:`NodeAddress` carries) selects TLS; without
    it the channel is plaintext.
    """

    def __init__(
        self,
        address: str,
        *,
        tls: RemoteTLS | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        submit_timeout: float = SUBMIT_TIMEOUT_S,
    ) -> None:
        if tls is None and isinstance(address, NodeAddress):
            tls = address.tls
        super().__init__(address, tls=tls, timeout=timeout)
        self.submit_timeout = submit_timeout

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
            raise WireError(
                f"the node answered {len(seqs)} entry numbers for {len(envelopes)} entries"
            )
        return SubmitResult(seqs, response.checkpoint)

    # -- reading -------------------------------------------------------------

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
                    raise WireError(f"the node sent leaf {message.seq} where {expected} was due")
                yield message.seq, message.leaf
                expected += 1
        except grpc.RpcError as error:
            raise self._error(error, "GetLeaves") from None
        if expected != end:
            raise WireError(f"the node sent leaves {start} to {expected - 1}, not to {end - 1}")

    def get_body(self, seq: int) -> AnyBody:
        """The decoded body of entry ``seq``."""
        for _, data in self.get_leaves(seq, seq + 1):
            leaf = Leaf.from_bytes(data)
            return decode_body(Envelope.from_bytes(leaf.envelope).body)
        raise WireError(f"the node sent no leaf for entry {seq}")  # pragma: no cover

    def get_genesis(self) -> Genesis:
        """Entry 0: the admin key and the town's configuration (scale, quorum, time zone)."""
        body = self.get_body(0)
        if not isinstance(body, Genesis):
            raise FormatError(f"entry 0 of the log is a {body.kind} entry, not the genesis")
        return body

    def account_pages(
        self, account: str, *, page_size: int = 0
    ) -> Generator[RemoteAccount, None, None]:
        """``account``'s balances and its awards and redemptions, a page at a time
        (``get_account``: all at once)."""
        try:
            yield from super().account_pages(account, page_size=page_size)
        except NodeError as error:
            raise error.about(f"the account query for {account}") from None

    # -- errors --------------------------------------------------------------

    def _error(
        self,
        error: grpc.RpcError,
        call: str,
        action: str | None = None,
        *,
        writing: bool = False,
    ) -> RedlistError:
        unreachable = self._unreachable(error, call, consequence=_MAYBE_RECORDED if writing else "")
        if unreachable is not None:
            return unreachable
        return self._refusal(error, action)
