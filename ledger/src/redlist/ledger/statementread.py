"""An account's statement read from the store: one page, from one snapshot (``Log.account``).

The page's balances are stored as of now, so the changes since the tree size the page
is of are undone (``statement.balance_as_of``); its awards and redemptions are the
account's linked entries (``StoreReader.account_seqs``) that have a target record,
cut at the page's count or bytes; a ``PageToken`` continues a read at the tree size
its first page was of. The values and their encoding are ``statement``'s.
"""

from __future__ import annotations

from collections.abc import Iterator

from redlist.ledger.entry import is_valid_account
from redlist.ledger.errors import FormatError, IntegrityError, PageTokenError
from redlist.ledger.state import TargetRecord
from redlist.ledger.statement import (
    PAGE_BYTES,
    AccountStatement,
    PageToken,
    StatementEntry,
    balance_as_of,
    page_entries,
    reversal_target,
)
from redlist.ledger.store import LmdbStore, StoreReader


def read_statement(
    store: LmdbStore,
    account: str,
    *,
    page_size: int = 0,
    page_token: bytes = b"",
    page_bytes: int = PAGE_BYTES,
) -> AccountStatement:
    """A page of the statement of ``account`` in ``store``; see ``Log.account``."""
    _check_account(account)
    limit = page_entries(page_size)
    with store.read() as reader:
        config = reader.config()
        if page_token:
            token = PageToken.from_bytes(page_token, account)
            size, start = token.size, token.after + 1
            if (
                size > reader.size()
                or reader.target(token.after) is None
                or reader.account_link(account, token.after) is None
            ):
                raise PageTokenError(
                    f"the page token does not continue a read of account {account} in "
                    "this log: it names an entry or a tree size the log does not have"
                )
        else:
            size, start = reader.size(), 0
        checkpoint = reader.checkpoint_at(size)
        if checkpoint is None and page_token:
            raise PageTokenError(
                f"the page token names tree size {size}, which this log has no checkpoint for"
            )
        if checkpoint is None:
            raise IntegrityError(f"the checkpoint of tree size {size} is missing")
        # The balance is stored as of now: undo what changed since the snapshot.
        balance = balance_as_of(reader.balance(account), _changes_since(reader, account, size))
        records: list[tuple[int, bytes, TargetRecord]] = []
        held = 0
        more = False
        for seq in reader.account_seqs(account, start):
            if seq >= size:
                break
            target = reader.target(seq)
            if target is None:
                continue  # an objection or a reversal: not an award or redemption itself
            if len(records) == limit:
                more = True
                break
            stored = _stored_leaf(reader, seq)
            if records and held + len(stored) > page_bytes:
                more = True
                break
            held += len(stored)
            records.append((seq, stored, StatementEntry.target_as_of(target, size)))
    entries = (StatementEntry.from_leaf(*record) for record in records)
    next_page = PageToken.of(account, size, records[-1][0]) if more else None
    return AccountStatement.of(account, balance, config, entries, checkpoint, next_page)


def _changes_since(
    reader: StoreReader, account: str, size: int
) -> Iterator[tuple[TargetRecord, bool]]:
    """The balance changes of ``account`` at or after tree size ``size``, as
    ``balance_as_of`` takes them: each award or redemption, and each reversal (with the
    record of what it reversed)."""
    for seq in reader.account_seqs(account, size):
        target = reader.target(seq)
        if target is not None:
            yield target, False
            continue
        reversed_seq = reversal_target(seq, _stored_leaf(reader, seq))
        if reversed_seq is None:
            continue  # an objection, which changes no balance
        reversed_target = reader.target(reversed_seq)
        if reversed_target is None:
            raise IntegrityError(
                f"entry {seq} reverses entry {reversed_seq}, which the store does not hold "
                "as an award or redemption",
                seq,
            )
        yield reversed_target, True


def _stored_leaf(reader: StoreReader, seq: int) -> bytes:
    stored = reader.leaf(seq)
    if stored is None:
        raise IntegrityError(f"leaf {seq} is missing from the store", seq)
    return stored


def _check_account(account: str) -> None:
    if not is_valid_account(account):
        raise FormatError(
            f"account id {account!r} is not valid (letters, digits, '.', '_', '-'; 1-64 "
            "characters, starting with a letter or digit)"
        )


__all__ = ["read_statement"]
