"""The node's review queue: proposals waiting for the council's signatures (ADR 0033).

An envelope whose signatures do not yet meet its quorum waits in ``DIR/review.lmdb``
(``redlist.ledger.reviewstore``), beside the log and never in it, while the council
members sign it one at a time, over days. What the queue does with an envelope is
decided by the points semantics itself (``redlist.ledger.review.try_pending``, which
runs the function every append and every audit runs, on a scratch state): accepted now
with the signatures that count, it is appended as if it had arrived whole; refused for
its quorum alone, it waits; refused for anything else, it is refused.

The blocking methods here decide and store; appending is the servicer's (through the
batcher, with the entry's texts, as Submit does). The servicer runs one decision at a
time (an asyncio lock), and each store change is one LMDB write transaction, so two
approvals arriving together append once.

* A signature counts when its key is registered and not revoked as the log stands;
  one key signs once (a second approval by it changes nothing).
* A pending item expires ``days`` after it was proposed; closed items (appended,
  rejected, expired) stay listed as long, so the proposer learns what became of them.
* At most ``max_pending`` items wait at once, at most ``max_per_proposer`` from one
  proposer; more are refused RESOURCE_EXHAUSTED. Closed items are kept up to
  ``max_pending`` too, so what the queue holds is bounded by its configuration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from redlist.ledger import crypto
from redlist.ledger.entry import (
    KEY_ID_SIZE,
    SIGNATURE_SIZE,
    AnyBody,
    Award,
    Envelope,
    decode_body,
)
from redlist.ledger.errors import (
    CheckError,
    FormatError,
    RuleViolation,
    StoreError,
    TextError,
)
from redlist.ledger.log import Log
from redlist.ledger.masking import mask_name
from redlist.ledger.registerstore import RegisterStore
from redlist.ledger.review import (
    APPENDED,
    EXPIRED,
    PENDING,
    REJECTED,
    Needs,
    PendingItem,
)
from redlist.ledger.reviewstore import ReviewStore
from redlist.ledger.text import text_problem
from redlist.ledger.textcommit import EntryText, check_texts

DAY_MS = 86_400_000
DEFAULT_REVIEW_DAYS = 30
DEFAULT_MAX_PENDING = 1000
DEFAULT_MAX_PER_PROPOSER = 200
#: The longest reason for a rejection, in characters.
MAX_REASON = 1000

QUEUE_FULL_CHECK = "review-queue-full"
PROPOSER_FULL_CHECK = "review-proposer-full"


@dataclass(frozen=True)
class ReviewLimits:
    """How long items wait and how many may (node config ``review_days``,
    ``review_max_pending``, ``review_max_per_proposer``)."""

    days: int = DEFAULT_REVIEW_DAYS
    max_pending: int = DEFAULT_MAX_PENDING
    max_per_proposer: int = DEFAULT_MAX_PER_PROPOSER

    def __post_init__(self) -> None:
        for name in ("days", "max_pending", "max_per_proposer"):
            if getattr(self, name) < 1:
                raise FormatError(f"'review_{name}' must be at least 1, not {getattr(self, name)}")


class ReviewRefusal(CheckError):
    """A review request the node refuses: ``code`` is its gRPC status, ``limit`` the
    bound a full queue names."""

    def __init__(
        self, code: grpc.StatusCode, check: str | None, message: str, *, limit: int | None = None
    ) -> None:
        super().__init__(check, message)
        self.code = code
        self.limit = limit


@dataclass(frozen=True)
class Decision:
    """What became of a request: the item as stored, and the envelope to append now
    (with its texts), when its quorum is met."""

    item: PendingItem
    append: bytes | None = None
    texts: Mapping[str, EntryText] = field(default_factory=dict)
    #: True when the reviewer had signed already: nothing changed.
    repeated: bool = False


@dataclass(frozen=True)
class ItemView:
    """An item as ``ListPending`` shows it."""

    item: PendingItem
    signers: tuple[tuple[bytes, str, tuple[str, ...], bool], ...]
    needs: str
    problem: str
    proposer_name: str
    masked_name: str
    village: str
    rule_title: str
    points: int
    decided_by_name: str = ""
    #: ``needs`` as data (``redlist.ledger.review.Needs``), for the reader's language.
    still_needs: Needs | None = None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ReviewQueue:
    """The review queue of the node serving ``log`` from ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        log: Log,
        limits: ReviewLimits | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.data_dir = data_dir
        self.limits = limits or ReviewLimits()
        self._log = log
        self._clock = clock
        self._store = ReviewStore.open(data_dir)

    def close(self) -> None:
        self._store.close()

    # -- requests (blocking; the servicer runs one at a time) -------------------

    def propose(self, raw: bytes, texts: Mapping[str, EntryText]) -> Decision:
        """Queue an envelope (or hand it back to append now); ``ReviewRefusal`` or a
        ``RuleViolation`` when it is refused."""
        now = self._clock()
        self.sweep(now)
        try:
            envelope = Envelope.from_bytes(raw)
            body = decode_body(envelope.body)
            check_texts(body, texts)
        except (FormatError, TextError) as error:
            check = error.check if isinstance(error, TextError) else "format"
            raise ReviewRefusal(grpc.StatusCode.INVALID_ARGUMENT, check, str(error)) from None
        recorded = self._log.entry(body.id)
        if recorded is not None:
            raise ReviewRefusal(
                grpc.StatusCode.ALREADY_EXISTS,
                "duplicate-id",
                f"entry id {body.id.hex()} is already in the log, at entry {recorded[0]}",
            )
        held = self._store.items()
        for item in held:
            if item.state == PENDING and item.entry_id == body.id:
                if item.body != envelope.body:
                    raise ReviewRefusal(
                        grpc.StatusCode.ALREADY_EXISTS,
                        "duplicate-id",
                        f"entry id {body.id.hex()} is already proposed (item {item.number}) "
                        "with another body",
                    )
                return Decision(item, repeated=True)  # proposed again: the same item
        signatures = {sig.key_id: sig.signature for sig in envelope.signatures}
        self._require_signers(envelope.body, signatures)
        tried = self._log.try_pending(envelope.body, signatures, now)  # RuleViolation: refused
        proposer = envelope.signatures[0].key_id
        stored_texts = {name: (text.text, text.salt) for name, text in texts.items()}
        if tried.trial.accepted:
            item = PendingItem(0, envelope.body, signatures, proposer, now, now, stored_texts)
            return Decision(item, append=tried.envelope.to_bytes(), texts=texts)

        def make(number: int, items: list[PendingItem]) -> PendingItem:
            pending = [item for item in items if item.state == PENDING]
            limits = self.limits
            if len(pending) >= limits.max_pending:
                raise ReviewRefusal(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    QUEUE_FULL_CHECK,
                    f"the review queue holds {len(pending)} proposals, as many as this node "
                    "keeps: the council must decide some before more are proposed",
                    limit=limits.max_pending,
                )
            mine = sum(1 for item in pending if item.proposer == proposer)
            if mine >= limits.max_per_proposer:
                raise ReviewRefusal(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    PROPOSER_FULL_CHECK,
                    f"key {proposer.hex()} has {mine} proposals waiting for review, as many "
                    "as this node takes from one proposer",
                    limit=limits.max_per_proposer,
                )
            return PendingItem(
                number,
                envelope.body,
                signatures,
                proposer,
                now,
                now + limits.days * DAY_MS,
                stored_texts,
            )

        return Decision(self._store.add(make))

    def approve(self, number: int, body_hash: bytes, key_id: bytes, signature: bytes) -> Decision:
        """Add a reviewer's signature to item ``number``; the envelope to append when
        the quorum is met."""
        now = self._clock()
        self.sweep(now)
        item = self._open_item(number)
        if body_hash != item.body_hash:
            raise ReviewRefusal(
                grpc.StatusCode.FAILED_PRECONDITION,
                "review-body",
                f"item {number}'s body is not the one you were shown (its SHA-256 is "
                f"{item.body_hash.hex()}): list it again and check it before approving",
            )
        if len(key_id) != KEY_ID_SIZE or len(signature) != SIGNATURE_SIZE:
            raise ReviewRefusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                "format",
                f"an approval has an {KEY_ID_SIZE}-byte key id and a {SIGNATURE_SIZE}-byte "
                "signature",
            )
        if key_id in item.signatures:
            return Decision(item, repeated=True)  # one key counts once
        self._require_signers(item.body, {key_id: signature})
        before = self._log.try_pending(item.body, item.signatures, now).trial.awaiting
        signed = item.signed_by(key_id, signature)
        tried = self._log.try_pending(signed.body, signed.signatures, now)
        if tried.trial.accepted:
            return Decision(signed, append=tried.envelope.to_bytes(), texts=_texts(signed))
        awaiting = tried.trial.awaiting
        if before is not None and awaiting is not None and awaiting.message == before.message:
            # The semantics lets the key sign, but its signature brings no quorum closer
            # (a grid worker's on a council decision): an approval that would not count.
            record = self._log.staff_key(key_id)
            name = record.name if record is not None else key_id.hex()
            raise ReviewRefusal(
                grpc.StatusCode.PERMISSION_DENIED,
                "signer-role",
                f"the approval of {name} (key {key_id.hex()}) would not count: {awaiting.message}",
            )
        self._store.put(signed)
        return Decision(signed)

    def reject(self, number: int, reason: str, key_id: bytes) -> PendingItem:
        """Close item ``number`` as rejected by council key ``key_id`` (the caller checked
        the request's signature) for ``reason``."""
        now = self._clock()
        self.sweep(now)
        if not reason or len(reason) > MAX_REASON or (problem := text_problem(reason)):
            raise ReviewRefusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                "format",
                f"a rejection needs a reason of 1 to {MAX_REASON} characters"
                + (f"; this one {problem}" if reason and problem else ""),
            )
        record = self._log.staff_key(key_id)
        if record is None or not record.active or "council" not in record.roles:
            raise ReviewRefusal(
                grpc.StatusCode.PERMISSION_DENIED,
                "signer-role",
                f"key {key_id.hex()} may not reject proposals: only an active council key may",
            )
        item = self._open_item(number)
        closed = item.closed(REJECTED, at=now, by=key_id, reason=reason)
        self._store.put(closed)
        return closed

    def appended(self, item: PendingItem, seq: int) -> PendingItem:
        """Record that ``item`` (an approved one) is entry ``seq`` of the log."""
        closed = item.closed(APPENDED, at=self._clock(), by=item.decided_by, seq=seq)
        if item.number:
            self._store.put(closed)
        return closed

    # -- reading -------------------------------------------------------------

    def pending_count(self) -> int:
        return sum(1 for item in self._store.items() if item.state == PENDING)

    def listing(
        self, *, village: str = "", closed: bool = False, number: int = 0
    ) -> list[ItemView]:
        """The items as ``ListPending`` shows them, after expiring what is due."""
        now = self._clock()
        self.sweep(now)
        items = [
            item
            for item in self._store.items()
            if (closed or number or item.state == PENDING) and (not number or item.number == number)
        ]
        register = _Register(self.data_dir)
        views = [self._view(item, register, now) for item in items]
        if village:
            views = [view for view in views if view.village == village]
        return views

    def sweep(self, now: int) -> None:
        """Expire pending items that are due, note those the log holds already (an append
        whose note did not reach the queue), and forget closed ones past the period."""
        keep_ms = self.limits.days * DAY_MS
        changed: list[PendingItem] = []
        gone: list[int] = []
        items = self._store.items()
        for item in items:
            if item.state == PENDING:
                recorded = self._log.entry(item.entry_id)
                if recorded is not None:
                    changed.append(item.closed(APPENDED, at=now, seq=recorded[0]))
                elif item.expires <= now:
                    changed.append(item.closed(EXPIRED, at=now))
            elif item.decided is not None and item.decided + keep_ms <= now:
                gone.append(item.number)
        closed = [item for item in items if item.state != PENDING and item.number not in gone]
        extra = len(closed) - self.limits.max_pending
        if extra > 0:
            gone.extend(item.number for item in closed[:extra])
        for item in changed:
            self._store.put(item)
        if gone:
            self._store.remove(gone)

    # -- helpers ---------------------------------------------------------------

    def _open_item(self, number: int) -> PendingItem:
        item = self._store.get(number)
        if item is None:
            raise ReviewRefusal(
                grpc.StatusCode.NOT_FOUND,
                None,
                f"the review queue holds no item {number} (an item closed more than "
                f"{self.limits.days} days ago is forgotten)",
            )
        if item.state == APPENDED:
            raise ReviewRefusal(
                grpc.StatusCode.FAILED_PRECONDITION,
                "review-closed",
                f"item {number} was approved already: it is entry {item.seq}",
            )
        if item.state == REJECTED:
            raise ReviewRefusal(
                grpc.StatusCode.FAILED_PRECONDITION,
                "review-closed",
                f"item {number} was rejected: {item.reason}",
            )
        if item.state == EXPIRED:
            raise ReviewRefusal(
                grpc.StatusCode.FAILED_PRECONDITION,
                "review-closed",
                f"item {number} expired unreviewed after {self.limits.days} days; propose it again",
            )
        return item

    def _require_signers(self, body: bytes, signatures: Mapping[bytes, bytes]) -> None:
        """Each new signature is by a registered, unrevoked key and verifies."""
        for key_id, signature in signatures.items():
            record = self._log.staff_key(key_id)
            if record is None:
                raise RuleViolation(
                    "signer-unknown", f"key {key_id.hex()} is not registered in this log"
                )
            if not record.active:
                raise RuleViolation(
                    "signer-revoked",
                    f"key {key_id.hex()} ({record.name}) was revoked at seq {record.revoked}",
                )
            if not crypto.verify_entry(record.public, body, signature):
                raise RuleViolation(
                    "signature",
                    f"the signature of key {key_id.hex()} ({record.name}) does not verify over "
                    "the item's body",
                )

    def _view(self, item: PendingItem, register: _Register, now: int) -> ItemView:
        signers = []
        for key_id in sorted(item.signatures):
            record = self._log.staff_key(key_id)
            name = record.name if record is not None else key_id.hex()
            roles = tuple(sorted(record.roles)) if record is not None else ()
            signers.append((key_id, name, roles, record is not None and record.active))
        proposer = self._log.staff_key(item.proposer)
        decider = self._log.staff_key(item.decided_by) if item.decided_by else None
        needs = problem = ""
        still_needs: Needs | None = None
        if item.state == PENDING:
            try:
                tried = self._log.try_pending(item.body, item.signatures, now)
                if tried.trial.awaiting is not None:
                    needs = tried.trial.awaiting.message
                    still_needs = tried.needs
            except (RuleViolation, FormatError) as error:
                problem = str(error)
        body = decode_body(item.body)
        masked, village, title, points = "", "", "", 0
        account = _account_of(body)
        if account:
            masked, village = register.masked(account)
        if isinstance(body, Award):
            rule = self._log.rule(body.rule)
            if rule is not None:
                title, points = rule.title, rule.points * body.qty
        return ItemView(
            item,
            tuple(signers),
            needs,
            problem,
            proposer.name if proposer is not None else item.proposer.hex(),
            masked,
            village,
            title,
            points,
            decider.name if decider is not None else item.decided_by.hex(),
            still_needs,
        )


def _texts(item: PendingItem) -> dict[str, EntryText]:
    return {name: EntryText(text, salt) for name, (text, salt) in item.texts.items()}


def _account_of(body: AnyBody) -> str:
    account = getattr(body, "account", "")
    return account if isinstance(account, str) else ""


class _Register:
    """The resident register, read once per listing (empty when the node has none)."""

    def __init__(self, data_dir: Path) -> None:
        self._residents: dict[str, tuple[str, str]] = {}
        try:
            with RegisterStore.open(data_dir, wait_s=2.0) as register:
                for resident in register.residents():
                    # A masked name only where publicity may show it (a legal basis): the
                    # list is public. The village serves the filter for every resident.
                    shown = resident.publishable and bool(resident.name)
                    self._residents[resident.account] = (
                        mask_name(resident.name) if shown else "",
                        resident.village,
                    )
        except StoreError:
            pass  # no register, or one busy being rewritten: list without names

    def masked(self, account: str) -> tuple[str, str]:
        return self._residents.get(account, ("", ""))
