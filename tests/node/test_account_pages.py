"""``GetAccount`` a page at a time on a real node (127.0.0.1:0, real LMDB): page sizes
over the maximum are served as the maximum, tokens that continue no read are refused,
and the client reads every page as one consistent statement."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from tests.builders import Town, create_log
from tests.node.serving import Running, rpc_error, run_node

from redlist.ledger.log import Log
from redlist.ledger.statement import DEFAULT_PAGE_ENTRIES, MAX_PAGE_ENTRIES, PageToken
from redlist.proto.client import NodeClient
from redlist.v1 import ledger_pb2 as pb

ACCOUNT = "resident-1"
#: More awards than one page of the node's maximum holds.
AWARDS = MAX_PAGE_ENTRIES + 50


@pytest.fixture(scope="module")
def town() -> Town:
    return Town.generate()


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory, town: Town) -> Iterator[Log]:
    log = create_log(tmp_path_factory.mktemp("pages") / "data", town, setup=True)
    log.append([town.award(ACCOUNT, "clean-pond") for _ in range(AWARDS)], now_ms=town.now_ms)
    log.append([town.award("resident-2", "clean-pond")], now_ms=town.now_ms)
    yield log
    log.close()


def request(page_size: int = 0, page_token: bytes = b"") -> pb.GetAccountRequest:
    return pb.GetAccountRequest(account=ACCOUNT, page_size=page_size, page_token=page_token)


def test_a_page_size_over_the_maximum_is_served_as_the_maximum(log: Log) -> None:
    async def body(running: Running) -> None:
        default = await running.stub.GetAccount(request())
        assert len(default.entries) == DEFAULT_PAGE_ENTRIES and default.next_page_token
        first = await running.stub.GetAccount(request(page_size=2**32 - 1))
        assert len(first.entries) == MAX_PAGE_ENTRIES and first.next_page_token
        second = await running.stub.GetAccount(
            request(page_size=2**32 - 1, page_token=first.next_page_token)
        )
        assert len(second.entries) == AWARDS - MAX_PAGE_ENTRIES
        assert second.next_page_token == b""
        assert second.checkpoint == first.checkpoint and second.earned == first.earned == 5 * AWARDS
        assert first.entries[-1].seq < second.entries[0].seq

    run_node(log, body)


def test_tokens_that_continue_no_read_are_invalid_argument(log: Log) -> None:
    async def body(running: Running) -> None:
        first = await running.stub.GetAccount(request(page_size=10))
        other = await running.stub.GetAccount(
            pb.GetAccountRequest(account="resident-2", page_size=1)
        )
        last_seq = first.entries[-1].seq
        forged = {
            b"not a token": "not one this node issued",
            first.next_page_token[:-1] + bytes([first.next_page_token[-1] ^ 1]): "another account",
            PageToken.of(ACCOUNT, log.size + 1, last_seq).to_bytes(): "does not continue",
            PageToken.of(ACCOUNT, log.size, 0).to_bytes(): "does not continue",
            PageToken.of(ACCOUNT, log.size, log.size - 1).to_bytes(): "does not continue",
        }
        # A page token of another account's read, asked for this one.
        other_token = PageToken.of("resident-2", log.size, other.entries[0].seq).to_bytes()
        forged[other_token] = "another account"
        for token, words in forged.items():
            error = await rpc_error(running.stub.GetAccount(request(page_token=token)))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, token
            assert words in (error.details() or ""), error.details()
        # The genuine token still works.
        second = await running.stub.GetAccount(request(page_token=first.next_page_token))
        assert second.entries[0].seq > last_seq

    run_node(log, body)


def test_the_client_reads_every_page_as_one_statement(log: Log) -> None:
    async def body(running: Running) -> None:
        def read() -> tuple[int, list[int], set[tuple[object, ...]]]:
            with NodeClient(running.node.address) as client:
                pages = list(client.account_pages(ACCOUNT, page_size=300))
                whole = client.get_account(ACCOUNT)
            seqs = [entry.seq for page in pages for entry in page.entries]
            assert seqs == [entry.seq for entry in whole.entries]
            return len(pages), seqs, {page.figures() for page in pages}

        count, seqs, figures = await asyncio.to_thread(read)
        assert count == 4 and len(seqs) == AWARDS and len(figures) == 1

    run_node(log, body)
