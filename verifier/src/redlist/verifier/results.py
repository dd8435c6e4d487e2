"""What an audit establishes, and what it takes from an earlier one.

The values the ``Auditor`` returns (``AuditResult`` with its ``AccountSummary`` and
``StatementLine`` records), the ones it is given (``TrustedHead``, ``ResumePoint``),
and ``CHECKS``, every check an audit can fail, by the identifier its errors carry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from redlist.ledger import merkle, validator
from redlist.ledger.entry import TownConfig
from redlist.ledger.frozen import builder
from redlist.ledger.i18n import N_
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.state import Balances, MemoryState

#: Every check an audit can fail, by identifier: the validator's (format, chain, the
#: points rules) and those of the checkpoint, the bundle and the node's answers.
CHECKS: Mapping[str, str] = {
    **validator.CHECKS,
    "size": "the checkpoint's tree size must equal the number of entries",
    "root": "the Merkle root of the entries must equal the checkpoint's root",
    "checkpoint": "the checkpoint must be signed by the log key, for this log",
    "manifest": "the bundle's manifest must agree with its checkpoint",
    "left": "a bundle's left file must be the compact range of the entries before it",
    "previous-checkpoint": "a bundle's previous checkpoint must be signed by the log key",
    "consistency": "a new checkpoint must extend every checkpoint verified before",
    "rollback": "a log never shrinks below a size verified before",
    "account-view": "a node's figures for an account must equal those recomputed from its log",
    "inclusion": "a node's inclusion proofs must put its entries in the tree it signed",
    "witness-policy": "the checkpoint must carry the witness cosignatures the policy requires",
    "month": "a monthly bundle holds the entries of one month, following those verified before",
    "publicity": "publicity.csv must list the entries as they are, with masked names",
}

#: ``TrustedHead.source`` of the head pinned by an earlier run (see ``statefile``):
#: a log smaller than it was rolled back.
STATE_FILE_SOURCE = N_("the state file")


@dataclass(frozen=True)
class TrustedHead:
    """A tree size and root known from elsewhere, which the audited log must extend.

    ``source`` says where it came from, for messages ("the state file",
    "previous-checkpoint").
    """

    size: int
    root: bytes
    source: str


@dataclass(frozen=True)
class ResumePoint:
    """Where a full audit stopped (after at least one entry), to check later entries only.

    ``state`` is the points semantics' state after entry ``size - 1``, ``tree`` the
    compact range of the leaves ``[0, size)``, ``last_leaf_hash`` and ``last_time``
    the last entry's leaf hash and node time. An auditor resuming from it takes
    ``state`` over and changes it as it goes.
    """

    tree: merkle.CompactRange
    last_leaf_hash: bytes
    last_time: int
    state: MemoryState

    @property
    def size(self) -> int:
        return self.tree.end


@dataclass(frozen=True)
class AccountSummary:
    """An account's balances as recomputed from the log (DESIGN 3.4)."""

    score: int
    earned: int
    spendable: int
    redeemed: int
    grade: str
    entries: int


# One is made for every account a report shows: built without ``__init__`` (``frozen``).
_build_summary = builder(AccountSummary)


class AccountSummaries(Mapping[str, AccountSummary]):
    """account -> ``AccountSummary``, in the order of the account ids, made on reading.

    It holds the balances (a ``Balances.snapshot``, arrays of a few bytes an account)
    and the ids in order, not a summary object per account: a county's half a million
    residents would otherwise add some 200 bytes each to an audit's peak.
    """

    def __init__(self, balances: Balances, config: TownConfig) -> None:
        self._balances = balances
        self._config = config
        self._order = sorted(balances)

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __contains__(self, account: object) -> bool:
        return account in self._balances

    def __getitem__(self, account: str) -> AccountSummary:
        balance = self._balances[account]
        score = balance.score(self._config)
        return _build_summary(
            score,
            balance.earned,
            balance.spendable,
            balance.redeemed,
            self._config.grade_of(score),
            balance.entries,
        )

    def __repr__(self) -> str:
        return f"AccountSummaries({len(self)} accounts)"


@dataclass(frozen=True)
class StatementLine:
    """One entry that touched an account, and the account's totals after it.

    ``points`` is the change to earned points, ``redeemed`` the change to redeemed
    points (negative when a redemption is reversed); ``time`` is the node's time (ms).
    """

    seq: int
    time: int
    kind: str
    rule: str | None
    points: int
    redeemed: int
    signers: tuple[str, ...]
    target: int | None
    score: int
    spendable: int


@dataclass(frozen=True)
class AuditResult:
    """What a successful audit established."""

    #: The checkpoint the entries were checked against (its note exactly as verified).
    checkpoint: SignedCheckpoint
    start: int
    #: Signatures, roles and balances were recomputed (only when ``start == 0``).
    balances_recomputed: bool
    #: The first entry's ``prev`` was checked (always when ``start == 0``).
    first_prev_checked: bool
    signatures_checked: int
    staff_keys: int
    rules: int
    config: TownConfig | None
    accounts: Mapping[str, AccountSummary]
    #: The statement of ``keep_statements_for``, or None when not asked or not recomputed.
    statement: tuple[StatementLine, ...] | None
    trusted_heads: tuple[TrustedHead, ...] = ()

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def tree_size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root

    @property
    def entries(self) -> int:
        """How many entries were checked."""
        return self.checkpoint.size - self.start


__all__ = [
    "CHECKS",
    "STATE_FILE_SOURCE",
    "AccountSummaries",
    "AccountSummary",
    "AuditResult",
    "ResumePoint",
    "StatementLine",
    "TrustedHead",
]
