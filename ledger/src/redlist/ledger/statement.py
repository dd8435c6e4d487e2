"""An account's statement: its balances and its awards and redemptions, a page at a time.

``Log.account`` reads the records of one page in one snapshot (the account's
balance, the seqs of its entries, their target records and leaves, and the
checkpoint) and builds the statement here; the node serves it as ``GetAccount``.
Pure: no I/O, nothing read twice.

Pages (``PageToken``). A read of an account is of one tree size, the *snapshot
size*: the log's size when its first page was read. Every page states the
balances and checkpoint at that size and lists the account's entries below it, in
seq order, each page after the last seq of the page before; the token that asks
for the next page carries both numbers. When the log has grown since, the later
pages take the balance back to the snapshot size (``balance_as_of``: the awards,
redemptions and reversals since are undone) and list an entry reversed since as
not reversed (``StatementEntry.as_of``), so every page describes one state. A page
holds at most ``page_entries(page_size)`` entries and stops before its leaves pass
``PAGE_BYTES`` (an entry's leaf is at least as large as what the page says of it),
but always holds one entry when any is left: memory per page is bounded however
long the account's history and however large its notes.

A token is not secret and not signed: what it asks for is public (the log's own
entries at a checkpoint it signed). The node checks that it is well formed, was
issued for this account, and names a tree size the log has a checkpoint for and an
award or redemption of the account below it; anything else is a
``PageTokenError``, never a page of something else.

The points of an award come from its target record (the rule's points at the
time of the award times its quantity), not from today's catalogue, because a
rule may be set again with other points later. Score and grade come from the
balance (``Balance.score``, ``Balance.grade``), the one place they are computed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace

from redlist.ledger.entry import Award, Envelope, Leaf, Redeem, Reverse, TownConfig, decode_body
from redlist.ledger.errors import FormatError, IntegrityError, PageTokenError
from redlist.ledger.state import Balance, TargetRecord

#: Entries in a page when the request asks for no particular number (page_size 0).
DEFAULT_PAGE_ENTRIES = 100
#: Most entries in one page: a larger page_size is served as this many, not refused.
MAX_PAGE_ENTRIES = 1000
#: A page stops before the leaves of its entries would pass this many bytes (it holds
#: at least one entry): with 64 KiB notes, about 16 entries.
PAGE_BYTES = 1024 * 1024

_TOKEN_VERSION = 1
_TOKEN_SIZE = 1 + 8 + 8 + 8
_TOKEN_TAG = b"redlist/account-page/v1\x00"


def page_entries(requested: int) -> int:
    """The entries a page holds at most when ``requested`` are asked for (0: the default)."""
    if requested <= 0:
        return DEFAULT_PAGE_ENTRIES
    return min(requested, MAX_PAGE_ENTRIES)


@dataclass(frozen=True)
class PageToken:
    """Where the next page of a read of an account starts, and the tree size it is of.

    Bytes (25): version ``0x01`` ‖ ``size`` ‖ ``after`` (each 8 bytes, big-endian) ‖
    the first 8 bytes of SHA-256(``"redlist/account-page/v1"`` ‖ 0x00 ‖ account).
    ``size`` is the snapshot size, ``after`` the seq of the last entry of the page
    before (the next page lists the entries after it).
    """

    size: int
    after: int
    account_tag: bytes

    @classmethod
    def of(cls, account: str, size: int, after: int) -> PageToken:
        return cls(size, after, _account_tag(account))

    def to_bytes(self) -> bytes:
        return (
            bytes([_TOKEN_VERSION])
            + self.size.to_bytes(8, "big")
            + self.after.to_bytes(8, "big")
            + self.account_tag
        )

    @classmethod
    def from_bytes(cls, data: bytes, account: str) -> PageToken:
        """The token ``data`` for a read of ``account``; ``PageTokenError`` if it is not
        a token or was issued for another account. Whether the log has its size and
        entry is for ``Log.account`` to check, in the snapshot it reads."""
        if len(data) != _TOKEN_SIZE or data[0] != _TOKEN_VERSION:
            raise PageTokenError(
                "the page token is not one this node issued: send the next_page_token of "
                "the page before unchanged, or no token for the first page"
            )
        token = cls(int.from_bytes(data[1:9], "big"), int.from_bytes(data[9:17], "big"), data[17:])
        if token.account_tag != _account_tag(account):
            raise PageTokenError(
                f"the page token was issued for a read of another account, not {account}"
            )
        if token.after >= token.size:
            raise PageTokenError(
                f"the page token continues after entry {token.after}, which is not below "
                f"its tree size {token.size}"
            )
        return token


def _account_tag(account: str) -> bytes:
    return hashlib.sha256(_TOKEN_TAG + account.encode("utf-8")).digest()[:8]


@dataclass(frozen=True)
class StatementEntry:
    """One award or redemption of an account (see the ``AccountEntry`` message).

    The log holds no free text (DESIGN 9.2): ``note`` and ``item`` are empty as read from
    the log, and ``text_commitment`` is the commitment the body holds for its note (an
    award's, optional) or item (a redemption's), ``entry_id`` the key its text is kept
    under. A node that may show the text to its reader fills it in (``with_text``).
    """

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
    entry_id: bytes = b""
    text_commitment: bytes | None = None
    #: An award's deed date (``YYYY-MM-DD``), empty for a redemption.
    date: str = ""
    #: An award the resident declared (``declared`` in its body), reviewed by the council.
    declared: bool = False

    @property
    def text_field(self) -> str:
        """The body field of this entry's text: ``note`` or ``item``."""
        return "note" if self.kind == "award" else "item"

    def with_text(self, text: str) -> StatementEntry:
        """This entry with its note or item text filled in."""
        if self.kind == "award":
            return replace(self, note=text)
        return replace(self, item=text)

    @classmethod
    def from_leaf(cls, seq: int, leaf: bytes, target: TargetRecord) -> StatementEntry:
        """The entry of leaf ``seq``, an award or redemption whose record is ``target``."""
        decoded = Leaf.from_bytes(leaf)
        body = decode_body(Envelope.from_bytes(decoded.envelope).body)
        points, reversed_by = target.points, target.reversed_by
        if isinstance(body, Award):
            return cls(
                seq,
                decoded.time,
                "award",
                body.rule,
                points,
                reversed_by,
                body.qty,
                "",
                "",
                body.at,
                body.id,
                body.note,
                date=body.date,
                declared=body.declared,
            )
        if isinstance(body, Redeem):
            return cls(
                seq,
                decoded.time,
                "redeem",
                "",
                points,
                reversed_by,
                0,
                "",
                "",
                body.at,
                body.id,
                body.item,
            )
        raise IntegrityError(
            f"entry {seq} is recorded as an award or redemption but is a {body.kind} entry", seq
        )

    @staticmethod
    def target_as_of(target: TargetRecord, size: int) -> TargetRecord:
        """``target`` as it stood in the tree of ``size`` entries: a reversal at or
        after ``size`` had not happened yet."""
        if target.reversed_by is not None and target.reversed_by >= size:
            return target._replace(reversed_by=None)
        return target


def balance_as_of(balance: Balance, later: Iterable[tuple[TargetRecord, bool]]) -> Balance:
    """The balance before the changes ``later`` (the account's awards, redemptions and
    reversals at or after some tree size, in any order) were made.

    Each change is the target record of an award or redemption and whether the change
    is its reversal (``True``) or the entry itself (``False``). Undone exactly as
    ``points`` applied them: an award added its points to ``earned``, a redemption to
    ``redeemed``, a reversal took them off again; each counted one entry.
    """
    earned, redeemed, entries = balance.earned, balance.redeemed, balance.entries
    for target, reversal in later:
        change = -target.points if reversal else target.points
        if target.kind == "award":
            earned -= change
        else:
            redeemed -= change
        entries -= 1
    return Balance(earned, redeemed, entries)


def reversal_target(seq: int, leaf: bytes) -> int | None:
    """The seq that leaf ``seq`` reverses, or None when it is not a ``reverse`` entry."""
    try:
        decoded = Leaf.from_bytes(leaf)
        body = decode_body(Envelope.from_bytes(decoded.envelope).body)
    except FormatError as exc:
        raise IntegrityError(f"entry {seq} in the store cannot be read: {exc}", seq) from None
    return body.target if isinstance(body, Reverse) else None


@dataclass(frozen=True)
class AccountStatement:
    """A page of an account's statement: its balances (DESIGN 3.4) and the checkpoint
    they are at, the entries of this page, and the token for the next page (empty on
    the last). ``texts_withheld``: the entries carry no free text (the reader may not
    see it, or the node keeps none); as read from the log, always true."""

    account: str
    earned: int
    redeemed: int
    spendable: int
    score: int
    grade: str
    entries: tuple[StatementEntry, ...]
    checkpoint: str
    next_page_token: bytes = b""
    texts_withheld: bool = True

    @classmethod
    def of(
        cls,
        account: str,
        balance: Balance,
        config: TownConfig,
        entries: Iterable[StatementEntry],
        checkpoint: str,
        next_page: PageToken | None = None,
    ) -> AccountStatement:
        """The statement of ``account`` from its balance, under the town's ``config``;
        ``next_page`` asks for the entries after these (None: this is the last page)."""
        return cls(
            account=account,
            earned=balance.earned,
            redeemed=balance.redeemed,
            spendable=balance.spendable,
            score=balance.score(config),
            grade=balance.grade(config),
            entries=tuple(entries),
            checkpoint=checkpoint,
            next_page_token=b"" if next_page is None else next_page.to_bytes(),
        )
