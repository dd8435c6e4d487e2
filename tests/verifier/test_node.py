"""``redlist-verify node`` against real nodes on 127.0.0.1, each serving a real LMDB log.

A node that lies is played by ``Proxy``: a small gRPC server that forwards every read
call to the real node and lets a test alter one answer (an account's figures, a leaf,
a proof, the checkpoint) or count what is fetched. The verifier CLI runs in a worker
thread while the event loop serves the node and the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.builders import Town, create_log, signed_root
from tests.node.serving import Running, run_node
from tests.node.test_tls import Pki
from tests.node.test_tls import pki as node_pki  # noqa: F401 - a fixture, used by name
from tests.verifier.bundles import replay, standard_log

from redlist.ledger import merkle
from redlist.ledger.crypto import SigningKey
from redlist.ledger.entry import Envelope, Leaf
from redlist.ledger.errors import FormatError, SourceError, VerificationError
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.points import apply_entry
from redlist.ledger.state import MemoryState
from redlist.node.serveroptions import ServerOptions
from redlist.proto.client import RemoteAccount, RemoteEntry
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc
from redlist.verifier.audit import Auditor
from redlist.verifier.cli import main
from redlist.verifier.nodeaccounts import NodeAnswer, compare_account, figures_at
from redlist.verifier.nodesource import read_ahead
from redlist.verifier.results import AccountSummary
from redlist.verifier.statefile import (
    PinnedState,
    decode_semantics,
    encode_semantics,
    load_semantics,
    load_state,
    semantics_path,
)

#: Entries after the genesis and ``Town.setup``.
SETUP_SIZE = 1 + 4 + 6
#: Seq of resident-2's award that ``build_log`` reverses.
REVERSED = SETUP_SIZE + 1


def add_activity(log: Log, town: Town) -> None:
    """Awards, a deduction, a redemption, an objection and a reversal over three residents."""
    log.append(
        [
            town.award("resident-1", "clean-pond", 3),  # +15
            town.award("resident-2", "epidemic-duty", 6),  # +60, reversed below
            town.award("resident-2", "mediate-dispute"),  # +20, council
            town.award("resident-3", "burn-straw"),  # -20
        ],
        now_ms=town.now_ms,
    )
    log.append(
        [town.redeem("resident-2", 15), town.objection(REVERSED), town.reverse(REVERSED)],
        now_ms=town.now_ms,
    )


@pytest.fixture
def town() -> Town:
    return Town.generate()


@pytest.fixture
def log(tmp_path: Path, town: Town) -> Iterator[Log]:
    log = create_log(tmp_path / "data", town, setup=True)
    add_activity(log, town)
    yield log
    log.close()


def log_key(town: Town) -> str:
    return town.log_signer.verifier().encode()


def expected_accounts(log: Log) -> dict[str, dict[str, Any]]:
    """Every account's figures by a plain replay of the stored leaves."""
    state = MemoryState()
    origin = log.origin
    for seq, raw in log.leaves(0, log.size):
        leaf = Leaf.from_bytes(raw)
        apply_entry(
            state,
            origin=origin,
            seq=seq,
            time=leaf.time,
            envelope=Envelope.from_bytes(leaf.envelope),
        )
    config = state.config()
    assert config is not None
    return {
        account: {
            "score": config.base + balance.earned,
            "spendable": balance.spendable,
            "redeemed": balance.redeemed,
            "grade": config.grade_of(config.base + balance.earned),
        }
        for account, balance in state.balances.items()
    }


# -- the lying node ---------------------------------------------------------------------


class Proxy(ledger_pb2_grpc.LedgerServicer):
    """Forwards the read calls to a real node; a test may alter answers and count leaves."""

    def __init__(self, upstream: ledger_pb2_grpc.LedgerAsyncStub) -> None:
        self.upstream = upstream
        self.leaf_ranges: list[tuple[int, int]] = []
        self.leaves_sent = 0
        self.accounts_asked: list[str] = []
        self.checkpoint: str | None = None
        self.alter_leaf: Callable[[pb.LeafData], pb.LeafData | None] | None = None
        self.alter_account: Callable[[pb.Account], None] | None = None
        self.alter_inclusion: Callable[[pb.Proof], None] | None = None
        self.alter_consistency: Callable[[pb.Proof], None] | None = None
        self.before_account: Callable[[], Awaitable[None]] | None = None
        self.account_page_size: int | None = None
        self.refuse_leaves = False

    async def _forward(self, call: Awaitable[Any], context: Any) -> Any:
        try:
            return await call
        except aio.AioRpcError as error:
            await context.abort(error.code(), error.details() or "")

    async def GetCheckpoint(self, request: Any, context: Any) -> pb.GetCheckpointResponse:
        if self.checkpoint is not None:
            return pb.GetCheckpointResponse(checkpoint=self.checkpoint)
        return await self._forward(self.upstream.GetCheckpoint(request), context)  # type: ignore[no-any-return]

    async def GetLeaves(self, request: Any, context: Any) -> AsyncIterator[pb.LeafData]:
        if self.refuse_leaves:
            await context.abort(grpc.StatusCode.INTERNAL, "the disk is on fire")
        self.leaf_ranges.append((request.start, request.end))
        async for message in self.upstream.GetLeaves(request):
            sent = message if self.alter_leaf is None else self.alter_leaf(message)
            if sent is None:
                continue
            self.leaves_sent += 1
            yield sent

    async def GetInclusionProof(self, request: Any, context: Any) -> pb.Proof:
        proof: pb.Proof = await self._forward(self.upstream.GetInclusionProof(request), context)
        if self.alter_inclusion is not None:
            self.alter_inclusion(proof)
        return proof

    async def GetConsistencyProof(self, request: Any, context: Any) -> pb.Proof:
        proof: pb.Proof = await self._forward(self.upstream.GetConsistencyProof(request), context)
        if self.alter_consistency is not None:
            self.alter_consistency(proof)
        return proof

    async def Submit(self, request: Any, context: Any) -> pb.SubmitResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this proxy only reads")
        raise AssertionError("unreachable")

    async def Follow(self, request: Any, context: Any) -> AsyncIterator[pb.FollowEvent]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this proxy only reads")
        yield pb.FollowEvent()  # unreachable; makes this an async generator

    async def GetAccount(self, request: Any, context: Any) -> pb.Account:
        self.accounts_asked.append(request.account)
        if self.before_account is not None:
            hook, self.before_account = self.before_account, None
            await hook()
        if self.account_page_size is not None:
            request = pb.GetAccountRequest(
                account=request.account,
                page_size=self.account_page_size,
                page_token=request.page_token,
            )
        account: pb.Account = await self._forward(self.upstream.GetAccount(request), context)
        if self.alter_account is not None:
            self.alter_account(account)
        return account


@contextlib.asynccontextmanager
async def serve_proxy(upstream: str) -> AsyncIterator[tuple[Proxy, str]]:
    async with aio.insecure_channel(upstream) as channel:
        proxy = Proxy(ledger_pb2_grpc.LedgerStub(channel))
        server = aio.server()
        ledger_pb2_grpc.add_LedgerServicer_to_server(proxy, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            yield proxy, f"127.0.0.1:{port}"
        finally:
            await server.stop(None)


async def verify(
    capsys: pytest.CaptureFixture[str], address: str, *args: str
) -> tuple[int, dict[str, Any]]:
    """Run ``redlist-verify node ADDR --json ARGS`` off the event loop; status and JSON."""
    status = await asyncio.to_thread(main, ["node", address, "--json", *args])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1, out  # exactly one JSON object
    return status, json.loads(lines[0])


def with_proxy(
    log: Log, body: Callable[[Running, Proxy, str], Awaitable[None]], timeout: float = 30.0
) -> None:
    async def outer(running: Running) -> None:
        async with serve_proxy(running.node.address) as (proxy, address):
            await body(running, proxy, address)

    run_node(log, outer, timeout=timeout)


# -- a good node ----------------------------------------------------------------------


def test_good_node_verifies_with_json_balances(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    async def body(running: Running) -> None:
        status, value = await verify(capsys, running.node.address, "--log-key", log_key(town))
        assert status == 0, value
        assert value["ok"] is True
        assert value["tree_size"] == log.size
        assert value["root"] == signed_root(log).hex()
        assert value["accounts"] == expected_accounts(log)
        node = value["node"]
        assert node["leaves_fetched"] == log.size
        assert node["accounts_checked"] == node["accounts_total"] == 3
        assert node["accounts_sampled"] is False
        assert node["resumed_from"] is None
        assert 0 in node["inclusion_checked"] and log.size - 1 in node["inclusion_checked"]
        assert 1 <= node["consistency_from"] < log.size

    run_node(log, body)


def test_human_report_says_what_was_checked_against_the_node(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    async def body(running: Running) -> None:
        argv = ["node", running.node.address, "--log-key", log_key(town), "--account", "resident-2"]
        status = await asyncio.to_thread(main, argv)
        out = capsys.readouterr().out
        assert status == 0, out
        assert "Verified: log" in out
        assert f"Node {running.node.address}: fetched {log.size} entries." in out
        assert "inclusion proofs for entries 0," in out
        assert "all 3 accounts match" in out
        assert "Statement of account resident-2" in out

    run_node(log, body)


# -- a node that lies -------------------------------------------------------------------


@pytest.mark.parametrize("field", ["score", "spendable", "redeemed", "earned", "grade"])
def test_lying_account_figures_fail_naming_the_account(
    log: Log, town: Town, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def lie(account: pb.Account) -> None:
        if account.account == "resident-2":
            if field == "grade":
                account.grade = "AAA"
            else:
                setattr(account, field, getattr(account, field) + 100)

    async def body(running: Running, proxy: Proxy, address: str) -> None:
        proxy.alter_account = lie
        status, value = await verify(capsys, address, "--log-key", log_key(town))
        assert status == 1
        assert value["ok"] is False
        assert value["error"]["check"] == "account-view"
        assert "account resident-2" in value["error"]["message"]
        # The node's log held: its checkpoint and every entry were verified first.
        assert value["error"]["kind"] == "misreported"
        assert value["tree_size"] is not None and value["root"] is not None
        assert value["checked"]["passed"][:3] == ["checkpoint", "entries", "root"]

    with_proxy(log, body)


def test_lying_entry_list_fails_even_with_consistent_totals(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    def lie(account: pb.Account) -> None:
        # Hide the reversal: the listed entries then add up to more than the log gives.
        for entry in account.entries:
            entry.reversed = False
            entry.reversed_by = 0

    async def body(running: Running, proxy: Proxy, address: str) -> None:
        proxy.alter_account = lie
        status, value = await verify(capsys, address, "--log-key", log_key(town))
        assert status == 1
        assert value["error"]["check"] == "account-view"
        assert "account resident-2" in value["error"]["message"]

    with_proxy(log, body)


def test_accounts_read_page_by_page_verify_and_pages_that_disagree_fail(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    def lie(account: pb.Account) -> None:
        # The last page (the redemption) states other figures than the first one.
        if [entry.kind for entry in account.entries] == ["redeem"]:
            account.earned += 1

    async def body(running: Running, proxy: Proxy, address: str) -> None:
        proxy.account_page_size = 1  # resident-2's three entries come in three pages
        status, value = await verify(capsys, address, "--log-key", log_key(town))
        assert status == 0, value
        assert proxy.accounts_asked.count("resident-2") == 3
        proxy.alter_account = lie
        status, value = await verify(capsys, address, "--log-key", log_key(town))
        assert status == 1, value
        assert value["error"]["check"] == "account-view"
        assert "account resident-2" in value["error"]["message"]
        assert "disagree" in value["error"]["message"]

    with_proxy(log, body)


def test_altered_leaf_fails_naming_the_seq(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = SETUP_SIZE + 2

    def tamper(message: pb.LeafData) -> pb.LeafData:
        if message.seq == bad:
            leaf = bytearray(message.leaf)
            leaf[-1] ^= 0x01  # the last byte of the last signature
            return pb.LeafData(seq=message.seq, leaf=bytes(leaf))
        return message

    async def body(running: Running, proxy: Proxy, address: str) -> None:
        proxy.alter_leaf = tamper
        status, value = await verify(capsys, address, "--log-key", log_key(town))
        assert status == 1
        assert value["error"]["seq"] == bad
        assert value["error"]["check"] == "signature"
        assert value["error"]["kind"] == "tampered"
        assert value["error"]["entry"]["account"] is not None  # whose award it is
        assert value["checked"]["entries"] == bad and value["tree_size"] is not None

    with_proxy(log, body)


@pytest.mark.parametrize("dropped", ["middle", "last"])
def test_missing_leaf_fails_naming_the_seq(
    log: Log, town: Town, dropped: str, capsys: pytest.CaptureFixture[str]
) -> None:
    seq, check = (5, "seq") if dropped == "middle" else (log.size - 1, "size")

    async def body(running: Running, proxy: Proxy, address: str) -> None:
        proxy.alter_leaf = lambda message: None if message.seq == seq else message
        status, value = await verify(capsys, address, "--log-key", log_key(town))
        assert status == 1
        assert value["error"]["seq"] == seq
        assert value["error"]["check"] == check

    with_proxy(log, body)


def test_forked_checkpoint_signed_with_the_log_key_fails(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = sign_checkpoint(Checkpoint(town.origin, log.size, bytes(32)), town.log_signer)

    async def body(running: Running, proxy: Proxy, address: str) -> None:
        proxy.checkpoint = forged.note
        status, value = await verify(capsys, address, "--log-key", log_key(town))
        assert status == 1
        assert value["error"]["check"] == "root"

    with_proxy(log, body)


def test_bad_inclusion_proof_fails_naming_the_seq(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    def lie(proof: pb.Proof) -> None:
        proof.hashes[0] = bytes(32)

    async def body(running: Running, proxy: Proxy, address: str) -> None:
        proxy.alter_inclusion = lie
        status, value = await verify(capsys, address, "--log-key", log_key(town))
        assert status == 1
        assert value["error"]["check"] == "inclusion"
        assert value["error"]["seq"] == 0  # the first one asked

    with_proxy(log, body)


def test_bad_consistency_proof_fails(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    def lie(proof: pb.Proof) -> None:
        proof.hashes.append(bytes(32))

    async def body(running: Running, proxy: Proxy, address: str) -> None:
        proxy.alter_consistency = lie
        status, value = await verify(capsys, address, "--log-key", log_key(town))
        assert status == 1
        assert value["error"]["check"] == "consistency"

    with_proxy(log, body)


def test_another_logs_key_cannot_start_and_names_both_logs(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    # The auditor's mistake to put right (exit 2), as with a bundle: not tampering.
    other = NoteSigner("other.example/redlist", SigningKey.from_seed(b"w" * 32)).verifier()

    async def body(running: Running) -> None:
        status, value = await verify(capsys, running.node.address, "--log-key", other.encode())
        assert (status, value["ok"]) == (2, False), value
        message = value["error"]["message"]
        assert f"the node at {running.node.address} serves log {town.origin}" in message
        assert "the log key given is of log other.example/redlist" in message
        # The same log's name with another key is no mistake of the auditor's: a failure.
        forged = NoteSigner(town.origin, SigningKey.from_seed(b"w" * 32)).verifier()
        status, value = await verify(capsys, running.node.address, "--log-key", forged.encode())
        assert (status, value["error"]["check"]) == (1, "checkpoint")

    run_node(log, body)


def test_node_refusing_a_call_cannot_be_verified(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    async def body(running: Running, proxy: Proxy, address: str) -> None:
        proxy.refuse_leaves = True
        status, value = await verify(capsys, address, "--log-key", log_key(town))
        assert status == 2
        assert "GetLeaves" in value["error"]["message"]
        assert "INTERNAL" in value["error"]["message"]

    with_proxy(log, body)


# -- accounts: sampling, and a node that grows during the run ----------------------------


def test_account_sample_above_the_bound(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    async def body(running: Running, proxy: Proxy, address: str) -> None:
        status, value = await verify(
            capsys, address, "--log-key", log_key(town), "--check-accounts", "2"
        )
        assert status == 0, value
        assert value["node"]["accounts_checked"] == 2
        assert value["node"]["accounts_total"] == 3
        assert value["node"]["accounts_sampled"] is True
        assert len(proxy.accounts_asked) == 2
        assert set(proxy.accounts_asked) <= {"resident-1", "resident-2", "resident-3"}

    with_proxy(log, body)


def test_node_growing_during_the_run_is_compared_at_the_audited_size(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    audited = log.size

    async def body(running: Running, proxy: Proxy, address: str) -> None:
        async def grow() -> None:
            await running.submit(
                [
                    town.award(name, "clean-pond")
                    for name in ("resident-1", "resident-2", "resident-3")
                ]
            )

        proxy.before_account = grow
        status, value = await verify(capsys, address, "--log-key", log_key(town))
        assert status == 0, value
        assert value["tree_size"] == audited
        assert value["node"]["accounts_at_later_checkpoint"] >= 1

    with_proxy(log, body)


# -- --state: incremental runs, rewritten history, fallbacks ------------------------------


def test_second_run_with_state_fetches_only_new_leaves(
    log: Log, town: Town, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    first_size = log.size

    async def body(running: Running, proxy: Proxy, address: str) -> None:
        status, first = await verify(
            capsys, address, "--log-key", log_key(town), "--state", str(state)
        )
        assert status == 0, first
        assert proxy.leaves_sent == first_size
        await running.submit(
            [
                town.award("resident-4", "epidemic-duty"),
                town.redeem("resident-1", 5),
                town.reverse(SETUP_SIZE),
            ]
        )
        proxy.leaf_ranges.clear()
        proxy.leaves_sent = 0
        # No --log-key: the state file pins it.
        status, second = await verify(capsys, address, "--state", str(state))
        assert status == 0, second
        assert proxy.leaf_ranges == [(first_size, first_size + 3)]
        assert proxy.leaves_sent == 3
        assert second["start"] == first_size
        assert second["node"]["resumed_from"] == first_size
        assert second["node"]["leaves_fetched"] == 3
        assert second["node"]["consistency_from"] == first_size
        assert second["tree_size"] == first_size + 3
        assert second["accounts"] == expected_accounts(log)
        assert second["accounts"]["resident-1"]["score"] == 1000  # award reversed
        assert second["accounts"]["resident-1"]["spendable"] == -5
        # And a third run with nothing new fetches nothing, still checking the node.
        proxy.leaves_sent = 0
        status, third = await verify(capsys, address, "--state", str(state))
        assert status == 0, third
        assert proxy.leaves_sent == 0
        assert third["accounts"] == second["accounts"]

    with_proxy(log, body)
    pinned = load_state(state)
    assert pinned is not None
    assert pinned.tree_size == first_size + 3
    assert pinned.semantics is not None
    assert semantics_path(state).exists()


@pytest.mark.parametrize("damage", ["missing", "altered", "unreferenced"])
def test_unusable_snapshot_falls_back_to_a_full_run_and_says_so(
    log: Log, town: Town, tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"

    async def body(running: Running) -> None:
        address = running.node.address
        status, _ = await verify(capsys, address, "--log-key", log_key(town), "--state", str(state))
        assert status == 0
        await running.submit([town.award("resident-1", "clean-pond")])
        snapshot = semantics_path(state)
        if damage == "missing":
            snapshot.unlink()
        elif damage == "altered":
            data = bytearray(snapshot.read_bytes())
            data[len(data) // 2] ^= 0x01
            snapshot.write_bytes(bytes(data))
        else:  # a bundle run rewrote the state file without a snapshot reference
            pinned = load_state(state)
            assert pinned is not None
            state.write_bytes(PinnedState(pinned.checkpoint).to_bytes())
        status = await asyncio.to_thread(main, ["node", address, "--json", "--state", str(state)])
        captured = capsys.readouterr()
        value = json.loads(captured.out)
        assert status == 0, value
        assert value["node"]["resumed_from"] is None
        assert value["node"]["leaves_fetched"] == log.size
        assert value["node"]["fallback"]
        assert "checking from entry 0" in captured.err

    run_node(log, body)


def two_histories(tmp_path: Path, extra_in_b: int) -> tuple[Log, Log, Town]:
    """Two logs with the same town keys (so the same log key) that differ from entry
    ``SETUP_SIZE`` on; B has ``extra_in_b`` entries more than A."""
    town_a, town_b = Town.from_seed(b"fork"), Town.from_seed(b"fork")
    log_a = create_log(tmp_path / "a", town_a, setup=True)
    log_a.append([town_a.award("resident-1", "clean-pond")], now_ms=town_a.now_ms)
    log_b = create_log(tmp_path / "b", town_b, setup=True)
    log_b.append(
        [town_b.award("resident-9", "clean-pond") for _ in range(1 + extra_in_b)],
        now_ms=town_b.now_ms,
    )
    return log_a, log_b, town_a


@pytest.mark.parametrize(("extra", "check"), [(2, "consistency"), (0, "consistency")])
def test_rewritten_history_fails_with_both_checkpoints_as_evidence(
    tmp_path: Path, extra: int, check: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log_a, log_b, town = two_histories(tmp_path, extra)
    state = tmp_path / "state.json"

    async def first(running: Running) -> None:
        status, _ = await verify(
            capsys, running.node.address, "--log-key", log_key(town), "--state", str(state)
        )
        assert status == 0

    run_node(log_a, first)
    pinned_bytes = state.read_bytes()
    pinned_checkpoint = log_a.checkpoint().note

    async def second(running: Running) -> None:
        status, value = await verify(capsys, running.node.address, "--state", str(state))
        assert status == 1
        assert value["error"]["check"] == check
        message = value["error"]["message"]
        assert pinned_checkpoint in message
        assert log_b.checkpoint().note in message

    run_node(log_b, second)
    assert state.read_bytes() == pinned_bytes  # nothing is pinned after a failure
    log_a.close()
    log_b.close()


def test_rolled_back_log_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_a, log_b, town = two_histories(tmp_path, 0)
    log_a.append([town.award("resident-1", "litter")], now_ms=town.now_ms)
    state = tmp_path / "state.json"

    async def first(running: Running) -> None:
        status, _ = await verify(
            capsys, running.node.address, "--log-key", log_key(town), "--state", str(state)
        )
        assert status == 0

    run_node(log_a, first)

    async def second(running: Running) -> None:
        status, value = await verify(capsys, running.node.address, "--state", str(state))
        assert status == 1
        assert value["error"]["check"] == "rollback"
        assert log_a.checkpoint().note in value["error"]["message"]

    run_node(log_b, second)
    log_a.close()
    log_b.close()


# -- could not start ---------------------------------------------------------------------


def test_unreachable_node_exits_2(town: Town, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    status = main(["node", address, "--log-key", log_key(town), "--json", "--timeout", "5"])
    value = json.loads(capsys.readouterr().out)
    assert status == 2
    assert f"cannot reach the node at {address}" in value["error"]["message"]
    status = main(["node", address, "--log-key", log_key(town)])
    assert status == 2
    assert f"cannot reach the node at {address}" in capsys.readouterr().err


def test_bad_address_exits_2(town: Town, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "no-port-here", "--log-key", log_key(town)]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_wrong_log_key_fails_the_checkpoint(
    log: Log, town: Town, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Town.generate()

    async def body(running: Running) -> None:
        status, value = await verify(capsys, running.node.address, "--log-key", log_key(other))
        assert status == 1
        assert value["error"]["check"] == "checkpoint"
        status, value = await verify(capsys, running.node.address, "--log-key", "not a key")
        assert status == 2
        assert "not a log verifier key" in value["error"]["message"]

    run_node(log, body)


def test_node_over_mutual_tls(
    log: Log, town: Town, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    files: Pki = request.getfixturevalue("node_pki")  # the node TLS tests' certificates
    tls = ["--tls-ca", str(files.ca), "--tls-cert", str(files.client_cert)]
    tls += ["--tls-key", str(files.client_key)]

    async def body(running: Running) -> None:
        address = f"localhost:{running.node.port}"
        status, value = await verify(capsys, address, "--log-key", log_key(town), *tls)
        assert status == 0, value
        assert value["tree_size"] == log.size
        status, value = await verify(capsys, address, "--log-key", log_key(town), "--timeout", "5")
        assert status == 2
        assert "cannot reach the node at" in value["error"]["message"]

    run_node(log, body, options=ServerOptions(tls=files.server(mutual=True)))


# -- the parts, without a network -----------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(split=st.integers(min_value=1, max_value=len(standard_log().leaves)))
def test_resumed_audit_from_a_snapshot_equals_a_full_audit(split: int) -> None:
    built = standard_log()
    key = built.town.log_signer.verifier()
    auditor = Auditor(key)
    for leaf in built.leaves[:split]:
        auditor.feed(leaf)
    auditor.finish(built.checkpoint(split))
    point = auditor.resume_point()
    origin, restored = decode_semantics(encode_semantics(built.town.origin, point))
    assert origin == built.town.origin
    assert restored.tree == point.tree
    assert (
        restored.last_leaf_hash == point.last_leaf_hash == merkle.leaf_hash(built.leaves[split - 1])
    )
    assert restored.state.entry_ids == point.state.entry_ids
    assert restored.state.targets == point.state.targets
    assert restored.state.month_counts == point.state.month_counts
    assert restored.state.rules == point.state.rules
    assert restored.state.keys == point.state.keys
    auditor = Auditor(key, resume=restored)
    for leaf in built.leaves[split:]:
        auditor.feed(leaf)
    result = auditor.finish(built.checkpoint())
    reference = replay(built)
    assert {name: (s.earned, s.redeemed) for name, s in result.accounts.items()} == {
        name: (b.earned, b.redeemed) for name, b in reference.balances.items()
    }
    assert result.start == split
    assert result.balances_recomputed


def test_resumed_audit_still_checks_the_chain_and_the_rules() -> None:
    built = standard_log()
    key = built.town.log_signer.verifier()
    split = 12
    auditor = Auditor(key)
    for leaf in built.leaves[:split]:
        auditor.feed(leaf)
    auditor.finish(built.checkpoint(split))
    point = auditor.resume_point()
    # A leaf whose prev does not link to the snapshot's last leaf.
    forged = Leaf.from_bytes(built.leaves[split])
    relinked = Leaf(forged.seq, forged.time, bytes(32), forged.envelope).to_bytes()
    auditor = Auditor(key, resume=point)
    with pytest.raises(VerificationError) as error:
        auditor.feed(relinked)
        auditor.finish(built.checkpoint())
    assert (error.value.seq, error.value.check) == (split, "chain")


def test_damaged_snapshot_bytes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError):
        decode_semantics(b"\x93\x01\x02")
    with pytest.raises(FormatError):
        decode_semantics(b"\xc1")
    built = standard_log()
    pinned = PinnedState(built.checkpoint())
    with pytest.raises(SourceError, match="records no semantics snapshot"):
        load_semantics(tmp_path / "state.json", pinned)


def test_state_file_refuses_a_damaged_semantics_reference(tmp_path: Path) -> None:
    built = standard_log()
    pinned = PinnedState(built.checkpoint())
    value = json.loads(pinned.to_bytes())
    value["semantics"] = {"file": "../elsewhere", "sha256": "00" * 32, "tree_size": 1}
    with pytest.raises(SourceError):
        PinnedState.from_bytes(json.dumps(value).encode())
    value["semantics"] = {"file": "s", "sha256": "00" * 32, "tree_size": len(built.leaves) + 1}
    with pytest.raises(SourceError, match="semantics snapshot is for"):
        PinnedState.from_bytes(json.dumps(value).encode())
    value["semantics"]["tree_size"] = len(built.leaves)
    assert PinnedState.from_bytes(json.dumps(value).encode()).semantics is not None


def test_read_ahead_is_bounded_in_bytes_as_well_as_in_items() -> None:
    pulled = 0

    def large() -> Iterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield bytes(4096)

    reader = read_ahead(large(), batch=100, depth=1, batch_bytes=3 * 4096)
    assert next(reader) == bytes(4096)
    time.sleep(0.3)  # the reader runs ahead as far as it may
    assert pulled <= 3 * 3  # the batch taken, one queued, one being filled
    assert sum(1 for _ in reader) == 999
    reader.close()


def test_read_ahead_keeps_order_raises_in_place_and_stops_when_abandoned() -> None:
    def broken() -> Iterator[bytes]:
        yield from (bytes([number]) for number in range(10))
        raise FormatError("the stream broke")

    received: list[bytes] = []
    with pytest.raises(FormatError, match="the stream broke"):
        for item in read_ahead(broken(), batch=3, depth=1):
            received.append(item)
    assert received == [bytes([number]) for number in range(10)]

    closed = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"leaf"
        finally:
            closed.set()

    reader = read_ahead(endless(), batch=2, depth=1)
    assert next(reader) == b"leaf"
    reader.close()
    assert closed.wait(5)


def view(
    *entries: RemoteEntry, score: int, earned: int, redeemed: int, grade: str, checkpoint: str = ""
) -> RemoteAccount:
    return RemoteAccount(
        "r", score, earned - redeemed, redeemed, earned, grade, entries, checkpoint
    )


def listed(seq: int, kind: str, points: int, reversed_by: int | None) -> RemoteEntry:
    """An entry as a node lists it, with only what the comparison reads filled in."""
    return RemoteEntry(
        seq=seq,
        time=0,
        at=0,
        kind=kind,
        rule="",
        qty=0,
        note="",
        item="",
        points=points,
        reversed_by=reversed_by,
    )


def test_answers_at_a_later_checkpoint_are_compared_at_the_audited_size() -> None:
    config = standard_log().town.config
    entries = (
        listed(20, "award", 30, None),
        listed(25, "redeem", 10, None),
        listed(31, "award", 5, None),  # after the audited size 30
        listed(22, "award", 40, 32),  # reversed after the audited size
    )
    assert figures_at(entries, 30) == (70, 10)
    assert figures_at(entries, 40) == (35, 10)
    expected = AccountSummary(1070, 70, 60, 10, config.grade_of(1070), 4)
    later = sign_checkpoint(Checkpoint("log", 40, bytes(32)), NoteSigner.generate("log"))
    answer = view(*entries, score=1035, earned=35, redeemed=10, grade=config.grade_of(1035))
    compare_account("r", read(answer, later, 30), expected, config, 30)  # consistent
    lying = view(*entries, score=1070, earned=70, redeemed=10, grade=config.grade_of(1070))
    with pytest.raises(VerificationError, match="the entries it lists give"):
        compare_account("r", read(lying, later, 30), expected, config, 30)
    with pytest.raises(VerificationError, match="its log gives"):
        compare_account("r", read(answer, later, 40), expected, config, 40)


def read(answer: RemoteAccount, at: Checkpoint, audited_size: int) -> NodeAnswer:
    """``answer`` as the checker reduces it, split into pages of one entry each."""
    pages = [replace(answer, entries=(entry,)) for entry in answer.entries]
    first, rest = (pages[0], pages[1:]) if pages else (answer, [])
    return NodeAnswer.read("r", first, rest, at, audited_size)
