"""``Log.account`` a page at a time: bounded pages, one snapshot across them, tokens checked.

Real LMDB logs built with ``tests.builders``; the pure parts (``page_entries``,
``PageToken``, ``balance_as_of``) are tested here too, against the store's own figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.builders import Town, create_log

from redlist.ledger.errors import PageTokenError
from redlist.ledger.log import Log
from redlist.ledger.state import TargetRecord
from redlist.ledger.statement import (
    DEFAULT_PAGE_ENTRIES,
    MAX_PAGE_ENTRIES,
    AccountStatement,
    PageToken,
    StatementEntry,
    page_entries,
)

ACCOUNT = "resident-1"


@pytest.fixture
def town() -> Town:
    return Town.generate()


@pytest.fixture
def log(tmp_path: Path, town: Town) -> Iterator[Log]:
    """A log where ``ACCOUNT`` has 12 awards, a redemption and an objection, and another
    resident has entries between them."""
    log = create_log(tmp_path / "data", town, setup=True)
    for number in range(12):
        log.append(
            [
                town.award(ACCOUNT, "clean-pond", note=f"pond, week {number}"),
                town.award("resident-2", "epidemic-duty"),
            ],
            now_ms=town.now_ms,
        )
    log.append([town.redeem(ACCOUNT, 7), town.objection(11)], now_ms=town.now_ms)
    yield log
    log.close()


def read_all(log: Log, account: str, **options: int) -> list[AccountStatement]:
    """Every page of a read of ``account``, following the tokens."""
    pages = [log.account(account, **options)]
    while pages[-1].next_page_token:
        pages.append(log.account(account, page_token=pages[-1].next_page_token, **options))
        assert len(pages) < 1000
    return pages


def figures(page: AccountStatement) -> tuple[object, ...]:
    return (page.earned, page.redeemed, page.spendable, page.score, page.grade, page.checkpoint)


def test_page_sizes_are_clamped_to_the_maximum_and_zero_means_the_default() -> None:
    assert page_entries(0) == DEFAULT_PAGE_ENTRIES
    assert page_entries(7) == 7
    assert page_entries(MAX_PAGE_ENTRIES) == MAX_PAGE_ENTRIES
    assert page_entries(10**9) == MAX_PAGE_ENTRIES


def test_pages_list_every_entry_once_in_order_with_the_same_figures(log: Log) -> None:
    whole = log.account(ACCOUNT, page_size=MAX_PAGE_ENTRIES)
    assert whole.next_page_token == b""
    assert len(whole.entries) == 13  # 12 awards and the redemption; the objection is not one
    pages = read_all(log, ACCOUNT, page_size=5)
    assert [len(page.entries) for page in pages] == [5, 5, 3]
    assert [entry for page in pages for entry in page.entries] == list(whole.entries)
    assert {figures(page) for page in pages} == {figures(whole)}
    assert pages[-1].next_page_token == b""


def test_a_page_that_fills_exactly_has_no_token_when_nothing_follows(log: Log) -> None:
    pages = read_all(log, ACCOUNT, page_size=13)
    assert len(pages) == 1 and len(pages[0].entries) == 13


def test_pages_stop_at_their_byte_bound_but_always_hold_one_entry(log: Log) -> None:
    leaf_bytes = len(next(log.leaves(11, 12))[1])
    pages = read_all(log, ACCOUNT, page_size=100, page_bytes=3 * leaf_bytes + 10)
    assert all(1 <= len(page.entries) <= 3 for page in pages)
    assert sum(len(page.entries) for page in pages) == 13
    tiny = read_all(log, ACCOUNT, page_bytes=1)
    assert [len(page.entries) for page in tiny] == [1] * 13


def test_later_pages_stay_at_the_first_pages_tree_size_while_the_log_grows(
    log: Log, town: Town
) -> None:
    first = log.account(ACCOUNT, page_size=4)
    size = log.size
    reversed_seq = first.entries[-1].seq + 2  # an award on the second page
    assert log.account(ACCOUNT, page_size=MAX_PAGE_ENTRIES).entries[4].seq == reversed_seq
    # After the first page: a reversal of an award on a later page, a new award, a new
    # redemption, an objection, and an award and reversal of the new award.
    log.append(
        [
            town.reverse(reversed_seq),
            town.award(ACCOUNT, "epidemic-duty"),
            town.redeem(ACCOUNT, 3),
            town.objection(reversed_seq),
        ],
        now_ms=town.now_ms,
    )
    log.append([town.reverse(size + 1)], now_ms=town.now_ms)
    rest = [first]
    while rest[-1].next_page_token:
        rest.append(log.account(ACCOUNT, page_size=4, page_token=rest[-1].next_page_token))
    assert {figures(page) for page in rest} == {figures(first)}
    listed = [entry for page in rest for entry in page.entries]
    assert all(entry.seq < size for entry in listed)
    assert len(listed) == 13
    # Reversed after the snapshot: listed as it stood then.
    assert next(entry for entry in listed if entry.seq == reversed_seq).reversed_by is None
    # A new read sees the new state.
    now = log.account(ACCOUNT, page_size=MAX_PAGE_ENTRIES)
    assert (now.earned, now.redeemed) == (first.earned - 5, first.redeemed + 3)
    assert next(entry for entry in now.entries if entry.seq == reversed_seq).reversed_by == size


def test_a_snapshot_balance_equals_the_balance_stored_at_that_size(town: Town, log: Log) -> None:
    """Taking the balance back (``balance_as_of``) gives what the store held then."""
    first = log.account(ACCOUNT, page_size=1)
    then = log.account(ACCOUNT, page_size=MAX_PAGE_ENTRIES)
    log.append(
        [town.reverse(11), town.award(ACCOUNT, "burn-straw"), town.redeem(ACCOUNT, 1)],
        now_ms=town.now_ms,
    )
    later = log.account(ACCOUNT, page_size=1, page_token=first.next_page_token)
    assert figures(later) == figures(then)


def test_an_account_without_entries_has_one_page(log: Log) -> None:
    page = log.account("resident-9")
    assert page.entries == () and page.next_page_token == b""


def test_tokens_that_continue_no_read_are_refused(log: Log, town: Town) -> None:
    first = log.account(ACCOUNT, page_size=2)
    token = PageToken.from_bytes(first.next_page_token, ACCOUNT)
    assert (token.size, token.after) == (log.size, first.entries[-1].seq)
    other = log.account("resident-2", page_size=2).next_page_token
    refused = {
        b"\x00": "not one this node issued",
        first.next_page_token[:-1]: "not one this node issued",
        b"\x02" + first.next_page_token[1:]: "not one this node issued",
        other: "another account",
        PageToken.of(ACCOUNT, log.size + 5, 11).to_bytes(): "does not continue a read",
        PageToken.of(ACCOUNT, 14, 11).to_bytes(): "no checkpoint for",
        PageToken.of(ACCOUNT, log.size, 12).to_bytes(): "does not continue a read",  # resident-2
        PageToken.of(ACCOUNT, log.size, 1).to_bytes(): "does not continue a read",  # a key entry
        PageToken.of(ACCOUNT, 11, 11).to_bytes(): "not below its tree size",
    }
    for forged, words in refused.items():
        with pytest.raises(PageTokenError, match=words):
            log.account(ACCOUNT, page_token=forged)
    # The objection is linked to the account but is not an award or redemption.
    objection = log.size - 1
    with pytest.raises(PageTokenError):
        log.account(ACCOUNT, page_token=PageToken.of(ACCOUNT, log.size, objection).to_bytes())
    # A token of an older size the log has a checkpoint for is a read at that size.
    older = log.account(ACCOUNT, page_token=PageToken.of(ACCOUNT, 15, 11).to_bytes())
    assert [entry.seq for entry in older.entries] == [13]
    assert "\n15\n" in older.checkpoint and older.earned == 10


def test_reversals_after_the_snapshot_are_hidden_from_an_entry() -> None:
    record = TargetRecord("award", ACCOUNT, 5, "clean-pond", reversed_by=40)
    assert StatementEntry.target_as_of(record, 40).reversed_by is None
    assert StatementEntry.target_as_of(record, 41).reversed_by == 40
