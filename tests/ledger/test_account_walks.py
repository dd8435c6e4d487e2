"""Statements of accounts whose entry lists cross the walk's chunks (ADR 0043).

``storelists`` walks an account's list back in chunks of 1,024 seqs (or the square
root of its count past a million): the first walk keeps a mark per chunk, the second
yields each chunk in order. These tests read real logs page by page, with page tokens
landing on the chunks' seams, and compare every page with what the leaves themselves
say: accounts of 1, 1,024 and 1,025 entries with the production chunk, and a chunk of
4 (so a list of 1,025 takes the square-root chunk of 33, as one of a million would).
A balance "as of" a page token is checked after the log has grown past it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.builders import Town, create_log

from redlist.ledger import storelists
from redlist.ledger.bodies import Award, Redeem
from redlist.ledger.bodydecode import decode_body
from redlist.ledger.entry import Leaf
from redlist.ledger.envelope import Envelope
from redlist.ledger.log import Log
from redlist.ledger.statement import MAX_PAGE_ENTRIES, AccountStatement

#: Accounts and their number of awards: either side of one chunk of 1,024.
COUNTS = {"single": 1, "chunk": 1024, "chunk-and-one": 1025}
#: An account with a few awards and a redemption, and an objection and a reversal that
#: are in its list without being entries of its statement.
MIXED = "mixed"


def build(data: Path, town: Town, counts: dict[str, int]) -> Log:
    """A log where each account of ``counts`` has that many awards, interleaved."""
    log = create_log(data, town, setup=True)
    batch: list[bytes] = []
    for number in range(max(counts.values())):
        batch.extend(
            town.award(account, "clean-pond") for account, count in counts.items() if number < count
        )
        if len(batch) >= 200:
            log.append(batch, now_ms=town.now_ms)
            batch = []
    log.append(batch, now_ms=town.now_ms)
    return log


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    town = Town.from_seed(b"account walks")
    log = build(tmp_path_factory.mktemp("walks") / "data", town, {**COUNTS, MIXED: 3})
    awarded = listed(log, MIXED)
    log.append(
        [town.objection(awarded[0]), town.redeem(MIXED, 2), town.reverse(awarded[1])],
        now_ms=town.now_ms,
    )
    yield log
    log.close()


def listed(log: Log, account: str, size: int | None = None) -> list[int]:
    """The seqs of ``account``'s awards and redemptions among the first ``size`` leaves,
    read from the leaves themselves."""
    seqs = []
    for seq, raw in log.leaves(0, log.size if size is None else size):
        body = decode_body(Envelope.from_bytes(Leaf.from_bytes(raw).envelope).body)
        if isinstance(body, Award | Redeem) and body.account == account:
            seqs.append(seq)
    return seqs


def pages(
    log: Log, account: str, page_size: int, first: AccountStatement | None = None
) -> list[AccountStatement]:
    read = [first or log.account(account, page_size=page_size)]
    while read[-1].next_page_token:
        token = read[-1].next_page_token
        read.append(log.account(account, page_size=page_size, page_token=token))
    return read


def figures(page: AccountStatement) -> tuple[object, ...]:
    return (page.earned, page.redeemed, page.spendable, page.score, page.checkpoint)


@pytest.mark.parametrize("chunk", [storelists.WALK_CHUNK, 4])
@pytest.mark.parametrize("account", [*COUNTS, MIXED, "nobody"])
def test_pages_across_the_chunks_list_exactly_the_account_s_entries(
    built: Log, account: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = built
    monkeypatch.setattr(storelists, "WALK_CHUNK", chunk)
    expected = listed(log, account)
    assert len(expected) == {**COUNTS, MIXED: 4}.get(account, 0)
    whole = log.account(account, page_size=MAX_PAGE_ENTRIES)
    assert [entry.seq for entry in whole.entries] == expected[:MAX_PAGE_ENTRIES]
    # Tokens after entries 4, 8, … (the small chunk's seams), and 512 and 1,024 (pages
    # hold at most 1,000 entries).
    sizes = [4, 5, 512, 1000] if len(expected) > 40 else [1, 2, 3, 4, 5]
    for page_size in sizes:
        read = pages(log, account, page_size)
        assert [entry.seq for page in read for entry in page.entries] == expected
        assert {figures(page) for page in read} == {figures(whole)}


def test_a_token_on_a_chunk_s_seam_reads_as_of_its_size_after_the_log_grew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pages of 512 end on a seam of the production chunk (entry 1,024); the log
    then grows (reversals of an entry of the first page and of the second's last, new
    awards, a redemption): the next page still lists the entries up to the first page's
    size, with its figures, walked with the production chunk and with one of 4."""
    town = Town.from_seed(b"account walks, growing")
    account = "chunk-and-one"
    with build(tmp_path / "data", town, {account: 1030}) as log:
        first = log.account(account, page_size=512)
        second = log.account(account, page_size=512, page_token=first.next_page_token)
        size = log.size
        expected = listed(log, account)
        assert second.entries[-1].seq == expected[1023] and second.next_page_token
        log.append(
            [
                town.reverse(expected[10]),
                town.reverse(expected[1023]),
                *(town.award(account, "epidemic-duty") for _ in range(6)),
                town.redeem(account, 7),
            ],
            now_ms=town.now_ms,
        )
        for chunk in (storelists.WALK_CHUNK, 4):
            monkeypatch.setattr(storelists, "WALK_CHUNK", chunk)
            read = pages(log, account, 512, second)
            assert [entry.seq for page in read for entry in page.entries] == expected[512:]
            assert read[1].entries[0].seq == expected[1024] < size
            assert {figures(page) for page in read} == {figures(first)}
            again = log.account(account, page_size=512, page_token=first.next_page_token)
            assert again.entries == second.entries
        now = log.account(account, page_size=1)
        assert (now.earned, now.redeemed) == (first.earned - 10 + 60, first.redeemed + 7)
