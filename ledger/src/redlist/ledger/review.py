"""Council review over days: envelopes waiting for signatures, and the one question about
them, decided by the points semantics itself. Pure.

A council rule, a resident's declaration or a reversal needs ``quorum`` council
signatures in one envelope (DESIGN 3.4). The review queue (``reviewstore``, the node's
``review`` module) holds an envelope whose signatures do not meet its quorum yet, and
collects the others' one at a time. Whether an envelope may be appended now, may be
once more people sign it, or never may, is decided here by :func:`try_entry`, which
runs :func:`points.apply_entry` (the function the node's append and every auditor
run) on a scratch copy of the state, so nothing is changed:

* accepted: the queue appends it, exactly as if it had arrived whole;
* refused with a check in :data:`AWAITING_CHECKS` (more signatures cure it), and
  accepted once every quorum is waived (:func:`waive_quorums`): it waits, and the
  refusal says what it still needs;
* refused for anything else: it is refused now, and never queued.

Both quorums wait: the council's (council rules, declared awards, reversals) and the
genesis ``governance`` of ``key`` and ``rule`` entries, so the council can approve a
catalogue or staff change over days too. A quorum added to the semantics later is waived
by extending :func:`waive_quorums`.

:class:`PendingItem` is a queued proposal as the queue stores it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from redlist.ledger import codec, crypto, points
from redlist.ledger.entry import (
    AnyBody,
    EntrySignature,
    Envelope,
    TownConfig,
    decode_body,
)
from redlist.ledger.errors import FormatError, RuleViolation
from redlist.ledger.governance import Alternative, Governance, Tally
from redlist.ledger.points import Effect, SignatureCheck
from redlist.ledger.state import Balance, KeyRecord, LedgerState, RuleRecord, TargetRecord

#: The checks of a refusal that more signatures cure: such an envelope waits for them.
AWAITING_CHECKS = frozenset({"quorum"})

#: The states of a queued proposal.
PENDING = "pending"
APPENDED = "appended"
REJECTED = "rejected"
EXPIRED = "expired"
STATES = (PENDING, APPENDED, REJECTED, EXPIRED)


#: A governance that any admin or council signer meets: ``key`` and ``rule`` entries
#: then wait for their governance quorum (check ``quorum``) as council awards do.
_WAIVED_GOVERNANCE = Governance(key=(Alternative(0, 0),), rule=(Alternative(0, 0),))


def waive_quorums(config: TownConfig) -> TownConfig:
    """``config`` with every quorum the semantics counts set to none needed: the council
    quorum and the governance of ``key`` and ``rule`` entries."""
    return replace(config, quorum=0, governance=_WAIVED_GOVERNANCE)


@dataclass(frozen=True)
class Trial:
    """What the semantics says of an envelope now: ``effect`` when it would be accepted,
    else ``awaiting``, the refusal that more signatures cure (its message says what is
    missing, e.g. "rule 'S01' needs 2 council signatures, it has 1")."""

    effect: Effect | None
    awaiting: RuleViolation | None

    @property
    def accepted(self) -> bool:
        return self.effect is not None


def try_entry(
    state: LedgerState,
    *,
    origin: str,
    seq: int,
    time: int,
    envelope: Envelope,
    body: AnyBody,
    check_signature: SignatureCheck = crypto.verify_entry,
) -> Trial:
    """Decide ``envelope`` as entry ``seq`` as ``points.apply_entry`` would, changing
    nothing in ``state``; see the module docstring. Raises ``RuleViolation`` for a
    refusal that no signature can cure."""
    try:
        effect = points.apply_entry(
            ScratchState(state),
            origin=origin,
            seq=seq,
            time=time,
            envelope=envelope,
            body=body,
            check_signature=check_signature,
        )
        return Trial(effect, None)
    except RuleViolation as exc:
        if exc.check not in AWAITING_CHECKS:
            raise
        awaiting = exc
    # Would it pass once signed? The same checks, every quorum waived: a deed date, a
    # cap or a retired rule refuses the proposal now, not after the council signed it.
    points.apply_entry(
        ScratchState(state, waived=True),
        origin=origin,
        seq=seq,
        time=time,
        envelope=envelope,
        body=body,
        check_signature=check_signature,
    )
    return Trial(None, awaiting)


def counted_signatures(
    state: LedgerState, signatures: Mapping[bytes, bytes]
) -> tuple[EntrySignature, ...]:
    """The signatures (key id -> signature) that still count, in key id order: those of
    keys registered and not revoked in ``state``. A key revoked since it signed drops
    out; the semantics then decides on the others alone."""
    kept = []
    for key_id in sorted(signatures):
        record = state.key(key_id)
        if record is not None and record.active:
            kept.append(EntrySignature(key_id, signatures[key_id]))
    return tuple(kept)


#: Whose signatures a waiting envelope needs (``Needs.quorum``): the council's quorum
#: (a council rule's award, a resident's declaration, a reversal), the town's
#: governance (a ``key`` or ``rule`` entry), or any counting signature at all (every key
#: that signed was revoked since).
COUNCIL_QUORUM = "council"
GOVERNANCE_QUORUM = "governance"
NO_SIGNER = "signers"


@dataclass(frozen=True)
class Needs:
    """What a waiting envelope still needs, as data, so that each reader's tool words it
    in the reader's language (the refusal's own message is English, DESIGN's check
    ``quorum``).

    ``quorum`` is one of :data:`COUNCIL_QUORUM`, :data:`GOVERNANCE_QUORUM`,
    :data:`NO_SIGNER`; ``alternatives`` the ways to reach it, any one suffices (the
    council's quorum is one, of no admin and ``quorum`` council members; a key change
    while the log is set up needs one admin); ``admins`` and ``councils`` count the
    signatures that count so far, by role, as ``governance.Tally`` counts them.
    """

    quorum: str
    alternatives: tuple[Alternative, ...]
    admins: int
    councils: int


def needs_of(state: LedgerState, body: AnyBody, counted: tuple[EntrySignature, ...]) -> Needs:
    """What ``body`` signed by ``counted`` waits for, as the semantics counts it (called
    only once the semantics refused it for its quorum alone)."""
    records = [state.key(signature.key_id) for signature in counted]
    tally = Tally.of(record.roles for record in records if record is not None)
    config = state.config()
    if not counted or config is None:
        return Needs(NO_SIGNER, (), 0, 0)
    if body.kind in ("key", "rule"):
        if body.kind == "key" and not state.has_rules():
            alternatives: tuple[Alternative, ...] = (Alternative(1, 0),)
        else:
            alternatives = config.rules_of_governance.for_kind(body.kind)
        return Needs(GOVERNANCE_QUORUM, alternatives, tally.admins, tally.councils)
    return Needs(COUNCIL_QUORUM, (Alternative(0, config.quorum),), tally.admins, tally.councils)


@dataclass(frozen=True)
class PendingTrial:
    """An item's envelope with the signatures that count, and what the semantics says;
    ``needs``, when it waits, what it waits for (:class:`Needs`)."""

    envelope: Envelope
    trial: Trial
    needs: Needs | None = None


def try_pending(
    state: LedgerState,
    *,
    origin: str,
    seq: int,
    time: int,
    body: bytes,
    signatures: Mapping[bytes, bytes],
    check_signature: SignatureCheck = crypto.verify_entry,
) -> PendingTrial:
    """``try_entry`` of ``body`` with those of ``signatures`` that count
    (``counted_signatures``). ``FormatError`` for a body that does not decode;
    ``RuleViolation`` for a refusal no signature cures."""
    decoded = decode_body(body)
    counted = counted_signatures(state, signatures)
    envelope = Envelope(body, counted)
    if not counted:
        missing = RuleViolation(
            "quorum", "no signature of a registered, unrevoked key counts any more", seq=seq
        )
        return PendingTrial(envelope, Trial(None, missing), Needs(NO_SIGNER, (), 0, 0))
    trial = try_entry(
        state,
        origin=origin,
        seq=seq,
        time=time,
        envelope=envelope,
        body=decoded,
        check_signature=check_signature,
    )
    if trial.accepted:
        return PendingTrial(envelope, trial)
    return PendingTrial(envelope, trial, needs_of(state, decoded, counted))


class ScratchState:
    """A ``LedgerState`` that reads ``base`` and keeps its own writes in memory, so a
    trial changes nothing. ``waived``: the town's config with every quorum waived."""

    def __init__(self, base: LedgerState, *, waived: bool = False) -> None:
        self._base = base
        self._waived = waived
        self._config: TownConfig | None = None
        self._keys: dict[bytes, KeyRecord] = {}
        self._rules: dict[str, RuleRecord] = {}
        self._balances: dict[str, Balance] = {}
        self._targets: dict[int, TargetRecord] = {}
        self._months: dict[tuple[str, str, str], int] = {}
        self._ids: dict[bytes, int] = {}

    def config(self) -> TownConfig | None:
        config = self._config if self._config is not None else self._base.config()
        if config is not None and self._waived:
            return waive_quorums(config)
        return config

    def set_config(self, config: TownConfig) -> None:
        self._config = config

    def key(self, key_id: bytes) -> KeyRecord | None:
        return self._keys[key_id] if key_id in self._keys else self._base.key(key_id)

    def put_key(self, record: KeyRecord) -> None:
        self._keys[record.key_id] = record

    def rule(self, code: str) -> RuleRecord | None:
        return self._rules[code] if code in self._rules else self._base.rule(code)

    def put_rule(self, record: RuleRecord) -> None:
        self._rules[record.code] = record

    def has_rules(self) -> bool:
        return bool(self._rules) or self._base.has_rules()

    def balance(self, account: str) -> Balance:
        found = self._balances.get(account)
        return found if found is not None else self._base.balance(account)

    def put_balance(self, account: str, balance: Balance) -> None:
        self._balances[account] = balance

    def target(self, seq: int) -> TargetRecord | None:
        return self._targets[seq] if seq in self._targets else self._base.target(seq)

    def put_target(self, seq: int, record: TargetRecord) -> None:
        self._targets[seq] = record

    def month_qty(self, account: str, rule: str, month: str) -> int:
        key = (account, rule, month)
        return self._months[key] if key in self._months else self._base.month_qty(*key)

    def put_month_qty(self, account: str, rule: str, month: str, qty: int) -> None:
        self._months[(account, rule, month)] = qty

    def entry_seq(self, entry_id: bytes) -> int | None:
        found = self._ids.get(entry_id)
        return found if found is not None else self._base.entry_seq(entry_id)

    def put_entry_id(self, entry_id: bytes, seq: int) -> None:
        self._ids[entry_id] = seq

    def link_account(self, account: str, seq: int) -> None:
        pass


@dataclass(frozen=True)
class PendingItem:
    """A proposal in the review queue: the body and the signatures gathered so far.

    ``number`` is the queue's own (what reviewers type); ``signatures`` maps key id to
    signature over ``body``; ``texts`` the free texts the body commits to (field ->
    (text, salt)), kept until the entry is appended; ``proposer`` the key id that
    proposed it, at ``proposed`` (ms); it expires at ``expires`` (ms). ``state`` is one
    of :data:`STATES`; an appended item has its ``seq``, a rejected one its ``reason``,
    and a closed one ``decided_by`` (key id; empty for an expiry) at ``decided``.
    """

    number: int
    body: bytes
    signatures: Mapping[bytes, bytes]
    proposer: bytes
    proposed: int
    expires: int
    texts: Mapping[str, tuple[str, bytes]] = field(default_factory=dict)
    state: str = PENDING
    seq: int | None = None
    reason: str | None = None
    decided_by: bytes = b""
    decided: int | None = None

    @property
    def entry_id(self) -> bytes:
        return _body_value(self.body)["id"]  # type: ignore[no-any-return]

    @property
    def body_hash(self) -> bytes:
        """SHA-256 of the body bytes: what a reviewer was shown and signs."""
        return hashlib.sha256(self.body).digest()

    def envelope(self, signatures: tuple[EntrySignature, ...]) -> Envelope:
        return Envelope(self.body, signatures)

    def signed_by(self, key_id: bytes, signature: bytes) -> PendingItem:
        return replace(self, signatures={**self.signatures, key_id: signature})

    def closed(
        self,
        state: str,
        *,
        at: int,
        by: bytes = b"",
        seq: int | None = None,
        reason: str | None = None,
    ) -> PendingItem:
        return replace(self, state=state, decided=at, decided_by=by, seq=seq, reason=reason)

    def to_bytes(self) -> bytes:
        return codec.encode(
            [
                self.number,
                self.body,
                [[key_id, self.signatures[key_id]] for key_id in sorted(self.signatures)],
                self.proposer,
                self.proposed,
                self.expires,
                {name: [text, salt] for name, (text, salt) in sorted(self.texts.items())},
                self.state,
                self.seq,
                self.reason,
                self.decided_by,
                self.decided,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PendingItem:
        value = codec.decode(data, "review queue item")
        if not isinstance(value, list) or len(value) != 12:
            raise FormatError("review queue item: expected an array of 12 items")
        number, body, sigs, proposer, proposed, expires, texts, state, seq, reason = value[:10]
        decided_by, decided = value[10:]
        if state not in STATES or not isinstance(body, bytes):
            raise FormatError("review queue item: malformed")
        return cls(
            number,
            body,
            {bytes(key_id): bytes(sig) for key_id, sig in sigs},
            proposer,
            proposed,
            expires,
            {name: (text, bytes(salt)) for name, (text, salt) in texts.items()},
            state,
            seq,
            reason,
            decided_by,
            decided,
        )


def _body_value(body: bytes) -> dict[str, Any]:
    value = codec.decode(body, "entry body")
    if not isinstance(value, dict):
        raise FormatError("entry body: must be a msgpack map")
    return value


__all__ = [
    "APPENDED",
    "AWAITING_CHECKS",
    "COUNCIL_QUORUM",
    "EXPIRED",
    "GOVERNANCE_QUORUM",
    "NO_SIGNER",
    "PENDING",
    "REJECTED",
    "STATES",
    "Needs",
    "PendingItem",
    "PendingTrial",
    "ScratchState",
    "Trial",
    "counted_signatures",
    "needs_of",
    "try_entry",
    "try_pending",
    "waive_quorums",
]
