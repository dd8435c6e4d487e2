"""A primary that really forks: two data directories sharing one log key, each grown
with other entries and served on its own address. A mirror that followed one and is
then shown the other catches the split view with evidence anyone can check offline."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.builders import Town, create_log
from tests.node.mirroring import mirroring, run_cli, serving

from redlist.ledger.log import Log
from redlist.node.evidence import list_evidence

# How many entries the second history has beside the first's 3 after the copy.
LENGTHS = {"shorter": 1, "same size": 3, "longer": 6}


def fork(tmp_path: Path, town: Town, other: int) -> tuple[Path, Path]:
    """Two data directories of one log (one key) that share the first entries only."""
    first, second = tmp_path / "history-a", tmp_path / "history-b"
    with create_log(first, town, setup=True) as log:
        log.append([town.award("resident-1", "clean-pond")], now_ms=town.now_ms)
    shutil.copytree(first, second)
    with Log.open(first) as log:
        for n in range(3):
            log.append([town.award(f"resident-a{n}", "clean-pond")], now_ms=town.now_ms)
    with Log.open(second) as log:
        for n in range(other):
            log.append([town.award(f"resident-b{n}", "litter")], now_ms=town.now_ms + 1)
    return first, second


@pytest.mark.parametrize("length", sorted(LENGTHS))
def test_a_forked_primary_is_caught_with_evidence(tmp_path: Path, length: str) -> None:
    town = Town.generate()
    first, second = fork(tmp_path, town, LENGTHS[length])
    data = tmp_path / "mirror"
    log_pub = first / "log.pub"

    async def main() -> None:
        with Log.open(first) as history_a, Log.open(second) as history_b:
            key = history_a.verifier_key
            async with serving(history_a) as address_a, serving(history_b) as address_b:
                async with mirroring(data, address_a, key) as mirrored:
                    await mirrored.wait_for(history_a.size)
                held = history_a.size
                # The same mirror, now shown the other history.
                async with mirroring(data, address_b, key) as mirrored:
                    for _ in range(500):
                        if mirrored.follower.alarm is not None:
                            break
                        await asyncio.sleep(0.02)
                    assert mirrored.follower.alarm is not None
                    assert mirrored.mirror.size == held  # what it verified is kept
                    async with aio.insecure_channel(mirrored.address) as channel:
                        health = health_pb2_grpc.HealthStub(channel)
                        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
                        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
                # Restarted, it still does not follow: the evidence is kept.
                async with mirroring(data, address_b, key) as mirrored:
                    assert mirrored.follower.alarm is not None
                    await asyncio.sleep(0.2)
                    assert mirrored.mirror.size == held

    asyncio.run(main())
    (evidence,) = list_evidence(data)
    verdict = run_cli("redlist-verify", "evidence", evidence.path, "--log-key", log_pub)
    assert verdict.returncode == 1, verdict.stdout + verdict.stderr
    assert "SPLIT VIEW PROVEN" in verdict.stdout
    alarms = run_cli("redlist-node", "alarms", "--data", data)
    assert alarms.returncode == 1, alarms.stdout + alarms.stderr
    assert "PROVES A SPLIT VIEW" in alarms.stdout
