"""A node's checkpoint held to the auditor's witness policy, allowing for the witnesses' pace.

A node asks its witnesses to cosign each new checkpoint in the background, every few
seconds (``redlist-node serve --ask-witness``): an audit that reaches the newest
checkpoint just after a commit finds it signed by the log alone. Failing then would
send the auditor to the county for nothing. So when the audited checkpoint lacks
cosignatures the policy needs (not when one does not verify), the node is asked for
its newest checkpoint again, ``TRIES`` times ``PAUSE_S`` apart; once the same
checkpoint (same log, size and root, signed by the log key) comes back carrying
enough cosignatures, it stands in for the audited one. If the log grew meanwhile, or
the witnesses stay silent, the audit fails with check ``witness-policy``, its report
saying what the audit itself established.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TextIO

from redlist.ledger.errors import NoteError, VerificationError
from redlist.ledger.i18n import _
from redlist.ledger.note.checkpoint import SignedCheckpoint, open_checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.policy import Policy, PolicyVerdict, evaluate
from redlist.proto.client import NodeClient
from redlist.verifier.failure import AuditFailed, Failure, checked_after
from redlist.verifier.launch import PROGRAM
from redlist.verifier.results import AuditResult
from redlist.verifier.witnesses import require

#: Times the node is asked again for a checkpoint its witnesses have not cosigned yet.
TRIES = 5
#: Seconds between two asks (a node asks its witnesses every second by default).
PAUSE_S = 2.0


def await_witnesses(
    client: NodeClient,
    log_key: VerifierKey,
    policy: Policy,
    result: AuditResult,
    stderr: TextIO,
) -> tuple[AuditResult, PolicyVerdict]:
    """The audit ``result`` with a checkpoint that meets ``policy``, and the verdict;
    ``AuditFailed`` (check ``witness-policy``) when none comes (see the module)."""
    tries, pause_s = TRIES, PAUSE_S
    checkpoint = result.checkpoint
    for attempt in range(tries + 1):
        if _met(policy, checkpoint) or attempt == tries:
            break
        if attempt == 0:
            stderr.write(
                _(
                    "{program}: note: the checkpoint of size {size} is not yet confirmed "
                    "by the witnesses the policy requires; asking the node again for up "
                    "to {seconds} seconds"
                ).format(program=PROGRAM, size=checkpoint.size, seconds=round(tries * pause_s))
                + "\n"
            )
        time.sleep(pause_s)
        again = _same_checkpoint(client, log_key, checkpoint)
        if again is None:
            break  # the log grew: its newest checkpoint is not the one audited
        checkpoint = again
    try:
        verdict = require(policy, checkpoint)
    except VerificationError as error:
        raise AuditFailed(Failure(error, checked_after(result))) from None
    return dataclasses.replace(result, checkpoint=checkpoint), verdict


def _met(policy: Policy, checkpoint: SignedCheckpoint) -> bool:
    try:
        return evaluate(policy, checkpoint).met
    except NoteError:
        return True  # a cosignature that does not verify: ``require`` fails it at once


def _same_checkpoint(
    client: NodeClient, log_key: VerifierKey, audited: SignedCheckpoint
) -> SignedCheckpoint | None:
    """The node's newest checkpoint if it is ``audited`` (perhaps with more cosignature
    lines), verified with ``log_key``; None if it is another one or does not verify."""
    try:
        newest = open_checkpoint(client.get_checkpoint(), log_key)
    except NoteError:
        return None
    return newest if newest.checkpoint.to_text() == audited.checkpoint.to_text() else None


__all__ = ["PAUSE_S", "TRIES", "await_witnesses"]
