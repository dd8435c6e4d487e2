"""The accounts' entry lists, read: each account's entries walked back from its latest.

Part of the store's read view (``storeview.StoreReader.account_seqs`` and
``account_link`` read through it). The lists are stored newest first (ADR 0043): the
account's ``account_heads`` record names its latest linked entry, and each entry's
``account_links`` record names, per account it links, that account's previous one.
Every record read is checked (seal, seq, shape); one that fails raises
``StateDamageError`` naming it, which stops the store's writes like any damaged state.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import lmdb

from redlist.ledger.errors import StateDamageError
from redlist.ledger.storelayout import (
    INT_SIZE,
    NO_PREVIOUS,
    AccountLink,
    Tables,
    account_links_from_bytes,
    int_from_key,
    int_key,
    record_name,
    sealed_body,
    unseal,
)
from redlist.ledger.storestate import LmdbState

#: The fewest seqs ``AccountLists.seqs`` walks as one chunk (its docstring).
WALK_CHUNK = 1024


class AccountLists:
    """The entry lists of one transaction's snapshot."""

    def __init__(self, txn: lmdb.Transaction[bytes], tables: Tables, state: LmdbState) -> None:
        self._txn = txn
        self._tables = tables
        self._state = state

    def seqs(self, account: str, start: int) -> Iterator[int]:
        """The seqs of entries touching ``account`` from ``start`` on, in increasing order.

        This walks back from the latest entry to ``start``, so its cost is proportional
        to the account's entries from ``start`` on, however early the caller stops.
        Memory is bounded by walking twice: the first walk keeps every ``chunk``-th seq
        as a mark, ``chunk`` being ``WALK_CHUNK`` (1,024), or the square root of the
        account's count of links for an account of more than a million; the second
        walks from each mark down, oldest chunk first, and yields the chunk in
        increasing order. At most about ``2 × chunk`` seqs are held (2 × 1,024 up to a
        million entries), and no entry is read more than twice. An account whose
        entries from ``start`` on fit in one chunk is walked once.
        """
        head = self._state.link_head(account)
        if head is None or head[0] < start:
            return
        latest, count = head
        chunk = max(WALK_CHUNK, math.isqrt(count) + 1)
        marks: list[int] = []  # the newest seq of each full chunk, newest chunk first
        oldest: list[int] = []  # the chunk being walked, newest first
        for seq in self._walk(account, latest, start):
            if len(oldest) == chunk:
                marks.append(oldest[0])
                oldest = []
            oldest.append(seq)
        yield from reversed(oldest)
        for mark in reversed(marks):
            walked = list(itertools.islice(self._walk(account, mark, start), chunk))
            yield from reversed(walked)

    def _walk(self, account: str, seq: int, start: int) -> Iterator[int]:
        """``account``'s linked seqs from ``seq`` (one of them) back to ``start``,
        newest first."""
        get = self._txn.cursor(db=self._tables.account_links).get
        # An entry links one account, nearly always: its record is then exactly
        # ``single ‖ previous`` and its seq, read here without the general decoding.
        name = account.encode("utf-8")
        single = len(name).to_bytes(1, "big") + name
        previous_end = len(single) + INT_SIZE
        while seq >= start:
            yield seq
            key = int_key(seq)
            value = get(key)
            body = None if value is None else sealed_body("account_links", key, value)
            if body is not None and body[previous_end:] == key and body.startswith(single):
                previous = int_from_key(body[len(single) : previous_end])
                if previous == NO_PREVIOUS:
                    return
                if previous < seq:
                    seq = previous
                    continue
            link = self.link(account, seq)  # several accounts, or damage
            if link is None:
                raise StateDamageError(
                    "account_links",
                    record_name("account_links", key),
                    f"lacks account {account}, whose entry list leads to it",
                )
            if link.previous is None:
                return
            seq = link.previous

    def link(self, account: str, seq: int) -> AccountLink | None:
        """``account``'s link in entry ``seq`` (naming the account's previous linked
        entry), or None when entry ``seq`` links no such account. A record that is
        damaged raises ``StateDamageError``."""
        key = int_key(seq)
        value = self._txn.get(key, db=self._tables.account_links)
        if value is None:
            return None
        opened = unseal("account_links", key, value)
        links = (
            None if opened is None or opened[1] != seq else account_links_from_bytes(seq, opened[0])
        )
        if links is None:
            raise StateDamageError("account_links", record_name("account_links", key))
        return next((link for link in links if link.account == account), None)
