"""Every check a verification can fail, by kind and in plain words, and the advice after it.

Four kinds (``KINDS``; docs/operations.md, "When verification fails"):

* ``tampered``: bytes were changed, added or removed after they were signed (a
  signature or hash that does not match, a broken chain, a root the checkpoint did
  not sign, bytes that cannot be read, a history rewritten since it was verified);
* ``rule-broken``: the entry is intact as signed, but the town's rules forbid it
  (over a cap, an unknown or retired rule, too few council signatures, more spent
  than earned...);
* ``misreported``: the log itself holds, but what was said about it does not match
  it: publicity.csv, a node's answers, the month a bundle claims;
* ``unconfirmed``: the log itself holds, but its checkpoint does not carry the
  confirmations (cosignatures) the auditor's witness policy asks for: a witness has
  not cosigned it yet, is offline, or refused it.

``CHECK_KINDS`` gives the kind of every check (``results.CHECKS`` and ``text``),
``PLAIN`` what its failure means for someone who is not a programmer, and ``advice``
the one piece of advice printed after a failure, wherever it is printed. Each is a
whole sentence, so that a translation can replace it in one place: the tables hold the
English (marked ``N_``, as ``--json`` carries it), and the human report translates
them where it shows them (``_(advice(kind))``; docs/adr/0034).
"""

from __future__ import annotations

from collections.abc import Mapping

from redlist.ledger.errors import TEXT_CHECK
from redlist.ledger.i18n import N_

TAMPERED = "tampered"
RULE_BROKEN = "rule-broken"
MISREPORTED = "misreported"
UNCONFIRMED = "unconfirmed"
#: ``error.kind`` of a check that could not start (exit 2): nothing was judged.
CANNOT_START = "cannot-start"

#: Each kind, as the headline of the report.
KINDS: Mapping[str, str] = {
    TAMPERED: N_("The data was changed after it was signed (tampering or damage)."),
    RULE_BROKEN: N_("An entry is intact as signed, but it breaks a rule of the town."),
    MISREPORTED: N_(
        "The log holds, but what was published or answered about it does not match it."
    ),
    UNCONFIRMED: N_(
        "The log holds, but the witnesses the policy requires have not confirmed its checkpoint."
    ),
}

#: The kind of every check (a test keeps it complete).
CHECK_KINDS: Mapping[str, str] = {
    # Bytes changed after signing, or records added, removed or rewritten.
    "format": TAMPERED,
    "signature": TAMPERED,
    "chain": TAMPERED,
    "seq": TAMPERED,
    "size": TAMPERED,
    "root": TAMPERED,
    "checkpoint": TAMPERED,
    "manifest": TAMPERED,
    "left": TAMPERED,
    "previous-checkpoint": TAMPERED,
    "consistency": TAMPERED,
    "rollback": TAMPERED,
    TEXT_CHECK: TAMPERED,
    # Signed as it is, and refused by the rules the node should have applied.
    "log": RULE_BROKEN,
    "genesis": RULE_BROKEN,
    "duplicate-id": RULE_BROKEN,
    "future": RULE_BROKEN,
    "time": RULE_BROKEN,
    "signer-unknown": RULE_BROKEN,
    "signer-revoked": RULE_BROKEN,
    "signer-role": RULE_BROKEN,
    "quorum": RULE_BROKEN,
    "key": RULE_BROKEN,
    "key-point": RULE_BROKEN,
    "rule": RULE_BROKEN,
    "rule-inactive": RULE_BROKEN,
    "deed-date": RULE_BROKEN,
    "max-qty": RULE_BROKEN,
    "max-per-month": RULE_BROKEN,
    "overdraw": RULE_BROKEN,
    "target": RULE_BROKEN,
    "double-reverse": RULE_BROKEN,
    "range": RULE_BROKEN,
    # What the town or its node said about a log that itself holds.
    "account-view": MISREPORTED,
    "inclusion": MISREPORTED,
    "witness-policy": UNCONFIRMED,
    "month": MISREPORTED,
    "publicity": MISREPORTED,
}

#: Every check in plain words: what it means that it failed.
PLAIN: Mapping[str, str] = {
    "format": N_(
        "The entry's bytes cannot be read as an entry: they were changed or damaged "
        "after they were written."
    ),
    "signature": N_(
        "A signature does not match the entry's contents: the entry was changed "
        "after it was signed, or was never signed by the key it names."
    ),
    "chain": N_(
        "The entry does not link to the entry before it: an entry before it was "
        "changed, removed or inserted."
    ),
    "seq": N_(
        "The entry is not at the position it says: entries were removed, repeated or "
        "put in another order."
    ),
    "size": N_(
        "The log holds another number of entries than the town's signed checkpoint "
        "says: entries were added or removed."
    ),
    "root": N_(
        "The entries do not add up to the fingerprint (Merkle root) the town signed: "
        "an entry was changed, added or removed."
    ),
    "checkpoint": N_("The checkpoint is not signed by the town's log key, or is for another log."),
    "manifest": N_("The bundle's list of contents does not agree with its signed checkpoint."),
    "left": N_(
        "The fingerprints of the entries before this bundle do not add up to the signed checkpoint."
    ),
    "previous-checkpoint": N_(
        "The checkpoint the bundle starts from is not signed by the town's log key."
    ),
    "consistency": N_(
        "The log's history differs from the history verified before: entries "
        "already verified were changed or replaced."
    ),
    "rollback": N_("The log is shorter than when it was last verified: entries were removed."),
    TEXT_CHECK: N_(
        "A free text (a note, an item, an objection or a reason) is not the text "
        "the entry committed to when it was signed."
    ),
    "log": N_("The entry was signed for another town's log."),
    "genesis": N_(
        "The log's first entry is not the town's founding entry, or a founding entry appears later."
    ),
    "duplicate-id": N_("The entry repeats the id of an earlier entry: it would count twice."),
    "future": N_(
        "The entry claims to have been signed more than 10 minutes after the node recorded it."
    ),
    "time": N_("The node's recording times go backwards at this entry."),
    "signer-unknown": N_("The entry is signed by a key the town never registered."),
    "signer-revoked": N_("The entry is signed by a key the town had already revoked."),
    "signer-role": N_(
        "The signer does not hold the role this kind of entry needs (for "
        "example, a cashier awarding points)."
    ),
    "quorum": N_("The entry needs more council signatures than it has."),
    "key": N_(
        "A staff key registration breaks the town's rules for keys (an unknown role, a "
        "key registered twice, an admin added without another admin)."
    ),
    "key-point": N_(
        "A registered staff key is not a usable signing key (it would let anyone sign in its name)."
    ),
    "rule": N_("A rule of the catalogue was retired that was not active."),
    "rule-inactive": N_(
        "The award is under a rule that is not in the town's catalogue, or was retired."
    ),
    "deed-date": N_(
        "The deed date is after the day the award was signed, or further back than the town allows."
    ),
    "max-qty": N_("The award's quantity is more than its rule allows in one award."),
    "max-per-month": N_("The resident got more under this rule in one month than the rule allows."),
    "overdraw": N_("The redemption spends more points than the resident had to spend."),
    "target": N_("The objection or reversal points at an entry it cannot apply to."),
    "double-reverse": N_("The entry reverses an entry that was already reversed."),
    "range": N_("The points are beyond what any tool can count exactly."),
    "account-view": N_(
        "The node's figures for a resident differ from those recomputed from its own log."
    ),
    "inclusion": N_("The node could not prove that an entry is in the log it signed."),
    "witness-policy": N_(
        "The checkpoint lacks valid confirmations (cosignatures) from the witnesses the "
        "policy requires: they have not confirmed it yet, or a confirmation does not verify."
    ),
    "month": N_(
        "The monthly bundle does not hold exactly one month after the previous one: a "
        "month was cut short, skipped or repeated."
    ),
    "publicity": N_(
        "The list posted for residents (publicity.csv, or the printed notice publicity.html) "
        "does not match the log."
    ),
}

#: The one piece of advice after any failed verification, per kind (``advice``).
_ADVICE: Mapping[str, str] = {
    TAMPERED: N_(
        "Do not rely on these figures. Keep the files exactly as they are and send "
        "this report to the town office and the county auditor; then get the data again from "
        "the town's node or a mirror and verify it again."
    ),
    RULE_BROKEN: N_(
        "Do not rely on these figures. Keep the files exactly as they are and send "
        "this report to the town office and the county auditor: a working node never accepts "
        "such an entry, so the town's node must be examined."
    ),
    MISREPORTED: N_(
        "Do not rely on what was published or answered. Keep the files exactly as "
        "they are and send this report to the town office and the county auditor: it must be "
        "corrected from the log, then verified again."
    ),
    UNCONFIRMED: N_(
        "A witness may be offline, or slow to confirm the newest checkpoint: check again in "
        "a few minutes (a bundle: export it again first). If it keeps failing, ask the "
        "town's operator whether its witnesses are reachable, and send this report to the "
        "county auditor: a node whose checkpoints its witnesses do not confirm may be "
        "showing different histories to different people."
    ),
    CANNOT_START: N_(
        "Nothing was verified. Correct what is named above and run the same command again."
    ),
}


def kind_of(check: str) -> str:
    """The kind of ``check``; a check this table does not know counts as tampering."""
    return CHECK_KINDS.get(check, TAMPERED)


def advice(kind: str) -> str:
    """The advice after a failure of ``kind`` (or ``CANNOT_START``): the one text printed
    wherever advice is given, on stdout or stderr."""
    return _ADVICE.get(kind, _ADVICE[TAMPERED])


__all__ = [
    "CANNOT_START",
    "CHECK_KINDS",
    "KINDS",
    "MISREPORTED",
    "PLAIN",
    "RULE_BROKEN",
    "TAMPERED",
    "UNCONFIRMED",
    "advice",
    "kind_of",
]
