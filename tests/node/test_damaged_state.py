"""A node whose stored state is damaged while it serves: Submit is refused, reads go on.

A real ``redlist-node serve`` subprocess on 127.0.0.1:0 serves a small town log. One
bit of a resident's balance is flipped on disk behind its back (a raw LMDB write from
this process, as a failing disk would), turning 93 points into 125. The next Submit
that reads that balance, a 120-point redemption, must be refused with DATA_LOSS
naming the table and the record; so must every later Submit, whatever it touches;
GetCheckpoint, GetLeaves and the proofs must still answer, with the checkpoint
signed before the damage; health must say the writes are NOT_SERVING and the rest
SERVING; and the node's log must say once, as an error, that it stopped taking writes.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.builders import RuleSpec, Town, create_log, submit_request
from tests.node.serving import serve_in_subprocess
from tests.rawstore import raw_tables

from redlist.ledger import merkle
from redlist.ledger.store import ENV_DIR_NAME
from redlist.node.server import LEDGER_SERVICE, WRITES_HEALTH_SERVICE
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

HARVEST = RuleSpec("harvest", "Helped with the autumn harvest", "public-service", 31)


def test_submit_is_refused_after_the_damage_and_reads_go_on(tmp_path: Path) -> None:
    town = Town.from_seed(b"damaged state while serving")
    data = tmp_path / "data"
    with create_log(data, town, setup=True) as log:
        log.append([town.set_rule(HARVEST)], now_ms=town.now_ms)

    with (
        serve_in_subprocess(data, output=tmp_path) as address,
        grpc.insecure_channel(address) as channel,
    ):
        stub = ledger_pb2_grpc.LedgerStub(channel)
        award = stub.Submit(
            submit_request([town.award("resident-1", "harvest", qty=3)]), timeout=30
        )
        size = award.seqs[0] + 1
        assert stub.GetAccount(pb.GetAccountRequest(account="resident-1")).spendable == 93

        with raw_tables(data / ENV_DIR_NAME) as tables:  # 93 becomes 125 on disk
            balance = bytearray(tables.get("balances", b"resident-1") or b"")
            assert balance[1] == 93
            balance[1] ^= 0x20
            tables.put("balances", b"resident-1", bytes(balance))

        for envelope in (town.redeem("resident-1", 120), town.award("resident-2", "clean-pond")):
            with pytest.raises(grpc.RpcError) as refused:
                stub.Submit(submit_request([envelope]), timeout=30)
            assert refused.value.code() == grpc.StatusCode.DATA_LOSS
            details = refused.value.details() or ""
            assert details.startswith("the node has stopped taking entries, nothing was stored")
            assert "the balances record of account resident-1 does not match its checksum" in (
                details
            )

        health = health_pb2_grpc.HealthStub(channel)
        for service, status in (
            (WRITES_HEALTH_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING),
            (LEDGER_SERVICE, health_pb2.HealthCheckResponse.SERVING),
            ("", health_pb2.HealthCheckResponse.SERVING),
        ):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert answer.status == status, service

        checkpoint = stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=30).checkpoint
        assert checkpoint == award.checkpoint  # nothing signed since the damage
        leaves = list(stub.GetLeaves(pb.GetLeavesRequest(start=0, end=size), timeout=30))
        assert [leaf.seq for leaf in leaves] == list(range(size))
        proof = stub.GetInclusionProof(
            pb.InclusionProofRequest(seq=size - 1, tree_size=size), timeout=30
        )
        root = merkle.root_of([merkle.leaf_hash(leaf.leaf) for leaf in leaves])
        merkle.verify_inclusion(
            merkle.leaf_hash(leaves[-1].leaf), size - 1, size, list(proof.hashes), root
        )

    log_lines = (tmp_path / "serve.err").read_text().splitlines()
    stopped = [line for line in log_lines if "writes stopped" in line]
    assert len(stopped) == 1, log_lines
    assert " ERROR " in stopped[0]
    assert "table=balances record=account resident-1" in stopped[0]
