"""The review queue's calls (``Propose``, ``ListPending``, ``Approve``, ``Reject``) for
``LedgerClient``, as plain values. What the node lists is its word; what a reviewer
signs is checked here (``redlist.staff.commands.approve``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from redlist.ledger.crypto import SigningKey
from redlist.ledger.errors import RedlistError
from redlist.ledger.governance import Alternative
from redlist.ledger.i18n import _, ngettext
from redlist.ledger.review import COUNCIL_QUORUM, GOVERNANCE_QUORUM, NO_SIGNER, Needs
from redlist.ledger.textcommit import EntryText
from redlist.proto.client import read_signature, texts_message
from redlist.proto.errors import WireError
from redlist.v1 import ledger_pb2


@dataclass(frozen=True)
class ReviewSigner:
    key_id: bytes
    name: str
    roles: tuple[str, ...]
    counts: bool


@dataclass(frozen=True)
class ReviewItem:
    """A proposal of the node's review queue (``ReviewItem`` in the proto)."""

    number: int
    state: str
    body: bytes
    signers: tuple[ReviewSigner, ...]
    needs: str
    problem: str
    proposer: bytes
    proposer_name: str
    proposed: int
    expires: int
    seq: int
    reason: str
    decided_by: str
    decided: int
    masked_name: str
    village: str
    rule_title: str
    points: int
    #: ``needs`` as data; None from a node that sends only the English words.
    still_needs: Needs | None = None

    @property
    def body_hash(self) -> bytes:
        return hashlib.sha256(self.body).digest()

    def needs_in_words(self) -> str:
        """What the item still needs, in the reader's language (``still_needs``), or
        the node's English words when it sent no data; empty when it needs nothing."""
        if not self.needs or self.still_needs is None:
            return self.needs
        return needs_in_words(self.still_needs) or self.needs

    @classmethod
    def from_message(cls, message: ledger_pb2.ReviewItem) -> ReviewItem:
        if message.body and hashlib.sha256(message.body).digest() != message.body_hash:
            raise WireError(
                _("the node sent item {number} with a body_hash not its body's").format(
                    number=message.number
                )
            )
        return cls(
            message.number,
            message.state,
            message.body,
            tuple(
                ReviewSigner(signer.key_id, signer.name, tuple(signer.roles), signer.counts)
                for signer in message.signers
            ),
            message.needs,
            message.problem,
            message.proposer,
            message.proposer_name,
            message.proposed,
            message.expires,
            message.seq,
            message.reason,
            message.decided_by,
            message.decided,
            message.masked_name,
            message.village,
            message.rule_title,
            message.points,
            _needs(message) if message.needs else None,
        )


def _needs(message: ledger_pb2.ReviewItem) -> Needs | None:
    if not message.HasField("still_needs"):
        return None  # a node older than the field
    needs = message.still_needs
    return Needs(
        needs.quorum,
        tuple(Alternative(one.admin, one.council) for one in needs.alternatives),
        needs.admins,
        needs.councils,
    )


def needs_in_words(needs: Needs) -> str:
    """``needs`` as a phrase of the reader's language that follows "still needs"; empty
    for a quorum this tool does not know (the caller then shows the node's words)."""
    if needs.quorum == NO_SIGNER:
        return _("a signature that counts (every key that signed it was revoked since)")
    if needs.quorum == COUNCIL_QUORUM and len(needs.alternatives) == 1:
        needed = needs.alternatives[0].council
        missing = needed - needs.councils
        if missing <= 0:
            return ""
        return ngettext(
            "{missing} more council signature ({needed} needed, {has} so far)",
            "{missing} more council signatures ({needed} needed, {has} so far)",
            missing,
        ).format(missing=missing, needed=needed, has=needs.councils)
    if needs.quorum == GOVERNANCE_QUORUM and needs.alternatives:
        ways = _(", or ").join(_signatures(one.admin, one.council) for one in needs.alternatives)
        return _("{ways} to sign in all (town governance); {admins} and {councils} so far").format(
            ways=ways, admins=_admins(needs.admins), councils=_councils(needs.councils)
        )
    return ""


def _signatures(admins: int, councils: int) -> str:
    if not councils:
        return _admins(admins)
    if not admins:
        return _councils(councils)
    return _("{admins} and {councils}").format(admins=_admins(admins), councils=_councils(councils))


def _admins(count: int) -> str:
    return ngettext("{count} admin", "{count} admins", count).format(count=count)


def _councils(count: int) -> str:
    return ngettext("{count} council member", "{count} council members", count).format(count=count)


class ReviewCalls:
    """Mixed into ``LedgerClient``: its stub, timeout and error reading."""

    _stub: Any
    timeout: float
    submit_timeout: float
    _error: Callable[..., RedlistError]

    def propose(
        self, envelope: bytes, texts: Mapping[str, EntryText], *, action: str
    ) -> ReviewItem:
        """Queue ``envelope`` for review (or have it appended, when its signatures
        suffice); the item as the node holds it."""
        request = ledger_pb2.ProposeRequest(envelope=envelope)
        if texts:
            request.texts.CopyFrom(texts_message(texts))
        try:
            response = self._stub.Propose(request, timeout=self.submit_timeout)
        except grpc.RpcError as error:
            raise self._error(error, "Propose", action, writing=True) from None
        return ReviewItem.from_message(response)

    def list_pending(
        self, *, village: str = "", closed: bool = False, number: int = 0
    ) -> list[ReviewItem]:
        request = ledger_pb2.ListPendingRequest(village=village, closed=closed, number=number)
        try:
            response = self._stub.ListPending(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise self._error(
                error, "ListPending", f"review item {number}" if number else None
            ) from None
        return [ReviewItem.from_message(item) for item in response.items]

    def approve(self, item: ReviewItem, key: SigningKey, signature: bytes) -> ReviewItem:
        request = ledger_pb2.ApproveRequest(
            number=item.number, body_hash=item.body_hash, key_id=key.key_id, signature=signature
        )
        try:
            response = self._stub.Approve(request, timeout=self.submit_timeout)
        except grpc.RpcError as error:
            raise self._error(
                error, "Approve", f"the approval of item {item.number}", writing=True
            ) from None
        return ReviewItem.from_message(response)

    def reject(self, number: int, reason: str, key: SigningKey) -> ReviewItem:
        request = ledger_pb2.RejectRequest(
            number=number,
            reason=reason,
            signature=read_signature(key, "Reject", f"{number} {reason}"),
        )
        try:
            response = self._stub.Reject(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise self._error(error, "Reject", f"the rejection of item {number}") from None
        return ReviewItem.from_message(response)
