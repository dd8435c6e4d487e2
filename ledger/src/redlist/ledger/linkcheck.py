"""The full check's part for the accounts' entry lists (``account_links``, ``account_heads``).

The replay tells which accounts each entry links, and so what each list must hold
(ADR 0043): for every entry that links accounts, a record under its seq naming, per
account, the account's previous linked entry; for every account, a head record with
the count of its links, sealed with its latest linked entry. ``LinkCheck`` compares
the ``account_links`` table with that as the replay goes, one entry at a time, with
one cursor walking the table beside it (nothing per entry is held), and the heads at
the end like the other tables keyed by account. The replay's memory for this is one
seq and one count per account, as for the balances.
"""

from __future__ import annotations

from collections.abc import Iterator

from redlist.ledger.integrity import fail, scanned
from redlist.ledger.store import AccountLink, StoredRecord, StoreReader, account_links_of

#: The name problems with the lists are reported under.
CHECK = "account-entries"


class LinkCheck:
    """The stored entry lists against the replay: ``link`` for each link the replay
    makes, ``entry_done`` after each entry, ``finish`` after the last one."""

    def __init__(self, reader: StoreReader) -> None:
        self._stored: Iterator[tuple[int, StoredRecord]] = scanned(
            CHECK, reader.stored_account_links()
        )
        self._pending: tuple[int, StoredRecord] | None = None
        self._started = False
        self._links: list[AccountLink] = []
        #: Per account: its latest linked seq and its count of links.
        self.heads: dict[str, tuple[int, int]] = {}

    def link(self, account: str, seq: int) -> None:
        head = self.heads.get(account)
        self._links.append(AccountLink(account, None if head is None else head[0]))
        self.heads[account] = (seq, 1 if head is None else head[1] + 1)

    def entry_done(self, seq: int) -> None:
        """Compare the stored record of entry ``seq`` with the links the replay made."""
        links, self._links = tuple(self._links), []
        pending = self._peek()
        if pending is not None and pending[0] < seq:
            self._extra(pending[0])
        if not links:
            if pending is not None and pending[0] == seq:
                self._extra(seq)
            return
        accounts = ", ".join(link.account for link in links)
        if pending is None or pending[0] != seq:
            fail(CHECK, f"the entry lists lack this entry's link of account {accounts}", seq)
        stored = account_links_of(seq, pending[1])
        if stored is None:
            fail(
                CHECK,
                f"the entry lists hold a damaged record of this entry's link of account "
                f"{accounts} (its checksum does not match or it does not decode)",
                seq,
            )
        if stored != links:
            fail(
                CHECK,
                f"the entry lists' record of this entry links {_show(stored)}; the log "
                f"gives {_show(links)}",
                seq,
            )
        self._pending = next(self._stored, None)

    def finish(self) -> None:
        """After the last entry: no record may be left."""
        pending = self._peek()
        if pending is not None:
            self._extra(pending[0])

    def _peek(self) -> tuple[int, StoredRecord] | None:
        """The stored record not yet compared (the first read waits for the first entry,
        inside the check's report of problems)."""
        if not self._started:
            self._pending, self._started = next(self._stored, None), True
        return self._pending

    def _extra(self, seq: int) -> None:
        fail(
            CHECK,
            f"the entry lists hold a record for entry {seq}, which links no account or "
            "is not in the log",
            seq,
        )


def _show(links: tuple[AccountLink, ...]) -> str:
    return "; ".join(
        f"account {link.account} after "
        + ("nothing" if link.previous is None else f"entry {link.previous}")
        for link in links
    )


__all__ = ["CHECK", "LinkCheck"]
