"""A primary that lies to its mirror: each bad leaf or checkpoint is refused and named,
and the mirror keeps serving what it had verified (DESIGN 8.3; issue 8)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from grpc import aio
from tests.builders import Town, corrupt_signature, create_log
from tests.node.mirroring import Forger, forged_primary, mirroring

from redlist.ledger.errors import SourceError
from redlist.ledger.note.checkpoint import open_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.node.evidence import list_evidence
from redlist.node.metrics import MirrorMetrics
from redlist.proto.client import NodeClient
from redlist.proto.errors import NodeUnreachableError
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc


async def logged_line(caplog: pytest.LogCaptureFixture, words: str) -> str:
    """The first log line holding ``words``, waited for (the mirror logs in its own time)."""
    deadline = time.monotonic() + 20
    while True:
        for record in caplog.records:
            if words in record.getMessage():
                return record.getMessage()
        assert time.monotonic() < deadline, caplog.text
        await asyncio.sleep(0.02)


def honest(tmp_path: Path, town: Town) -> Forger:
    """A forger holding a real log's leaves (genesis, staff, rules) and its checkpoint."""
    with create_log(tmp_path / "primary", town, setup=True) as log:
        leaves = [leaf for _seq, leaf in log.leaves(0, log.size)]
    forger = Forger(town.log_signer, leaves)
    forger.sign()
    return forger


def bad_signature(forger: Forger, town: Town) -> None:
    forger.add(corrupt_signature(town.award("resident-1", "clean-pond")), town.now_ms)
    forger.sign()


def unknown_rule(forger: Forger, town: Town) -> None:
    forger.add(town.award("resident-1", "no-such-rule"), town.now_ms)
    forger.sign()


def broken_chain(forger: Forger, town: Town) -> None:
    forger.add(town.award("resident-1", "clean-pond"), town.now_ms, prev=b"\x01" * 32)
    forger.sign()


def checkpoint_by_another_key(forger: Forger, town: Town) -> None:
    forger.add(town.award("resident-1", "clean-pond"), town.now_ms)
    forger.sign(signer=NoteSigner.generate(town.origin))


def rollback(forger: Forger, town: Town) -> None:
    forger.latest = min(forger.notes)  # serve an older checkpoint as the latest


CASES: dict[str, tuple[Callable[[Forger, Town], None], str, bool]] = {
    # case: (what the primary does, the check named, whether a seq is named)
    "bad leaf signature": (bad_signature, "signature", True),
    "rule break": (unknown_rule, "rule-inactive", True),
    "broken chain": (broken_chain, "chain", True),
    "bad checkpoint signature": (checkpoint_by_another_key, "checkpoint", False),
    "rollback": (rollback, "rollback", False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_lying_primary_is_refused_and_named(
    tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    lie, check, names_seq = CASES[case]
    town = Town.generate()
    forger = honest(tmp_path, town)
    forger.sign(1)  # an early checkpoint too, for the rollback
    forger.latest = len(forger.leaves)
    held = len(forger.leaves)
    caplog.set_level(logging.INFO, logger="redlist.node.mirror")

    metrics = MirrorMetrics()

    async def main() -> None:
        async with (
            forged_primary(forger) as upstream,
            mirroring(
                tmp_path / "mirror", upstream, town.log_signer.verifier(), metrics=metrics
            ) as mirrored,
        ):
            await mirrored.wait_for(held)
            answering = metrics.registry.get_sample_value(
                "redlist_mirror_primary_answering", {"origin": town.origin}
            )
            assert answering == 1
            lie(forger, town)
            line = await logged_line(caplog, f"check={check}")
            assert f"from={upstream}" in line
            assert (f"seq={held}" in line) == names_seq, line
            # What was verified is kept and served; nothing else is.
            assert mirrored.mirror.size == held
            async with aio.insecure_channel(mirrored.address) as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                note = (await stub.GetCheckpoint(pb.GetCheckpointRequest())).checkpoint
                assert open_checkpoint(note, town.log_signer.verifier()).size == held
            assert mirrored.follower.alarm is None
            assert list_evidence(tmp_path / "mirror") == []

    asyncio.run(main())


def test_leaf_batches_out_of_place_are_refused_and_nothing_is_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    town = Town.generate()
    forger = honest(tmp_path, town)
    forger.batch_offset = 1  # every batch claims to start one entry later than it does
    caplog.set_level(logging.INFO, logger="redlist.node.mirror")

    async def main() -> None:
        async with (
            forged_primary(forger) as upstream,
            mirroring(tmp_path / "mirror", upstream, town.log_signer.verifier()) as mirrored,
        ):
            line = await logged_line(caplog, "check=seq")
            assert f"from={upstream}" in line
            assert "entries [1, 4) where 0 was due" in line
            assert mirrored.mirror.size == 0

    asyncio.run(main())


def test_a_primary_of_another_log_is_named_as_the_operators_mistake(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The mirror's --from names a node of another town (or --log-key is another town's):
    # the line says which log the node serves, not that its checkpoint is forged.
    town, other = Town.generate(), Town.generate("other.example/log")
    forger = honest(tmp_path, town)
    caplog.set_level(logging.INFO, logger="redlist.node.mirror")

    async def main() -> None:
        async with (
            forged_primary(forger) as upstream,
            mirroring(tmp_path / "mirror", upstream, other.log_signer.verifier()) as mirrored,
        ):
            line = await logged_line(caplog, "check=checkpoint")
            assert (
                f"the node at {upstream} serves log '{town.origin}', not log "
                "'other.example/log' (the log key given): a wrong --from address or a wrong "
                "--log-key"
            ) in line
            assert mirrored.mirror.size == 0

    asyncio.run(main())


def test_a_mirror_that_holds_nothing_yet_says_so_and_is_not_called_unreachable(
    tmp_path: Path,
) -> None:
    # Its primary is down: it serves, but has no checkpoint to give. A verifier or a
    # clerk asking it must read the node's own words, not "cannot reach the node".
    town = Town.generate()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    upstream = f"127.0.0.1:{closed.getsockname()[1]}"  # nothing listens there

    metrics = MirrorMetrics()

    def answering() -> float | None:
        labels = {"origin": town.origin}
        return metrics.registry.get_sample_value("redlist_mirror_primary_answering", labels)

    async def main() -> None:
        async with mirroring(
            tmp_path / "mirror", upstream, town.log_signer.verifier(), metrics=metrics
        ) as mirrored:
            deadline = time.monotonic() + 20
            while answering() != 0:  # a monitoring system sees the primary is down
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            with (
                NodeClient(mirrored.address, timeout=10) as client,
                pytest.raises(SourceError) as refused,
            ):
                await asyncio.to_thread(client.get_checkpoint)
            assert not isinstance(refused.value, NodeUnreachableError)
            said = refused.value.diagnostics()
            assert "it answered GetCheckpoint" in said and "mirror still catching up" in said

    try:
        asyncio.run(main())
    finally:
        closed.close()
