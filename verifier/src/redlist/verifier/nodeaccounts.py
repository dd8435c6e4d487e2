"""The node's account figures against the audit's: every account, or a random sample.

``AccountChecker`` asks ``GetAccount`` for the accounts ``accounts_to_check`` picks
(all of them up to a bound, above it a random sample drawn from the operating
system's random source, so the node cannot tell which will be asked) and compares
each answer with the figures the audit recomputed (``compare_account``). Each
account is read page by page (``NodeClient.account_pages``) and reduced as its pages
come to a ``NodeAnswer``: the figures, the checkpoint they are at, and what the listed
awards and redemptions add up to, so memory stays bounded by a page however long an
account's history. A node that has grown since the audited checkpoint answers at a
later one: that checkpoint must verify and extend the audited one, and the award and
redemption list it sends must add up to the recomputed figures at the audited size
(``figures_at``) and to its own figures at its size. Any difference, and pages that
disagree with each other, is a ``VerificationError`` with the check ``account-view``
(or ``consistency`` for a checkpoint that shows another history).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NoReturn

from redlist.ledger.entry import TownConfig
from redlist.ledger.errors import FormatError, NoteError, VerificationError
from redlist.ledger.note.checkpoint import SignedCheckpoint, open_checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.proto.client import NodeClient, RemoteAccount, RemoteEntry
from redlist.verifier.nodehistory import RANDOM, PinnedHead, check_extends, evidence
from redlist.verifier.results import AccountSummary, AuditResult

#: Accounts asked with GetAccount when the log has more than this many: a random sample.
DEFAULT_ACCOUNT_BOUND = 1000
#: Accounts read at once (each a page at a time).
ACCOUNT_WORKERS = 8
#: Accounts asked per round (bounds the answers held in memory at once).
_ACCOUNT_BATCH = 256


def accounts_to_check(
    result: AuditResult, bound: int | None, extra: Sequence[str]
) -> tuple[list[str], int]:
    """The accounts to ask about (all, or a random sample above ``bound``), and how many
    the log mentions."""
    known = sorted(result.accounts)
    chosen = (
        set(known) if bound is None or len(known) <= bound else set(RANDOM.sample(known, bound))
    )
    chosen.update(extra)
    return sorted(chosen), len(known)


class AccountChecker:
    """Asks the node for accounts and compares its answers with the audit's figures."""

    def __init__(
        self,
        client: NodeClient,
        log_key: VerifierKey,
        checkpoint: SignedCheckpoint,
        result: AuditResult,
    ) -> None:
        self._client = client
        self._log_key = log_key
        self._checkpoint = checkpoint
        self._result = result
        # Later checkpoints already proven to extend the audited one, by size.
        self._later: dict[int, SignedCheckpoint] = {}

    def check_all(self, accounts: Sequence[str]) -> int:
        """Check every account (the first bad one raises); how many came at a later size."""
        config = self._result.config
        if config is None or not accounts:
            return 0
        later = 0
        with ThreadPoolExecutor(ACCOUNT_WORKERS, thread_name_prefix="redlist-account") as pool:
            for begin in range(0, len(accounts), _ACCOUNT_BATCH):
                batch = accounts[begin : begin + _ACCOUNT_BATCH]
                for account, answer in zip(batch, pool.map(self._read, batch), strict=True):
                    self._check_extends(account, answer)
                    expected = self._result.accounts.get(account) or _untouched(config)
                    compare_account(account, answer, expected, config, self._checkpoint.size)
                    later += answer.at.size > self._checkpoint.size
        return later

    def _read(self, account: str) -> NodeAnswer:
        """The node's answer for ``account``, read page by page (on a worker thread)."""
        pages = self._client.account_pages(account)
        try:
            first = next(pages)
            try:
                at = open_checkpoint(first.checkpoint, self._log_key)
            except NoteError as exc:
                raise VerificationError(
                    "account-view",
                    f"the node's figures for account {account} come with a checkpoint that "
                    f"does not verify: {exc}",
                ) from None
            return NodeAnswer.read(account, first, pages, at, self._checkpoint.size)
        except FormatError as exc:  # pages that disagree (redlist.proto.errors.WireError)
            raise VerificationError("account-view", f"account {account}: {exc}") from None
        finally:
            pages.close()

    def _check_extends(self, account: str, answer: NodeAnswer) -> None:
        """The checkpoint the node's figures are at must extend the audited one."""
        at = answer.at
        audited = self._checkpoint
        if at.size < audited.size:
            raise VerificationError(
                "account-view",
                f"the node's figures for account {account} are as of {at.size} entries, "
                f"older than the {audited.size} entries it signed before",
            )
        pin = PinnedHead(audited, "the audit")
        if at.size == audited.size:
            if at.root != audited.root:
                raise VerificationError(
                    "consistency",
                    f"the node's figures for account {account} come with a checkpoint of "
                    f"{at.size} entries whose root differs from the audited one: the node "
                    "shows two histories" + evidence(pin, at),
                )
            return
        known = self._later.get(at.size)
        if known is None:
            check_extends(self._client, pin, at)
            self._later[at.size] = at
        elif known.root != at.root:
            earlier = PinnedHead(known, "an earlier answer of the node")
            raise VerificationError(
                "consistency",
                f"the node answered with two checkpoints of {at.size} entries with different "
                f"roots (the second with account {account}): it shows two histories"
                + evidence(earlier, at),
            )


@dataclass(frozen=True)
class NodeAnswer:
    """What the node said about an account, reduced from its pages.

    ``view`` holds the figures and checkpoint text (its entries are not kept), ``at``
    that checkpoint, verified. ``audited`` and ``stated`` are the earned and redeemed
    points the listed awards and redemptions add up to at the audited size and at
    ``at``'s size (``figures_at``).
    """

    view: RemoteAccount
    at: SignedCheckpoint
    audited: tuple[int, int]
    stated: tuple[int, int]

    @classmethod
    def read(
        cls,
        account: str,
        first: RemoteAccount,
        rest: Iterable[RemoteAccount],
        at: SignedCheckpoint,
        audited_size: int,
    ) -> NodeAnswer:
        """The answer whose pages are ``first`` and ``rest``, at the verified checkpoint
        ``at``. A listed entry that is not an award or redemption below ``at``'s size is
        an ``account-view`` error."""
        audited = [0, 0]
        stated = [0, 0]
        for page in itertools.chain((first,), rest):
            for entry in page.entries:
                if entry.kind not in ("award", "redeem") or entry.seq >= at.size:
                    _account_error(
                        account,
                        f"the node lists a {entry.kind!r} entry {entry.seq} that is not an "
                        f"award or redemption of its log of {at.size} entries",
                    )
                _count(audited, entry, audited_size)
                _count(stated, entry, at.size)
        return cls(
            view=RemoteAccount(
                first.account,
                first.score,
                first.spendable,
                first.redeemed,
                first.earned,
                first.grade,
                (),
                first.checkpoint,
            ),
            at=at,
            audited=(audited[0], audited[1]),
            stated=(stated[0], stated[1]),
        )


def compare_account(
    account: str,
    answer: NodeAnswer,
    expected: AccountSummary,
    config: TownConfig,
    audited_size: int,
) -> None:
    """Compare the node's figures for ``account`` with the recomputed ``expected`` ones.

    ``answer.at`` (verified, extending the audited tree of ``audited_size``) is what
    the node says its figures are at. At the audited size the figures must be equal;
    at a later size the award and redemption list must add up to ``expected`` below
    ``audited_size``, and to the node's own figures at its size.
    """
    view = answer.view
    if view.account not in ("", account):
        _account_error(account, f"the node answered for account {view.account!r} instead")
    if answer.at.size == audited_size:
        stated = (view.score, view.spendable, view.redeemed, view.earned, view.grade)
        computed = (
            expected.score,
            expected.spendable,
            expected.redeemed,
            expected.earned,
            expected.grade,
        )
        if stated != computed:
            _account_error(
                account,
                f"the node says {_figures(*stated)}; its log gives {_figures(*computed)}",
            )
    earned, redeemed = answer.audited
    if (earned, redeemed) != (expected.earned, expected.redeemed):
        _account_error(
            account,
            f"the awards and redemptions the node lists add up to {earned} earned and "
            f"{redeemed} redeemed points at entry {audited_size}; its log gives "
            f"{expected.earned} and {expected.redeemed}",
        )
    earned, redeemed = answer.stated
    score = config.base + earned
    listed = (score, earned - redeemed, redeemed, earned, config.grade_of(score))
    said = (view.score, view.spendable, view.redeemed, view.earned, view.grade)
    if said != listed:
        _account_error(
            account,
            f"the node says {_figures(*said)}, but the entries it lists give {_figures(*listed)}",
        )


def figures_at(entries: Iterable[RemoteEntry], size: int) -> tuple[int, int]:
    """Earned and redeemed points from an account's award and redemption list, counting
    only entries below ``size`` and reversals below ``size`` (DESIGN 3.4)."""
    totals = [0, 0]
    for entry in entries:
        _count(totals, entry, size)
    return totals[0], totals[1]


def _count(totals: list[int], entry: RemoteEntry, size: int) -> None:
    """Add ``entry`` to ``totals`` (earned, redeemed) as it stood at tree size ``size``."""
    if entry.seq >= size or (entry.reversed_by is not None and entry.reversed_by < size):
        return
    totals[0 if entry.kind == "award" else 1] += entry.points


def _untouched(config: TownConfig) -> AccountSummary:
    return AccountSummary(config.base, 0, 0, 0, config.grade_of(config.base), 0)


def _figures(score: int, spendable: int, redeemed: int, earned: int, grade: str) -> str:
    return (
        f"score {score} (grade {grade}), spendable {spendable}, redeemed {redeemed}, "
        f"earned {earned}"
    )


def _account_error(account: str, message: str) -> NoReturn:
    raise VerificationError("account-view", f"account {account}: {message}")


__all__ = [
    "ACCOUNT_WORKERS",
    "DEFAULT_ACCOUNT_BOUND",
    "AccountChecker",
    "NodeAnswer",
    "accounts_to_check",
    "compare_account",
    "figures_at",
]
