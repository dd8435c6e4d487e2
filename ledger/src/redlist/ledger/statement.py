"""An account's statement: its balances and every award and redemption, as values.

``Log.account`` reads the records in one snapshot (the account's balance, the
seqs of its entries, their target records and leaves, and the latest checkpoint)
and builds the statement here; the node serves it as ``GetAccount``. Pure: no
I/O, nothing read twice.

The points of an award come from its target record (the rule's points at the
time of the award times its quantity), not from today's catalogue, because a
rule may be set again with other points later. Score and grade come from the
balance (``Balance.score``, ``Balance.grade``), the one place they are computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redlist.ledger.entry import Award, Envelope, Leaf, Redeem, TownConfig, decode_body
from redlist.ledger.errors import IntegrityError
from redlist.ledger.state import Balance, TargetRecord


@dataclass(frozen=True)
class StatementEntry:
    """One award or redemption of an account (see the ``AccountEntry`` message)."""

    seq: int
    time: int
    kind: str
    rule: str
    points: int
    reversed_by: int | None
    qty: int
    note: str
    item: str
    at: int

    @classmethod
    def from_leaf(cls, seq: int, leaf: bytes, target: TargetRecord) -> StatementEntry:
        """The entry of leaf ``seq``, an award or redemption whose record is ``target``."""
        decoded = Leaf.from_bytes(leaf)
        body = decode_body(Envelope.from_bytes(decoded.envelope).body)
        points, reversed_by = target.points, target.reversed_by
        if isinstance(body, Award):
            note = body.note or ""
            return cls(
                seq,
                decoded.time,
                "award",
                body.rule,
                points,
                reversed_by,
                body.qty,
                note,
                "",
                body.at,
            )
        if isinstance(body, Redeem):
            return cls(
                seq, decoded.time, "redeem", "", points, reversed_by, 0, "", body.item, body.at
            )
        raise IntegrityError(
            f"entry {seq} is recorded as an award or redemption but is a {body.kind} entry", seq
        )


@dataclass(frozen=True)
class AccountStatement:
    """An account's balances (DESIGN 3.4), its entries, and the checkpoint they are at."""

    account: str
    earned: int
    redeemed: int
    spendable: int
    score: int
    grade: str
    entries: tuple[StatementEntry, ...]
    checkpoint: str

    @classmethod
    def of(
        cls,
        account: str,
        balance: Balance,
        config: TownConfig,
        entries: Iterable[StatementEntry],
        checkpoint: str,
    ) -> AccountStatement:
        """The statement of ``account`` from its balance, under the town's ``config``."""
        return cls(
            account=account,
            earned=balance.earned,
            redeemed=balance.redeemed,
            spendable=balance.spendable,
            score=balance.score(config),
            grade=balance.grade(config),
            entries=tuple(entries),
            checkpoint=checkpoint,
        )
