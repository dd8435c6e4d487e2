"""The witness policy an audit must meet (DESIGN 5, 8.4): read it, then hold the checkpoint to it.

The policy comes from the auditor, never from the data: a tlog-policy file
(``--policy FILE``, read with the bounded reader) or the short form
``--witness VKEY ... --min-witnesses K``. A policy that cannot be used, or that is for
other logs, stops the check before it starts (``PolicyError``, exit 2). After the audit
the final checkpoint must meet it; otherwise the log's state is not vouched for as
required and the audit fails with check ``witness-policy`` (``VerificationError``,
exit 1), as it does when a listed witness's cosignature line does not verify.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from redlist.ledger.errors import NoteError, PolicyError, SourceError, VerificationError
from redlist.ledger.i18n import _, in_words
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.policy import Policy, PolicyVerdict, evaluate, parse_policy
from redlist.verifier.files import SMALL_LIMIT, read_limited

#: The check a checkpoint without the cosignatures the policy needs fails.
POLICY_CHECK = "witness-policy"


def load_policy(path: Path | None, witnesses: Sequence[str], minimum: int | None) -> Policy | None:
    """The policy the arguments ask for, or None when they ask for none.

    ``path`` (a tlog-policy file) and ``witnesses`` (verifier key strings) are
    alternatives; ``minimum`` goes with ``witnesses`` (all of them when None).
    Raises ``PolicyError`` (or ``SourceError`` for an unreadable file).
    """
    if path is not None:
        if witnesses or minimum is not None:
            raise PolicyError(_("give either --policy or --witness/--min-witnesses, not both"))
        try:
            data = read_limited(path, SMALL_LIMIT, _("the policy file"))
        except FileNotFoundError:
            raise SourceError(
                _("the policy file {path} does not exist").format(path=path)
            ) from None
        try:
            return parse_policy(data)
        except PolicyError as error:
            raise PolicyError(
                _("the policy file {path}: {error}").format(path=path, error=in_words(error)),
                line=error.line,
            ) from None
    if not witnesses:
        if minimum is not None:
            raise PolicyError(_("--min-witnesses needs the witnesses' keys, each with --witness"))
        return None
    keys = []
    for text in witnesses:
        try:
            keys.append(VerifierKey.parse(text.strip()))
        except NoteError as error:
            raise PolicyError(
                _("--witness {text!r}: {error}").format(text=text, error=error)
            ) from None
    return Policy.of_witnesses(keys, minimum)


def require(policy: Policy, signed: SignedCheckpoint) -> PolicyVerdict:
    """The verdict on ``signed``, which must meet ``policy`` (else ``VerificationError``)."""
    try:
        verdict = evaluate(policy, signed)
    except NoteError as error:
        raise VerificationError(
            POLICY_CHECK,
            f"the checkpoint of {signed.describe()} carries a bad cosignature: {error}",
        ) from None
    if not verdict.met:
        raise VerificationError(POLICY_CHECK, f"{signed.describe()}: {verdict.describe()}")
    return verdict


__all__ = ["POLICY_CHECK", "load_policy", "require"]
