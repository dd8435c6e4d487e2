"""The points semantics (DESIGN 3.4) as a state machine applied one entry at a time.

``apply_entry`` decides whether an envelope may stand at position ``seq`` of a log
given everything before it, and if so updates the state. It is the single
definition of the rules: the node runs it before appending, the verifier runs it
again over the whole log. Every refusal is a ``RuleViolation`` whose ``check``
names the rule (stable identifiers, listed in ``CHECKS``) and whose message says,
in plain words, what was wrong.

The function is pure apart from the ``LedgerState`` it is handed; signature
verification is a parameter so that callers may verify signatures in parallel
beforehand and pass the results in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from functools import lru_cache
from typing import NamedTuple

from redlist.ledger import crypto
from redlist.ledger.deeddate import date_window, instant_text, log_zone, month_of, parse_date
from redlist.ledger.entry import (
    MAX_FUTURE_MS,
    ROLES,
    AnyBody,
    Award,
    Envelope,
    Genesis,
    KeyChange,
    Objection,
    Redeem,
    Reverse,
    RuleChange,
    TownConfig,
    decode_body,
)
from redlist.ledger.errors import FormatError, RuleViolation
from redlist.ledger.state import Balance, KeyRecord, LedgerState, RuleRecord, TargetRecord

#: (public key, body bytes, signature) -> valid?
SignatureCheck = Callable[[bytes, bytes, bytes], bool]

CHECKS = {
    "format": "the entry's bytes are not a well-formed format v1 entry",
    "log": "the entry names another log",
    "genesis": "genesis only at seq 0, and seq 0 must be the genesis",
    "duplicate-id": "an entry id may be used once per log",
    "future": "the author's time lies more than 10 minutes after the node's time",
    "signer-unknown": "every signer must be a registered key",
    "signer-revoked": "every signer's key must not be revoked",
    "signature": "every signature must verify over the body",
    "signer-role": "every signer must hold the role the entry needs",
    "quorum": "council decisions (council rules, declared awards, reversals) need at least "
    "`quorum` council signers; key and rule entries the signatures of the genesis's governance",
    "key": "key registrations: valid roles, no key id reused, revoke only active keys, "
    "an admin only with another admin's signature (the last admin never)",
    "key-point": "a registered key is a canonical Ed25519 point of prime order (not small order)",
    "rule": "retire only an active rule",
    "rule-inactive": "awards only under an active rule of the catalogue",
    "deed-date": "an award's deed date is not after the day of its author's time (in the "
    "log's time zone) nor more than the genesis's backdate_days before it",
    "max-qty": "an award's qty is at most its rule's max_qty",
    "max-per-month": "an account's unreversed qty under a rule, per month of the deed dates, "
    "is at most the rule's max_per_month",
    "overdraw": "a redemption may not exceed the spendable points",
    "target": "objections target awards; reversals target awards or redemptions",
    "double-reverse": "an entry may be reversed once",
    "range": "points and balances stay within ±(2^53 − 1), exact in every tool that reads them",
}

# The roles each kind of entry needs (built once: this runs for every entry).
_AWARDERS = frozenset({"grid", "council"})
_CASHIER = frozenset({"cashier"})
_COUNCIL = frozenset({"council"})
_GOVERNORS = frozenset({"admin", "council"})


class Effect(NamedTuple):
    """What an accepted entry changed, for statements and summaries. A named tuple, as
    ``state.Balance`` is: one is made for every entry a node or an auditor applies."""

    seq: int
    kind: str
    signers: tuple[str, ...]
    account: str | None = None
    rule: str | None = None
    earned_delta: int = 0
    redeemed_delta: int = 0
    target: int | None = None


# ``Effect(...)``, ``Balance(...)`` and ``TargetRecord(...)`` (named tuples) of a tuple
# of every field, without their generated ``__new__``: the same values, one Python call
# less (made for every award and redemption).
_new_tuple = tuple.__new__


def apply_entry(
    state: LedgerState,
    *,
    origin: str,
    seq: int,
    time: int,
    envelope: Envelope,
    body: AnyBody | None = None,
    check_signature: SignatureCheck = crypto.verify_entry,
) -> Effect:
    """Check the envelope as entry ``seq`` of log ``origin`` and apply it to ``state``.

    ``time`` is the node's integration time of the entry (ms). ``body``, when
    given, must be ``decode_body(envelope.body)`` (callers that already decoded it
    save the work). Raises ``RuleViolation`` (located at ``seq``) and leaves
    ``state`` untouched when the entry is refused.
    """
    if body is None:
        try:
            body = decode_body(envelope.body)
        except FormatError as exc:
            raise RuleViolation("format", str(exc), seq=seq) from None
    return apply_decoded(state, origin, seq, time, envelope, body, check_signature)


def apply_decoded(
    state: LedgerState,
    origin: str,
    seq: int,
    time: int,
    envelope: Envelope,
    body: AnyBody,
    check_signature: SignatureCheck,
) -> Effect:
    """``apply_entry`` with the body decoded and every argument in order: for the
    validator, which calls it for every entry of a log."""
    try:
        if body.log != origin:
            raise RuleViolation(
                "log", f"the entry is meant for log {body.log!r}, not for this log {origin!r}"
            )
        if (seq == 0) != (type(body) is Genesis):  # no subclasses: the quickest test
            if seq == 0:
                raise RuleViolation("genesis", "the first entry of a log must be its genesis")
            raise RuleViolation("genesis", "a genesis entry may only stand at the start of a log")
        if body.at > time + MAX_FUTURE_MS:
            raise RuleViolation(
                "future",
                f"the author's time ({instant_text(body.at)}) is more than 10 minutes after "
                f"the node's time ({instant_text(time)})",
            )
        earlier = state.entry_seq(body.id)
        if earlier is not None:
            raise RuleViolation(
                "duplicate-id", f"entry id {body.id.hex()} was used at seq {earlier}"
            )

        if seq == 0:
            effect = _genesis(state, seq, envelope, body, check_signature)  # type: ignore[arg-type]
        else:
            config = state.config()
            if config is None:  # only reachable with a state that skipped seq 0
                raise RuleViolation("genesis", "the log has no genesis")
            signers = _signers(state, envelope, check_signature)
            effect = _DISPATCH[type(body)](state, seq, body, signers, config)
        state.put_entry_id(body.id, seq)
        return effect
    except RuleViolation as exc:
        raise exc.at(seq) from None


def _genesis(
    state: LedgerState,
    seq: int,
    envelope: Envelope,
    body: Genesis,
    check_signature: SignatureCheck,
) -> Effect:
    admin_id = crypto.key_id(body.admin)
    _require_registrable(body.admin, "the genesis admin key")
    if [sig.key_id for sig in envelope.signatures] != [admin_id]:
        raise RuleViolation("signer-role", "the genesis must be signed by its admin key alone")
    if not check_signature(body.admin, envelope.body, envelope.signatures[0].signature):
        raise RuleViolation("signature", "the admin's signature on the genesis does not verify")
    try:
        log_zone(body.config.tz)
    except FormatError as exc:
        raise RuleViolation(
            "genesis", f"the town's time zone cannot be used for deed dates: {exc.diagnostics()}"
        ) from None
    _within_range(body.config.base, "the base score")
    for grade in body.config.grades:
        if grade.min is not None:
            _within_range(grade.min, "the minimum of grade {}", grade.name)
    state.set_config(body.config)
    state.put_key(KeyRecord(admin_id, body.admin, "admin", frozenset({"admin"}), seq))
    return Effect(seq, "genesis", ("admin",))


def _signers(
    state: LedgerState, envelope: Envelope, check_signature: SignatureCheck
) -> list[KeyRecord]:
    signers: list[KeyRecord] = []
    for sig in envelope.signatures:
        record = state.key(sig.key_id)
        if record is None:
            raise RuleViolation(
                "signer-unknown", f"key {sig.key_id.hex()} is not registered in this log"
            )
        if record.revoked is not None:
            raise RuleViolation(
                "signer-revoked",
                f"key {sig.key_id.hex()} ({record.name}) was revoked at seq {record.revoked}",
            )
        if not check_signature(record.public, envelope.body, sig.signature):
            # Only refusals pay for saying which condition of the rule failed.
            problem = crypto.signature_problem(record.public, sig.signature)
            raise RuleViolation(
                "signature",
                f"the signature of key {sig.key_id.hex()} ({record.name}) is invalid"
                + (f": {problem}" if problem is not None else ""),
            )
        signers.append(record)
    return signers


def _require_role(signers: Iterable[KeyRecord], roles: frozenset[str], what: str) -> None:
    for signer in signers:
        if roles.isdisjoint(signer.roles):
            wanted = " or ".join(sorted(roles))
            raise RuleViolation(
                "signer-role",
                f"{signer.name} (key {signer.key_id.hex()}) may not sign {what}: "
                f"it needs the {wanted} role",
            )


def _require_registrable(public: bytes, what: str) -> None:
    """Refuse a key nobody should sign with: the rule of DESIGN 3.2 (``crypto.key_problem``).

    A small-order key verifies forgeries anyone can make under RFC 8032 and OpenSSL
    (libsodium refuses them), so such a key would split honest verifiers.
    """
    problem = crypto.key_problem(public)
    if problem is not None:
        raise RuleViolation(
            "key-point",
            f"{what} cannot be registered: {problem}; a key must be a canonical Ed25519 "
            "point of prime order, as 'redlist keygen' makes",
        )


def _require_quorum(signers: list[KeyRecord], quorum: int, what: str) -> None:
    council = sum(1 for signer in signers if "council" in signer.roles)
    if council < quorum:
        raise RuleViolation("quorum", f"{what} needs {quorum} council signatures, it has {council}")


def _require_governance(
    state: LedgerState, signers: list[KeyRecord], config: TownConfig, kind: str, what: str
) -> None:
    """The signers of a ``key`` or ``rule`` entry reach the town's governance quorum
    (``governance``); while the log is being set up (no ``rule`` entry yet) one admin
    signs ``key`` entries alone."""
    _require_role(signers, _GOVERNORS, what)
    config.rules_of_governance.require(
        kind,
        [(signer.name, signer.roles) for signer in signers],
        setting_up=not state.has_rules(),
        what=what,
    )


def _names(signers: list[KeyRecord]) -> tuple[str, ...]:
    if len(signers) == 1:  # most entries
        return (signers[0].name,)
    return tuple([signer.name for signer in signers])


def _key(
    state: LedgerState, seq: int, body: KeyChange, signers: list[KeyRecord], config: TownConfig
) -> Effect:
    _require_governance(state, signers, config, "key", "key changes")
    key_id = crypto.key_id(body.pub)
    existing = state.key(key_id)
    if body.op == "add":
        roles = frozenset(body.roles or ())
        unknown = roles - ROLES
        if unknown:
            raise RuleViolation(
                "key",
                f"unknown role(s) {', '.join(sorted(unknown))}; roles are "
                + ", ".join(sorted(ROLES)),
            )
        if existing is not None:
            raise RuleViolation(
                "key",
                f"key id {key_id.hex()} is already registered (to {existing.name}, seq "
                f"{existing.added}); a key id is never reused",
            )
        _require_registrable(body.pub, f"key {key_id.hex()} ({body.name})")
        state.put_key(KeyRecord(key_id, body.pub, body.name or "", roles, seq))
    else:
        if existing is None or existing.public != body.pub:
            raise RuleViolation("key", f"key {key_id.hex()} is not registered, cannot revoke it")
        if not existing.active:
            raise RuleViolation(
                "key",
                f"key {key_id.hex()} ({existing.name}) was already revoked at seq "
                f"{existing.revoked}",
            )
        if "admin" in existing.roles and not any(
            signer.key_id != key_id and "admin" in signer.roles for signer in signers
        ):
            # Another active admin signs: so one always remains, and the log never
            # loses the only keys that can register staff and rules.
            raise RuleViolation(
                "key",
                f"admin key {key_id.hex()} ({existing.name}) can only be revoked with the "
                "signature of another active admin, so that the log always keeps one: the "
                "last admin is never revoked. To replace it, register the new admin key "
                "first, then revoke this one with the new key's signature",
            )
        state.put_key(
            KeyRecord(
                existing.key_id, existing.public, existing.name, existing.roles, existing.added, seq
            )
        )
    return Effect(seq, "key", _names(signers))


def _rule(
    state: LedgerState, seq: int, body: RuleChange, signers: list[KeyRecord], config: TownConfig
) -> Effect:
    _require_governance(state, signers, config, "rule", "rule changes")
    if body.op == "set":
        _within_range(body.points or 0, "the points of rule {!r}", body.code)
        # decode_body guarantees these for op "set"
        state.put_rule(
            RuleRecord(
                body.code,
                body.title or "",
                body.module or "",
                body.points or 0,
                bool(body.council),
                True,
                seq,
                body.max_qty,
                body.max_per_month,
            )
        )
    else:
        existing = state.rule(body.code)
        if existing is None or not existing.active:
            raise RuleViolation("rule", f"rule {body.code!r} is not active, cannot retire it")
        state.put_rule(
            RuleRecord(
                existing.code,
                existing.title,
                existing.module,
                existing.points,
                existing.council,
                False,
                seq,
                existing.max_qty,
                existing.max_per_month,
            )
        )
    return Effect(seq, "rule", _names(signers), rule=body.code)


#: The largest magnitude of a rule's points, a town's base score or grade minimum, and an
#: account's earned or redeemed total. 2^53 − 1 is exact in int64, in JSON numbers and in
#: spreadsheets, and the sums derived from these (score, spendable) still fit int64.
MAX_POINTS = 2**53 - 1


def _within_range(value: int, what: str, subject: object = None) -> int:
    """``value``, if within ``MAX_POINTS``; ``what`` names it, with ``{}`` for ``subject``.

    The name is only formatted for a refusal: this runs for every award and redemption.
    """
    if not -MAX_POINTS <= value <= MAX_POINTS:
        name = what.format(subject)
        raise RuleViolation(
            "range",
            f"{name} would be {value}, beyond the largest amount a ledger can hold ({MAX_POINTS})",
        )
    return value


def _new_balance(account: str, balance: Balance, earned: int, redeemed: int) -> Balance:
    # ``_within_range`` is only called to refuse: this runs for every award.
    total_earned, total_redeemed = balance.earned + earned, balance.redeemed + redeemed
    if not -MAX_POINTS <= total_earned <= MAX_POINTS:
        _within_range(total_earned, "the points earned by {}", account)
    if not -MAX_POINTS <= total_redeemed <= MAX_POINTS:
        _within_range(total_redeemed, "the points redeemed by {}", account)
    return _new_tuple(Balance, (total_earned, total_redeemed, balance.entries + 1))


def _award(
    state: LedgerState, seq: int, body: Award, signers: list[KeyRecord], config: TownConfig
) -> Effect:
    account, code, qty = body.account, body.rule, body.qty
    rule = state.rule(code)
    if rule is None:
        raise RuleViolation("rule-inactive", f"rule {code!r} is not in the catalogue")
    if not rule.active:
        raise RuleViolation("rule-inactive", f"rule {code!r} was retired at seq {rule.seq}")
    _require_role(signers, _AWARDERS, "awards")
    if rule.council:
        _require_quorum(signers, config.quorum, f"rule {code!r}")
    elif body.declared:  # the resident's own word: the council reviews it (ADR 0033)
        _require_quorum(signers, config.quorum, f"a resident's declaration under rule {code!r}")
    _require_deed_date(body, config)
    if rule.max_qty is not None and qty > rule.max_qty:
        raise RuleViolation(
            "max-qty",
            f"the award to account {account} has qty {qty} under rule "
            f"{code!r}, above the rule's limit of {rule.max_qty} per award",
        )
    month = month_of(body.date)
    earlier = state.month_qty(account, code, month)
    if rule.max_per_month is not None and earlier + qty > rule.max_per_month:
        raise RuleViolation(
            "max-per-month",
            f"account {account} already has qty {earlier} under rule {code!r} for "
            f"deeds in {month}; {qty} more would pass the rule's limit of "
            f"{rule.max_per_month} a month",
        )
    month_total = earlier + qty
    if not -MAX_POINTS <= month_total <= MAX_POINTS:
        _within_range(month_total, "the qty of rule {!r} in one month", code)
    points = rule.points * qty
    if not -MAX_POINTS <= points <= MAX_POINTS:
        _within_range(points, "the value of this award ({} ×)", qty)
    balance = state.balance(account)
    state.put_balance(account, _new_balance(account, balance, points, 0))
    state.put_month_qty(account, code, month, month_total)
    state.put_target(
        seq, _new_tuple(TargetRecord, ("award", account, points, code, None, qty, month))
    )
    state.link_account(account, seq)
    return _new_tuple(Effect, (seq, "award", _names(signers), account, code, points, 0, None))


@lru_cache(maxsize=4096)
def _window(at: int, tz: str, backdate_days: int) -> tuple[date, date]:
    # The entries of a batch or a sheet share their author's time: one look-up each.
    return date_window(at, log_zone(tz), backdate_days)


_parse_date = lru_cache(maxsize=4096)(parse_date)


@lru_cache(maxsize=4096)
def _deed_date_allowed(at: int, deed_date: str, tz: str, backdate_days: int) -> bool:
    # A sheet's awards share their author's time and mostly their deed dates.
    first, last = _window(at, tz, backdate_days)
    return first <= _parse_date(deed_date) <= last


def _require_deed_date(body: Award, config: TownConfig) -> None:
    """The deed date lies in the window of DESIGN 3.4, in the log's days (``deeddate``)."""
    backdate_days = config.deed_window_days
    if _deed_date_allowed(body.at, body.date, config.tz, backdate_days):
        return
    first, last = _window(body.at, config.tz, backdate_days)
    deed = _parse_date(body.date)
    if deed > last:
        raise RuleViolation(
            "deed-date",
            f"the award to account {body.account} is dated {body.date}, after the day it was "
            f"signed ({last.isoformat()} in {config.tz}): a deed cannot be recorded before "
            "it is done",
        )
    if deed < first:
        raise RuleViolation(
            "deed-date",
            f"the award to account {body.account} is dated {body.date}, more than "
            f"{config.deed_window_days} days before the day it was signed "
            f"({last.isoformat()} in {config.tz}); the town allows {config.deed_window_days}",
        )


def _redeem(
    state: LedgerState, seq: int, body: Redeem, signers: list[KeyRecord], config: TownConfig
) -> Effect:
    _require_role(signers, _CASHIER, "redemptions")
    balance = state.balance(body.account)
    if balance.spendable < body.points:
        raise RuleViolation(
            "overdraw",
            f"account {body.account} has {balance.spendable} spendable points, "
            f"cannot redeem {body.points}",
        )
    state.put_balance(body.account, _new_balance(body.account, balance, 0, body.points))
    state.put_target(
        seq, _new_tuple(TargetRecord, ("redeem", body.account, body.points, "", None, 0, ""))
    )
    state.link_account(body.account, seq)
    return _new_tuple(
        Effect, (seq, "redeem", _names(signers), body.account, None, 0, body.points, None)
    )


def _objection(
    state: LedgerState, seq: int, body: Objection, signers: list[KeyRecord], config: TownConfig
) -> Effect:
    if body.target >= seq:
        raise RuleViolation(
            "target", f"the log has no entry {body.target} before this one to object to"
        )
    target = state.target(body.target)
    if target is None or target.kind != "award":
        raise RuleViolation("target", f"seq {body.target} is not an award, cannot object to it")
    state.link_account(target.account, seq)
    return Effect(
        seq, "objection", _names(signers), target.account, target.rule, target=body.target
    )


def _reverse(
    state: LedgerState, seq: int, body: Reverse, signers: list[KeyRecord], config: TownConfig
) -> Effect:
    _require_role(signers, _COUNCIL, "reversals")
    _require_quorum(signers, config.quorum, "a reversal")
    target = state.target(body.target) if body.target < seq else None
    if target is None:
        raise RuleViolation(
            "target", f"seq {body.target} is not an award or a redemption, cannot reverse it"
        )
    if target.reversed_by is not None:
        raise RuleViolation(
            "double-reverse", f"seq {body.target} was already reversed at seq {target.reversed_by}"
        )
    balance = state.balance(target.account)
    if target.kind == "award":
        earned_delta, redeemed_delta = -target.points, 0
    else:
        earned_delta, redeemed_delta = 0, -target.points
    state.put_balance(
        target.account, _new_balance(target.account, balance, earned_delta, redeemed_delta)
    )
    if target.kind == "award":
        # A reversed award counts nothing, so it frees its share of the monthly cap.
        left = state.month_qty(target.account, target.rule, target.month) - target.qty
        state.put_month_qty(target.account, target.rule, target.month, max(left, 0))
    state.put_target(body.target, target.reversed(seq))
    state.link_account(target.account, seq)
    return Effect(
        seq,
        "reverse",
        _names(signers),
        target.account,
        target.rule or None,
        earned_delta,
        redeemed_delta,
        body.target,
    )


_DISPATCH: dict[type, Callable[..., Effect]] = {
    KeyChange: _key,
    RuleChange: _rule,
    Award: _award,
    Redeem: _redeem,
    Objection: _objection,
    Reverse: _reverse,
}
