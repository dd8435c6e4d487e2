"""An account's statement: its balances and every award and redemption, from one snapshot.

``GetAccount`` promises figures "as of" a checkpoint, so balances, entries and the
checkpoint are read in a single read transaction. The points of an award are
taken from the store's target record (the rule's points at the time of the award
times its quantity), not recomputed from today's catalogue, because a rule may be
set again with other points later.
"""

from __future__ import annotations

from dataclasses import dataclass

from redlist.ledger.entry import Award, Envelope, Leaf, Redeem, decode_body, is_valid_account
from redlist.ledger.errors import FormatError, IntegrityError
from redlist.ledger.log import Log


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


def read_statement(log: Log, account: str) -> AccountStatement:
    """The statement of ``account``; an account no entry mentions has the base score.

    Raises ``FormatError`` for an account id of the wrong shape.
    """
    if not is_valid_account(account):
        raise FormatError(
            f"account id {account!r} is not valid (letters, digits, '.', '_', '-'; 1-64 "
            "characters, starting with a letter or digit)"
        )
    with log.snapshot() as reader:
        state = reader.state()
        config = state.config()
        if config is None:
            raise IntegrityError("the log's town configuration is missing from the store")
        balance = state.balance(account)
        checkpoint = reader.checkpoint()
        entries: list[StatementEntry] = []
        for seq in reader.account_seqs(account):
            target = state.target(seq)
            if target is None:
                continue  # an objection or a reversal: not an award or redemption itself
            stored = reader.leaf(seq)
            if stored is None:
                raise IntegrityError(f"leaf {seq} is missing from the store", seq)
            entries.append(_entry(seq, stored, target.points, target.reversed_by))
    score = balance.score(config)
    return AccountStatement(
        account=account,
        earned=balance.earned,
        redeemed=balance.redeemed,
        spendable=balance.spendable,
        score=score,
        grade=config.grade_of(score),
        entries=tuple(entries),
        checkpoint=checkpoint,
    )


def _entry(seq: int, stored: bytes, points: int, reversed_by: int | None) -> StatementEntry:
    leaf = Leaf.from_bytes(stored)
    body = decode_body(Envelope.from_bytes(leaf.envelope).body)
    if isinstance(body, Award):
        return StatementEntry(
            seq,
            leaf.time,
            "award",
            body.rule,
            points,
            reversed_by,
            body.qty,
            body.note or "",
            "",
            body.at,
        )
    if isinstance(body, Redeem):
        return StatementEntry(
            seq, leaf.time, "redeem", "", points, reversed_by, 0, "", body.item, body.at
        )
    raise IntegrityError(
        f"entry {seq} is recorded as an award or redemption but is a {body.kind} entry", seq
    )
