"""A blocking client of one town node's ``Ledger`` service (DESIGN 4), for the staff tools.

``LedgerClient`` builds on the shared :class:`~redlist.proto.client.NodeConnection`
(address check, channel, TLS, the checkpoint and account calls and their
conversion) and adds what staff need: submitting entries, proving they were
recorded, and reading single entries. It is synchronous by construction: a plain
(non-asyncio) gRPC channel over the generated ``LedgerStub``; there is no async
variant to choose between at run time. Each method turns the wire messages into
plain values, so commands never touch protobuf.

Errors, in words the clerk and the operator both understand:

* the node cannot be reached, does not answer in time, or does not offer the
  Ledger service: ``NodeUnreachableError`` (a ``SourceError``; ``redlist`` exits
  2), starting with "cannot reach the node at ADDR";
* the node answered with an error status: ``NodeError``, read by the base class
  as every client reads it (``redlist.proto.errors``): the status code name, the
  node's message and, when the node attached them as trailing metadata, the
  broken rule, the batch index and the limit exceeded (``redlist`` exits 1);
* what the node sent is not what the protocol promises: ``WireError``; cannot be
  read (a leaf that is not format v1): ``FormatError``;
* the node did not prove what it said: ``VerificationError`` (``redlist`` exits 1),
  check ``checkpoint`` (a checkpoint not signed by the town's log key) or
  ``inclusion`` (an entry it says it recorded that it cannot show in its log).

What the node proves is checked; what it merely states is not. Every checkpoint
it sends is verified with the town log's key (``log_key``, see
:mod:`redlist.staff.knownlogs`), so the log name every entry is signed for is the
one the key vouches for. For every entry submitted, ``prove_recorded``
(:mod:`redlist.staff.proofcalls`) fetches the leaf the node put it in, checks that it
holds exactly the bytes sent, and checks its inclusion against the verified
checkpoint's root (a run of entries by the proofs of its two ends and its own leaves,
ADR 0050), before a command says "recorded". Account figures and entry lists are the
node's word; auditing them is ``redlist-verify``'s job.

Transport: plaintext unless TLS is asked for; a :class:`NodeAddress` carries the TLS
files given beside ``--node`` (:mod:`redlist.staff.nodeargs` reads the options and
connects a command the way the user asked).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo

import grpc

from redlist.ledger.crypto import SigningKey
from redlist.ledger.deeddate import known_zone
from redlist.ledger.entry import AnyBody, Envelope, Genesis, Leaf, decode_body
from redlist.ledger.errors import (
    FormatError,
    NoteError,
    RedlistError,
    VerificationError,
)
from redlist.ledger.i18n import N_, _
from redlist.ledger.note.checkpoint import SignedCheckpoint, open_checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.textcommit import EntryText
from redlist.proto.client import (
    NodeConnection,
    RemoteAccount,
    RemoteTLS,
    read_signature,
    texts_message,
)
from redlist.proto.contract import CHECK_ACCOUNTS_METHOD, accounts_subject
from redlist.proto.errors import NodeError, WireError
from redlist.staff import advice
from redlist.staff.advice import IN_DOUBT, UNPROVED
from redlist.staff.proofcalls import ProofCalls
from redlist.staff.reviewcalls import ReviewCalls
from redlist.v1 import ledger_pb2

#: How long a read call may take before the node counts as not answering.
DEFAULT_TIMEOUT_S = 30.0
#: Submit waits for a durable commit of the whole batch, so it gets longer.
SUBMIT_TIMEOUT_S = 120.0

#: Ids or keys asked about in one look-up call (the node takes up to 10000).
LOOKUP_CHUNK = 5000
#: Accounts asked about in one CheckAccounts call (the node takes up to
#: ``contract.MAX_CHECK_ACCOUNTS``).
ACCOUNTS_CHUNK = 5000


@dataclass(frozen=True)
class RegisterAnswer:
    """What the town's resident register says of a sheet's accounts: whether the town
    keeps one at all (False: nothing was checked), and the accounts it does not hold."""

    register: bool
    unknown: frozenset[str]


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


@dataclass(frozen=True)
class SubmitResult:
    """The seq of every submitted envelope (in order) and the verified checkpoint covering
    them (not yet proof that they are in it: see ``LedgerClient.prove_recorded``)."""

    seqs: tuple[int, ...]
    checkpoint: SignedCheckpoint

    @property
    def tree_size(self) -> int:
        """The size of the log at ``checkpoint``: one past every seq in ``seqs``."""
        return self.checkpoint.size


@dataclass(frozen=True)
class RemoteRule:
    """A rule of the catalogue as the node states it; ``max_qty`` and ``max_per_month``
    None for no limit; ``active`` False once retired; ``seq`` of its last change."""

    code: str
    title: str
    module: str
    points: int
    council: bool
    active: bool
    seq: int
    max_qty: int | None = None
    max_per_month: int | None = None
    #: The meeting that decided it, as the node holds the text ("" when it has none).
    decided: str = ""


@dataclass(frozen=True)
class RemoteKey:
    """A staff key as the node states it; ``revoked`` None while it is active."""

    key_id: bytes
    public: bytes
    name: str
    roles: tuple[str, ...]
    added: int
    revoked: int | None = None


class LedgerClient(NodeConnection, ReviewCalls, ProofCalls):
    """A synchronous client of the ``Ledger`` service of the node at ``address``.

    Every checkpoint the node sends must verify with ``log_key``, the town log's key;
    ``key_source`` says where that key came from, for messages ("given with
    --log-key"). Use it as a context manager (or call ``close``) so the channel is
    released. ``tls`` (default: the one a :class:`NodeAddress` carries) selects TLS;
    without it the channel is plaintext.
    """

    def __init__(
        self,
        address: str,
        *,
        log_key: VerifierKey,
        key_source: str = N_("given with --log-key"),
        tls: RemoteTLS | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        submit_timeout: float = SUBMIT_TIMEOUT_S,
    ) -> None:
        if tls is None and isinstance(address, NodeAddress):
            tls = address.tls
        super().__init__(address, tls=tls, timeout=timeout)
        self.log_key = log_key
        self.key_source = key_source
        self.submit_timeout = submit_timeout
        #: Whether the command's entry ids come from what it says, so that running it
        #: again is safe (``advice``); commands that derive their ids set it.
        self.repeatable = False

    def advice(self, outcome: str) -> str:
        """What to do after a write that ended ``outcome`` (``advice.advice``)."""
        return advice.advice(outcome, repeatable=self.repeatable)

    # -- writing -------------------------------------------------------------

    def submit(
        self,
        envelopes: Sequence[bytes],
        *,
        action: str | None = None,
        texts: Sequence[Mapping[str, EntryText]] = (),
    ) -> SubmitResult:
        """Append ``envelopes`` as one atomic batch; their seqs and the covering checkpoint.

        ``texts``: the free texts of each envelope, by field, aligned with ``envelopes``
        (or empty when none has any). ``action`` says what is being submitted ("the
        award"); a refusal names it. An envelope already in the log byte for byte gets its
        existing seq back.
        """
        request = ledger_pb2.SubmitRequest(envelopes=list(envelopes))
        if any(texts):
            request.texts.extend(texts_message(entry) for entry in texts)
        try:
            response = self._stub.Submit(request, timeout=self.submit_timeout)
        except grpc.RpcError as error:
            raise self._error(error, "Submit", action, writing=True) from None
        seqs = tuple(response.seqs)
        if len(seqs) != len(envelopes):
            raise WireError(
                _(
                    "the node answered {seqs_count} entry numbers for {envelopes_count} entries"
                ).format(seqs_count=len(seqs), envelopes_count=len(envelopes))
            )
        checkpoint = self.verified(response.checkpoint, after_submit=True)
        beyond = [seq for seq in seqs if seq >= checkpoint.size]
        if beyond:
            raise VerificationError(
                "inclusion",
                _(
                    "the node says it recorded an entry as number {beyond}, but the checkpoint "
                    "it signed covers only {size} entries. {advice}"
                ).format(beyond=beyond[0], size=checkpoint.size, advice=self.advice(UNPROVED)),
                seq=beyond[0],
            )
        return SubmitResult(seqs, checkpoint)

    # -- reading -------------------------------------------------------------

    def latest(self) -> SignedCheckpoint:
        """The node's latest checkpoint, verified with the log key: origin, size and root.

        Its origin is the log name every entry body must carry.
        """
        return self.verified(self.get_checkpoint())

    def verified(self, note: str, *, after_submit: bool = False) -> SignedCheckpoint:
        """A checkpoint the node sent, verified with the log key (``VerificationError``)."""
        try:
            return open_checkpoint(note, self.log_key)
        except NoteError as error:
            consequence = self.advice(UNPROVED) if after_submit else _("Nothing was recorded.")
            raise VerificationError(
                "checkpoint",
                _(
                    "the node at {address} did not prove that it keeps the town's log: the "
                    "checkpoint it sent does not verify with the log key {describe} "
                    "({key_source}): {diagnostics}. {consequence} Tell the town admin: this "
                    "address may lead to another node, or the node's log was replaced"
                ).format(
                    address=self.address,
                    describe=self.log_key.describe(),
                    key_source=_(self.key_source),
                    diagnostics=error.diagnostics(),
                    consequence=consequence,
                ),
            ) from None

    def get_leaves(self, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """``(seq, leaf bytes)`` for ``start <= seq < end``, in order."""
        request = ledger_pb2.GetLeavesRequest(start=start, end=end)
        expected = start
        try:
            for message in self._stub.GetLeaves(request, timeout=self.timeout):
                if message.seq != expected:
                    raise WireError(
                        _("the node sent leaf {seq} where {expected} was due").format(
                            seq=message.seq, expected=expected
                        )
                    )
                yield message.seq, message.leaf
                expected += 1
        except grpc.RpcError as error:
            raise self._error(error, "GetLeaves") from None
        if expected != end:
            raise WireError(
                _("the node sent leaves {start} to {value}, not to {value2}").format(
                    start=start, value=expected - 1, value2=end - 1
                )
            )

    def get_body(self, seq: int) -> AnyBody:
        """The decoded body of entry ``seq``."""
        for _seq, data in self.get_leaves(seq, seq + 1):
            leaf = Leaf.from_bytes(data)
            return decode_body(Envelope.from_bytes(leaf.envelope).body)
        raise WireError(
            _("the node sent no leaf for entry {seq}").format(seq=seq)
        )  # pragma: no cover

    def get_genesis(self) -> Genesis:
        """Entry 0: the admin key and the town's configuration (scale, quorum, time zone)."""
        body = self.get_body(0)
        if not isinstance(body, Genesis):
            raise FormatError(
                _("entry 0 of the log is a {kind} entry, not the genesis").format(kind=body.kind)
            )
        return body

    def town_zone(self) -> tzinfo:
        """The town's time zone (its genesis) to show times in; UTC where this computer
        does not know it."""
        return known_zone(self.get_genesis().config.tz) or UTC

    def find_entries(self, ids: Sequence[bytes]) -> dict[bytes, int]:
        """The seq of each of ``ids`` the log holds, as the node states it (absent ones left
        out): a caller proves each with ``proved_leaves`` and reads what it says."""
        found: dict[bytes, int] = {}
        for first in range(0, len(ids), LOOKUP_CHUNK):
            request = ledger_pb2.FindEntriesRequest(ids=ids[first : first + LOOKUP_CHUNK])
            try:
                response = self._stub.FindEntries(request, timeout=self.timeout)
            except grpc.RpcError as error:
                raise self._error(error, "FindEntries") from None
            found.update((item.id, item.seq) for item in response.found)
        return found

    def get_rules(self) -> dict[str, RemoteRule]:
        """The rule catalogue as the node states it, retired rules too, by code."""
        try:
            response = self._stub.GetRules(ledger_pb2.GetRulesRequest(), timeout=self.timeout)
        except grpc.RpcError as error:
            raise self._error(error, "GetRules") from None
        return {
            rule.code: RemoteRule(
                rule.code,
                rule.title,
                rule.module,
                rule.points,
                rule.council,
                rule.active,
                rule.seq,
                rule.max_qty or None,
                rule.max_per_month or None,
                rule.decided,
            )
            for rule in response.rules
        }

    def get_keys(self) -> list[RemoteKey]:
        """The staff keys as the node states them, revoked ones too, in key id order."""
        try:
            response = self._stub.GetKeys(ledger_pb2.GetKeysRequest(), timeout=self.timeout)
        except grpc.RpcError as error:
            raise self._error(error, "GetKeys") from None
        return [
            RemoteKey(
                key.key_id,
                key.public_key,
                key.name,
                tuple(key.roles),
                key.added,
                key.revoked if key.HasField("revoked") else None,
            )
            for key in response.keys
        ]

    def month_counts(self, keys: Sequence[tuple[str, str, str]]) -> list[int]:
        """For each ``(account, rule, YYYY-MM)``, the qty of its awards not reversed with
        deed dates in that month, as the node states it (what ``max_per_month`` counts)."""
        counts: list[int] = []
        for first in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[first : first + LOOKUP_CHUNK]
            request = ledger_pb2.GetMonthCountsRequest(
                keys=[
                    ledger_pb2.MonthKey(account=account, rule=rule, month=month)
                    for account, rule, month in chunk
                ]
            )
            try:
                response = self._stub.GetMonthCounts(request, timeout=self.timeout)
            except grpc.RpcError as error:
                raise self._error(error, "GetMonthCounts") from None
            if len(response.qty) != len(chunk):
                raise WireError(
                    _("the node answered {qty_count} monthly counts for {chunk_count} keys").format(
                        qty_count=len(response.qty), chunk_count=len(chunk)
                    )
                )
            counts.extend(response.qty)
        return counts

    def check_accounts(self, accounts: Sequence[str], signer: SigningKey) -> RegisterAnswer:
        """Which of ``accounts`` the town's resident register does not hold, asked in
        chunks of ``ACCOUNTS_CHUNK``, each signed by ``signer`` (a staff key: the register
        is the staff's alone). A node without ``CheckAccounts`` (an older one) is a
        ``NodeError`` saying so, never an answer: the caller stops rather than send
        accounts nobody checked."""
        unknown: set[str] = set()
        for first in range(0, max(len(accounts), 1), ACCOUNTS_CHUNK):
            chunk = list(accounts[first : first + ACCOUNTS_CHUNK])
            request = ledger_pb2.CheckAccountsRequest(accounts=chunk)
            request.read_signature.CopyFrom(
                read_signature(signer, CHECK_ACCOUNTS_METHOD, accounts_subject(chunk))
            )
            try:
                response = self._stub.CheckAccounts(request, timeout=self.timeout)
            except grpc.RpcError as error:
                if error.code() is grpc.StatusCode.UNIMPLEMENTED:
                    raise NodeError(
                        "register",
                        _(
                            "the node at {address} cannot check accounts against the town's "
                            "resident register (it runs an older redlist-node, without "
                            "CheckAccounts); nothing was sent: upgrade the node and run the "
                            "command again"
                        ).format(address=self.address),
                        code=error.code().name,
                        action=_("the account check"),
                    ) from None
                raise self._error(error, "CheckAccounts", _("the account check")) from None
            if not response.register:
                return RegisterAnswer(register=False, unknown=frozenset())
            strays = set(response.unknown) - set(chunk)
            if strays:
                raise WireError(
                    _("the node's account check names accounts not asked about: {strays}").format(
                        strays=", ".join(sorted(strays)[:5])
                    )
                )
            unknown.update(response.unknown)
        return RegisterAnswer(register=True, unknown=frozenset(unknown))

    def account_pages(
        self, account: str, *, page_size: int = 0, read_key: SigningKey | None = None
    ) -> Generator[RemoteAccount, None, None]:
        """``account``'s balances and its awards and redemptions, a page at a time
        (``get_account``: all at once); with ``read_key``, signed, with the free texts."""
        try:
            yield from super().account_pages(account, page_size=page_size, read_key=read_key)
        except NodeError as error:
            raise error.about(
                _("the account query for {account}").format(account=account)
            ) from None

    # -- errors --------------------------------------------------------------

    def _error(
        self,
        error: grpc.RpcError,
        call: str,
        action: str | None = None,
        *,
        writing: bool = False,
    ) -> RedlistError:
        consequence = _(". {advice}").format(advice=self.advice(IN_DOUBT)) if writing else ""
        unreachable = self._unreachable(error, call, consequence=consequence)
        if unreachable is not None:
            return unreachable
        return self._refusal(error, action)
