"""A failed verification: what it is about, what held before it, and its report.

``EntryFacts`` names the resident and the award a failure is about (account, masked
name where the bundle's publicity.csv gives one, seq, rule code and title, points,
deed date, the signers' key names), as far as the bytes can be read. ``Checked``
says what held before the failure. ``failure_text`` and ``failure_json`` turn a
``Failure`` into the report, with its kind and plain words from ``checkwords``.

Every sentence is built here, whole, with named placeholders (``str.format``), so
that a translation can replace it in one place: ``failure_text`` speaks the chosen
language (docs/adr/0034), ``failure_json`` English only. The check's name and the
error's message (the "details" line) stay English in both: they are what ``--json``
carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redlist.ledger import i18n
from redlist.ledger.entry import Award, Objection, Redeem, Reverse, RuleChange
from redlist.ledger.errors import VerificationError
from redlist.ledger.i18n import N_, _
from redlist.ledger.state import LedgerState
from redlist.ledger.tables import wrap_text
from redlist.ledger.text import shown
from redlist.ledger.validator import Reading
from redlist.verifier.checkwords import (
    CANNOT_START,
    KINDS,
    MISREPORTED,
    PLAIN,
    RULE_BROKEN,
    TAMPERED,
    UNCONFIRMED,
    advice,
    kind_of,
)
from redlist.verifier.results import CHECKS, AuditResult


@dataclass(frozen=True)
class EntryFacts:
    """What the entry a failure is about says, as far as its bytes can be read.

    For a tampered entry these are what the changed bytes now say, not what was signed.
    ``readable`` is False when the entry could not be decoded at all. ``signers`` are
    the registered names of the signing keys (or "an unregistered key …").
    """

    seq: int
    readable: bool = True
    kind: str | None = None
    account: str | None = None
    masked_name: str | None = None
    rule: str | None = None
    rule_title: str | None = None
    points: int | None = None
    deed_date: str | None = None
    target: int | None = None
    signers: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "readable": self.readable,
            "kind": self.kind,
            "account": self.account,
            "masked_name": self.masked_name,
            "rule": self.rule,
            "rule_title": self.rule_title,
            "points": self.points,
            "deed_date": self.deed_date,
            "target": self.target,
            "signers": list(self.signers),
        }


def describe_entry(
    seq: int,
    reading: Reading | None,
    state: LedgerState | None,
    masked_names: Mapping[str, str] | None = None,
) -> EntryFacts:
    """The facts of entry ``seq`` from its ``reading``, with rule titles, points and key
    names looked up in ``state`` (the points state before or after it; None when the
    audit did not compute one) and the masked name in ``masked_names`` (by account)."""
    if reading is None or reading.body is None:
        return EntryFacts(seq, readable=False)
    body = reading.body
    names = masked_names or {}
    signers: list[str] = []
    if reading.envelope is not None:
        for signature in reading.envelope.signatures:
            key = state.key(signature.key_id) if state is not None else None
            signers.append(
                key.name
                if key is not None
                else _("an unregistered key ({key_id})").format(key_id=signature.key_id.hex()[:16])
            )
    account: str | None = None
    rule: str | None = None
    title: str | None = None
    points: int | None = None
    date: str | None = None
    target: int | None = None
    if isinstance(body, Award):
        account, rule, date = body.account, body.rule, body.date
        record = state.rule(body.rule) if state is not None else None
        if record is not None:
            title, points = record.title, record.points * body.qty
    elif isinstance(body, Redeem):
        account, points = body.account, -body.points
    elif isinstance(body, (Objection, Reverse)):
        target = body.target
        aimed = state.target(body.target) if state is not None else None
        if aimed is not None:
            account, rule, points = aimed.account, aimed.rule or None, aimed.points
            record = state.rule(aimed.rule) if state is not None and aimed.rule else None
            title = record.title if record is not None else None
    elif isinstance(body, RuleChange):
        rule, title = body.code, body.title
    return EntryFacts(
        seq,
        kind=body.kind,
        account=account,
        masked_name=names.get(account) if account is not None else None,
        rule=rule,
        rule_title=title,
        points=points,
        deed_date=date,
        target=target,
        signers=tuple(signers),
    )


@dataclass(frozen=True)
class Checked:
    """What held before the failure: the checkpoint (None when it was never verified),
    where the data starts, how many entries and signatures were verified."""

    tree_size: int | None = None
    root: bytes | None = None
    start: int = 0
    entries: int = 0
    signatures: int = 0
    #: Checks that all held before the failure ("checkpoint", "entries", "texts"...).
    passed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "entries": self.entries,
            "signatures": self.signatures,
            "passed": list(self.passed),
        }


@dataclass(frozen=True)
class Failure:
    """A failed verification with what it is about and what held before it."""

    error: VerificationError
    checked: Checked = field(default_factory=Checked)
    entry: EntryFacts | None = None

    @property
    def kind(self) -> str:
        return kind_of(self.error.check)


class AuditFailed(VerificationError):
    """A ``VerificationError`` that carries its ``Failure``: what the audit had
    established when it failed and the entry it is about."""

    def __init__(self, failure: Failure) -> None:
        error = failure.error
        super().__init__(error.check, error.message, seq=error.seq)
        self.failure = failure


def failure_of(error: VerificationError) -> Failure:
    """The ``Failure`` an error carries, or a bare one (nothing known to have held)."""
    if isinstance(error, AuditFailed):
        return error.failure
    return Failure(error)


def checked_after(result: AuditResult, *passed: str) -> Checked:
    """What held once the audit ``result`` was established, and the later checks
    ``passed`` since."""
    return Checked(
        tree_size=result.tree_size,
        root=result.root,
        start=result.start,
        entries=result.entries,
        signatures=result.signatures_checked,
        passed=("checkpoint", "entries", "root", *passed),
    )


_KIND_WORDS = {
    "genesis": N_("founding entry"),
    "key": N_("staff key change"),
    "rule": N_("rule change"),
    "award": N_("award"),
    "redeem": N_("redemption"),
    "objection": N_("objection"),
    "reverse": N_("reversal"),
}

#: Each kind in one or two words, for the report's "check:" line.
KIND_NAMES = {
    TAMPERED: N_("tampered"),
    RULE_BROKEN: N_("rule-broken"),
    MISREPORTED: N_("misreported"),
    UNCONFIRMED: N_("unconfirmed"),
}

_SENTENCES = {
    "headline": N_("VERIFICATION FAILED: {kind_words}"),
    "where_entry": N_("where: entry {seq}"),
    "where_log": N_("where: the log as a whole (no single entry)"),
    "check": N_("check: {check} ({kind})"),
    "meaning": N_("What it means: {plain}"),
    "detail": N_("Details: {message}"),
    "unreadable": N_("The entry cannot be read, so it cannot say whose it is."),
    "says_changed": N_("What the changed entry now says (not what was signed):"),
    "says": N_("The entry:"),
    "resident": N_("Resident: account {account}"),
    "resident_named": N_("Resident: account {account} ({masked_name})"),
    "award": N_("Award: rule {rule} \u201c{title}\u201d, {points} points, deed of {date}."),
    "award_untitled": N_("Award: rule {rule} (its title is not known here), deed of {date}."),
    "redeem": N_("Redemption of {points} points."),
    "targets": N_("{what} of entry {target}"),
    "targets_rule": N_(
        "{what} of entry {target}: rule {rule} \u201c{title}\u201d, {points} points."
    ),
    "entry_kind": N_("Kind of entry: {kind_words}."),
    "signed_by": N_("Signed by: {signers}."),
    "unsigned": N_("Signed by: nobody."),
    "checked": N_(
        "Before the failure: {entries} entries and {signatures} signatures "
        "verified, from entry {start}."
    ),
    "checkpoint": N_("Checkpoint: {tree_size} entries, root {root}."),
    "no_checkpoint": N_("Checkpoint: not verified."),
    "advice": N_("What to do: {advice}"),
}


def _say(key: str) -> str:
    """The sentence ``key`` in the chosen language."""
    return _(_SENTENCES[key])


def _prose_date(day: str | None) -> str:
    return i18n.prose_date(day) if day is not None else _("an unknown day")


def _capitalised(words: str) -> str:
    return words[:1].upper() + words[1:]


def failure_text(failure: Failure, width: int = 88) -> str:
    """The human report of a failed audit: kind, where, what it means, the resident and
    award concerned, what held before, and the advice."""
    error = failure.error
    kind = failure.kind
    lines = [_say("headline").format(kind_words=_(KINDS[kind])), ""]
    sentences: list[str] = []
    if error.seq is not None:
        sentences.append(_say("where_entry").format(seq=error.seq))
    else:
        sentences.append(_say("where_log"))
    sentences.append(_say("check").format(check=error.check, kind=_(KIND_NAMES[kind])))
    plain = PLAIN.get(error.check, CHECKS.get(error.check, ""))
    sentences.append(_say("meaning").format(plain=_(plain) if plain else ""))
    if failure.entry is not None:
        sentences.extend(_entry_sentences(failure.entry, kind))
    sentences.append(_say("detail").format(message=shown(error.message)))
    sentences.extend(_checked_sentences(failure.checked))
    sentences.append(_say("advice").format(advice=_(advice(kind))))
    for sentence in sentences:
        lines.extend(wrap_text(sentence, width, initial_indent="  ", subsequent_indent="    "))
    return "\n".join(lines) + "\n"


def _entry_sentences(facts: EntryFacts, kind: str) -> list[str]:
    if not facts.readable:
        return [_say("unreadable")]
    sentences = [_say("says_changed" if kind == TAMPERED else "says")]
    if facts.account is not None:
        key = "resident_named" if facts.masked_name else "resident"
        sentences.append(
            _say(key).format(account=facts.account, masked_name=shown(facts.masked_name or ""))
        )
    words = _(_KIND_WORDS.get(facts.kind or "", facts.kind or N_("an entry")))
    if facts.kind == "award" and facts.rule_title is not None:
        sentences.append(
            _say("award").format(
                rule=shown(facts.rule or ""),
                title=shown(facts.rule_title),
                points=f"{facts.points:+,}" if facts.points is not None else "?",
                date=_prose_date(facts.deed_date),
            )
        )
    elif facts.kind == "award":
        sentences.append(
            _say("award_untitled").format(
                rule=shown(facts.rule or ""), date=_prose_date(facts.deed_date)
            )
        )
    elif facts.kind == "redeem" and facts.points is not None:
        sentences.append(_say("redeem").format(points=f"{-facts.points:,}"))
    elif facts.target is not None and facts.rule_title is not None:
        sentences.append(
            _say("targets_rule").format(
                what=_capitalised(words),
                target=facts.target,
                rule=shown(facts.rule or ""),
                title=shown(facts.rule_title),
                points=f"{facts.points:+,}" if facts.points is not None else "?",
            )
        )
    elif facts.target is not None:
        sentences.append(_say("targets").format(what=_capitalised(words), target=facts.target))
    else:
        sentences.append(_say("entry_kind").format(kind_words=words))
    if facts.signers:
        sentences.append(_say("signed_by").format(signers=shown(_(", ").join(facts.signers))))
    else:
        sentences.append(_say("unsigned"))
    return sentences


def _checked_sentences(checked: Checked) -> list[str]:
    sentences = [
        _say("checked").format(
            entries=f"{checked.entries:,}",
            signatures=f"{checked.signatures:,}",
            start=checked.start,
        )
    ]
    if checked.tree_size is not None and checked.root is not None:
        sentences.append(
            _say("checkpoint").format(tree_size=f"{checked.tree_size:,}", root=checked.root.hex())
        )
    else:
        sentences.append(_say("no_checkpoint"))
    return sentences


def failure_json(failure: Failure) -> dict[str, Any]:
    """The ``--json`` object of a failed audit (docs/operations.md, "When verification
    fails"): ``tree_size`` and ``root`` of the checkpoint when it was verified,
    ``checked``, ``accounts`` always empty (balances up to a bad entry are not verified
    figures), and ``error`` with its ``kind``, plain words, the ``entry`` it is about and
    the ``advice``."""
    error = failure.error
    kind = failure.kind
    checked = failure.checked
    return {
        "ok": False,
        "tree_size": checked.tree_size,
        "root": checked.root.hex() if checked.root is not None else None,
        "accounts": {},
        "checked": checked.to_json(),
        "error": {
            "seq": error.seq,
            "check": error.check,
            "kind": kind,
            "message": error.message,
            "explanation": PLAIN.get(error.check, CHECKS.get(error.check, "")),
            "entry": failure.entry.to_json() if failure.entry is not None else None,
            "advice": advice(kind),
        },
    }


def cannot_start_json(message: str) -> dict[str, Any]:
    """The ``--json`` object of a check that could not start (exit 2)."""
    return {
        "ok": False,
        "tree_size": None,
        "root": None,
        "accounts": {},
        "checked": Checked().to_json(),
        "error": {
            "seq": None,
            "check": "input",
            "kind": CANNOT_START,
            "message": message,
            "explanation": message,
            "entry": None,
            "advice": advice(CANNOT_START),
        },
    }


__all__ = [
    "AuditFailed",
    "Checked",
    "EntryFacts",
    "Failure",
    "cannot_start_json",
    "checked_after",
    "describe_entry",
    "failure_json",
    "failure_of",
    "failure_text",
]
