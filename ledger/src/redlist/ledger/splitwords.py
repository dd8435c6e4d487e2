"""What split-view evidence proves, in the reader's language (``witness.SplitProof``).

The pure core says it in English (a witness's refusal, a node's log); the commands
that show it to people (``redlist-verify evidence``, ``redlist-node alarms``) say it
with these words, translated like the rest of their output.
"""

from __future__ import annotations

from redlist.ledger.i18n import _
from redlist.ledger.witness import SplitProof


def proof_words(proof: SplitProof) -> str:
    """``proof`` as one clause, translated."""
    if proof.earlier == proof.later:
        return _(
            "two checkpoints of size {size} with different roots: the log shows two histories"
        ).format(size=proof.later)
    return _(
        "the log's tree of {later} entries does not extend the tree of {earlier} entries "
        "it signed before: the log rewrote its history or shows two histories"
    ).format(later=proof.later, earlier=proof.earlier)


__all__ = ["proof_words"]
