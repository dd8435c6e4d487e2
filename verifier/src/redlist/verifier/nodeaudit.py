"""Auditing a live node: its log streamed over gRPC and audited like a bundle, then its
answers (account figures, Merkle proofs) checked against the verifier's own results.

This module runs the steps; ``nodesource`` streams the leaves, ``nodehistory`` checks
proofs and pinned checkpoints, ``nodeaccounts`` the account figures.

``verify_node`` runs these steps, in this order, and trusts nothing the node says:

1. ``GetCheckpoint``, verified with the log key before anything else is asked.
2. With a checkpoint pinned by an earlier run: a smaller tree is a rollback, the same
   size with another root a fork, and otherwise the node's consistency proof from the
   pinned size must verify. A rewritten history is refused here, before any leaf is
   read, and the message quotes both signed checkpoints as evidence.
3. The leaves ``[start, size)`` of *that* checkpoint (not of whatever size the node has
   grown to meanwhile), fed to the same ``Auditor`` as a bundle's. ``start`` is 0, or
   the pinned size when the run resumes from the semantics state saved by the earlier
   run (``statefile``): then only the new leaves are fetched, and still every rule and
   balance is checked, because the audit starts from the state it had verified.
4. Inclusion proofs for a few of the fetched entries (the first, the last and random
   ones), verified against the checkpoint's root. Without a pin, also a consistency
   proof from a random earlier size, verified against the root this audit computed.
5. ``GetAccount`` for every account the log mentions; above ``account_bound`` accounts,
   for a random sample of that many (drawn from the operating system's random source,
   so the node cannot tell which accounts will be asked). The node's score, spendable,
   redeemed and earned points and grade must equal the recomputed ones. A node that
   has grown since step 1 answers at a later checkpoint: that checkpoint must verify
   and extend the audited one, and the award and redemption list it sends must add up
   to the recomputed figures at the audited size (and to its own figures at its size).

Any defect is a ``VerificationError`` (exit 1) naming the entry or the account and the
check (``account-view``, ``inclusion``, ``consistency``, ``rollback`` or an audit check).
A node that cannot be reached or refuses a call is a ``SourceError`` (exit 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redlist.ledger.errors import FormatError, VerificationError
from redlist.ledger.i18n import _
from redlist.ledger.note.keys import VerifierKey
from redlist.ledger.tables import wrap_text
from redlist.proto.client import NodeClient
from redlist.verifier.audit import Auditor
from redlist.verifier.failure import AuditFailed, Failure, checked_after
from redlist.verifier.nodeaccounts import DEFAULT_ACCOUNT_BOUND, AccountChecker, accounts_to_check
from redlist.verifier.nodehistory import (
    RANDOM,
    LeafObserver,
    PinnedHead,
    check_consistency_sample,
    check_extends,
    check_inclusion,
    sample_range,
)
from redlist.verifier.nodesource import NodeSource
from redlist.verifier.results import AuditResult, ResumePoint, TrustedHead
from redlist.verifier.source import Progress, feed_leaves

#: Entries whose inclusion proof is asked for (the first and last fetched among them).
DEFAULT_INCLUSION_SAMPLES = 4


@dataclass(frozen=True)
class NodeAudit:
    """What ``verify_node`` established, beyond the audit result itself."""

    address: str
    result: AuditResult
    #: Where a later run can resume from (save it with ``statefile.save_semantics``).
    resume_point: ResumePoint
    #: The pinned size this run resumed from, or None for a run from entry 0.
    resumed_from: int | None
    #: Why a pinned state was not resumed from, when it was not.
    fallback: str | None
    leaves_fetched: int
    #: The earlier tree size a consistency proof was verified from, if any.
    consistency_from: int | None
    inclusion_checked: tuple[int, ...]
    accounts_total: int
    accounts_checked: int
    #: Accounts the node answered at a checkpoint later than the audited one.
    accounts_later: int

    @property
    def sampled(self) -> bool:
        return self.accounts_checked < self.accounts_total

    def summary_lines(self, width: int = 88) -> list[str]:
        """What was checked against the node, in plain words, for the human report."""
        wrapped: list[str] = []
        for sentence in self._sentences():
            wrapped.extend(
                wrap_text(sentence.strip(), width, initial_indent="  ", subsequent_indent="    ")
            )
        return wrapped

    def _sentences(self) -> list[str]:
        lines = [
            _("Node {address}: fetched {count} entries.").format(
                address=self.address, count=f"{self.leaves_fetched:,}"
            )
        ]
        if self.resumed_from is not None:
            lines.append(
                "  "
                + _(
                    "Resumed from the {resumed_from:,} entries verified by the "
                    "earlier run (state file); only the entries after them were "
                    "fetched and checked."
                ).format(resumed_from=self.resumed_from)
            )
        elif self.fallback is not None:
            lines.append(
                "  " + _("Checked from entry 0: {fallback}.").format(fallback=self.fallback)
            )
        if self.consistency_from is not None:
            lines.append(
                "  "
                + _(
                    "The node's consistency proof from {consistency_from:,} "
                    "entries to {tree_size:,} verifies."
                ).format(consistency_from=self.consistency_from, tree_size=self.result.tree_size)
            )
        if self.inclusion_checked:
            seqs = _(", ").join(str(seq) for seq in self.inclusion_checked)
            lines.append(
                "  " + _("The node's inclusion proofs for entries {seqs} verify.").format(seqs=seqs)
            )
        if self.accounts_total:
            which = (
                _("a random sample of {checked} of the {total} accounts").format(
                    checked=f"{self.accounts_checked:,}", total=f"{self.accounts_total:,}"
                )
                if self.sampled
                else _("all {checked} accounts").format(checked=f"{self.accounts_checked:,}")
            )
            lines.append(
                "  "
                + _(
                    "The node's figures for {which} match the recomputed ones "
                    "(score, spendable, redeemed, grade)."
                ).format(which=which)
            )
            if self.accounts_later:
                lines.append(
                    "  "
                    + _(
                        "{accounts_later:,} of them were answered at a later "
                        "checkpoint (the node grew meanwhile); they were "
                        "compared at the audited size."
                    ).format(accounts_later=self.accounts_later)
                )
        return lines

    def to_json(self) -> dict[str, Any]:
        """The ``node`` member of the ``--json`` object."""
        return {
            "address": self.address,
            "resumed_from": self.resumed_from,
            "fallback": self.fallback,
            "leaves_fetched": self.leaves_fetched,
            "consistency_from": self.consistency_from,
            "inclusion_checked": list(self.inclusion_checked),
            "accounts_total": self.accounts_total,
            "accounts_checked": self.accounts_checked,
            "accounts_sampled": self.sampled,
            "accounts_at_later_checkpoint": self.accounts_later,
        }


def verify_node(
    client: NodeClient,
    log_key: VerifierKey,
    *,
    pinned: PinnedHead | None = None,
    resume: ResumePoint | None = None,
    fallback: str | None = None,
    keep_statements_for: str | None = None,
    account_bound: int | None = DEFAULT_ACCOUNT_BOUND,
    extra_accounts: Sequence[str] = (),
    inclusion_samples: int = DEFAULT_INCLUSION_SAMPLES,
    workers: int | None = None,
    progress: Progress | None = None,
) -> NodeAudit:
    """Audit the node behind ``client`` (see the module docstring for the steps).

    ``resume`` (a snapshot at ``pinned.size``) makes the run incremental; a statement
    for ``keep_statements_for`` then covers only the entries fetched. ``account_bound``
    None asks every account; ``extra_accounts`` are asked in any case.
    """
    if resume is not None and (pinned is None or resume.size != pinned.size):
        resume, fallback = None, "the saved state is not of the pinned checkpoint"
    start = resume.size if resume is not None else 0
    source = NodeSource(client, start=start)
    checkpoint = source.fetch_checkpoint(log_key)
    consistency_from = None
    if pinned is not None:  # also catches a log smaller than where a resumed run starts
        check_extends(client, pinned, checkpoint)
        if checkpoint.size > pinned.size:  # equal sizes need no proof, only equal roots
            consistency_from = pinned.size
    trusted = (TrustedHead(pinned.size, pinned.root, pinned.source),) if pinned else ()
    inclusion_seqs = sample_range(start, checkpoint.size, inclusion_samples)
    sample_size = None
    if pinned is None and checkpoint.size >= 2:
        sample_size = RANDOM.randrange(1, checkpoint.size)
    observer = LeafObserver(inclusion_seqs, sample_size)
    auditor = Auditor(
        log_key, keep_statements_for=keep_statements_for, resume=resume, trusted=trusted
    )
    total = checkpoint.size - start
    try:
        auditor.check_checkpoint(checkpoint)
        leaves = source.leaves()
        try:
            done = feed_leaves(
                auditor,
                observer.watch(start, leaves),
                total=total,
                workers=workers,
                progress=progress,
            )
        except FormatError as exc:
            raise auditor.fail_at_next("seq", str(exc)) from None
        finally:
            leaves.close()  # stops the reader thread when the audit stops early
        result = auditor.finish(checkpoint)
    except AuditFailed:
        raise
    except VerificationError as error:
        raise AuditFailed(auditor.explain(error)) from None
    resume_point = auditor.resume_point()
    if progress is not None:
        progress(done, total)
    passed: list[str] = []
    try:
        check_inclusion(client, checkpoint, observer.leaf_hashes)
        passed.append("inclusion")
        if sample_size is not None and observer.sample_root is not None:
            check_consistency_sample(client, checkpoint, sample_size, observer.sample_root)
            consistency_from = sample_size
        passed.append("consistency")
        accounts, total_accounts = accounts_to_check(result, account_bound, extra_accounts)
        checker = AccountChecker(client, log_key, checkpoint, result)
        later = checker.check_all(accounts)
    except AuditFailed:
        raise
    except VerificationError as error:
        raise AuditFailed(Failure(error, checked_after(result, *passed))) from None
    return NodeAudit(
        address=client.address,
        result=result,
        resume_point=resume_point,
        resumed_from=resume.size if resume is not None else None,
        fallback=fallback,
        leaves_fetched=done,
        consistency_from=consistency_from,
        inclusion_checked=tuple(sorted(observer.leaf_hashes)),
        accounts_total=total_accounts,
        accounts_checked=len(accounts),
        accounts_later=later,
    )


__all__ = [
    "DEFAULT_ACCOUNT_BOUND",
    "DEFAULT_INCLUSION_SAMPLES",
    "NodeAudit",
    "PinnedHead",
    "verify_node",
]
