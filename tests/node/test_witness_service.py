"""The Witness service of a town node (DESIGN 8.2, 8.5): a real node on 127.0.0.1:0,
real LMDB state, evidence files checked by ``redlist-verify evidence`` and listed by
``redlist-node alarms``, and the state surviving kill -9 of ``redlist-node serve``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from tests.builders import Town, create_log
from tests.node.serving import BIN, metadata_of, rpc_error, serve_in_subprocess

from redlist.ledger import keyfile, merkle
from redlist.ledger.crypto import SigningKey
from redlist.ledger.errors import FormatError
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from redlist.ledger.note.cosignature import verify_cosignature
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.ledger.witnessstore import WitnessStore
from redlist.node import evidence as evidence_files
from redlist.node.configfile import load_config_file, resolve_settings
from redlist.node.evidence import EVIDENCE_DIR_NAME, origin_hash
from redlist.node.metrics import NodeMetrics
from redlist.node.server import LEDGER_SERVICE, NodeServer
from redlist.node.witness import WITNESS_SERVICE, Witness, WitnessConfig, health_service
from redlist.proto.contract import WITNESS_SIZE_KEY
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

WATCHED = "rushan.example/log"
LOG = NoteSigner.generate(WATCHED)
IMPOSTOR = NoteSigner.generate(WATCHED)  # the log's name, another key
STRANGER = NoteSigner.generate("juxian.example/log")
WITNESS = NoteSigner("wendeng-witness", SigningKey.generate())

LEAVES = [f"entry {n}".encode() for n in range(40)]
HONEST = merkle.MemoryTree(merkle.leaf_hash(leaf) for leaf in LEAVES)
FORKED = merkle.MemoryTree(
    merkle.leaf_hash(leaf) for leaf in [*LEAVES[:5], b"rewritten", *LEAVES[6:]]
)


def note_of(history: merkle.MemoryTree, size: int, signer: NoteSigner = LOG) -> str:
    prefix = merkle.MemoryTree(history.node(0, index) for index in range(size))
    return sign_checkpoint(Checkpoint(signer.name, size, prefix.root()), signer).note


def request(
    old: int, size: int, history: merkle.MemoryTree = HONEST, signer: NoteSigner = LOG
) -> pb.AddCheckpointRequest:
    proof = merkle.consistency_proof(history, old, size) if 0 < old < size else []
    return pb.AddCheckpointRequest(
        old_size=old, consistency_proof=proof, checkpoint=note_of(history, size, signer)
    )


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """The witnessing town's own data directory (it serves its own log too)."""
    directory = tmp_path / "wendeng"
    with create_log(directory, Town.generate()):
        pass
    yield directory


def witness_node(
    data: Path, body: Callable[[ledger_pb2_grpc.WitnessStub], Awaitable[None]]
) -> None:
    config = WitnessConfig(WITNESS, {WATCHED: LOG.verifier()})

    async def main() -> None:
        with Log.open(data) as log:
            store = WitnessStore.open(data)
            try:
                node = await NodeServer.start(
                    log, "127.0.0.1:0", witness=Witness(config, store, data)
                )
                try:
                    async with aio.insecure_channel(node.address) as channel:
                        await asyncio.wait_for(body(ledger_pb2_grpc.WitnessStub(channel)), 20)
                finally:
                    await node.stop(grace=1.0)
            finally:
                store.close()

    asyncio.run(main())


def stored_size(data: Path) -> int | None:
    store = WitnessStore.open(data)
    try:
        head = store.head(LOG.verifier())
        return None if head is None else head.size
    finally:
        store.close()


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / argv[0], *argv[1:]], capture_output=True, text=True, timeout=60, check=False
    )


def test_an_honest_log_is_cosigned_and_the_cosignatures_verify(data: Path) -> None:
    async def body(stub: ledger_pb2_grpc.WitnessStub) -> None:
        key = (await stub.GetWitnessKey(pb.GetWitnessKeyRequest())).verifier_key
        assert key == WITNESS.cosignature_verifier().encode()
        old = 0
        for size in (0, 5, 10, 10, 33):
            answer = await stub.AddCheckpoint(request(old, size))
            assert answer.cosignature.startswith(f"— {WITNESS.name} ")
            assert answer.cosignature.endswith("\n") and answer.cosignature.count("\n") == 1
            cosigned = open_checkpoint(note_of(HONEST, size) + answer.cosignature, LOG.verifier())
            verify_cosignature(cosigned, VerifierKey.parse(key))
            old = size

    witness_node(data, body)
    assert stored_size(data) == 33


def test_a_forked_log_is_refused_with_evidence_that_convicts_it(data: Path) -> None:
    async def body(stub: ledger_pb2_grpc.WitnessStub) -> None:
        await stub.AddCheckpoint(request(0, 10))
        error = await rpc_error(stub.AddCheckpoint(request(10, 30, FORKED)))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "not shown consistent" in (error.details() or "")

    witness_node(data, body)
    assert stored_size(data) == 10  # the witness kept what it had cosigned
    files = list((data / EVIDENCE_DIR_NAME / origin_hash(WATCHED)).glob("*.txt"))
    assert len(files) == 1
    log_key = LOG.verifier().encode()

    convicted = run("redlist-verify", "evidence", files[0], "--log-key", log_key)
    assert convicted.returncode == 1, convicted.stderr
    assert "SPLIT VIEW PROVEN" in convicted.stdout
    # Said in the reader's language from beginning to end, what it proves included.
    chinese = run("redlist-verify", "--lang", "zh_CN", "evidence", files[0], "--log-key", log_key)
    assert chinese.returncode == 1, chinese.stderr
    assert "两段不同的历史" in chinese.stdout and "entries" not in chinese.stdout
    # Another key with the log's name convicts nobody.
    other = run("redlist-verify", "evidence", files[0], "--log-key", IMPOSTOR.verifier().encode())
    assert other.returncode == 0, other.stderr
    assert "not validly signed by this log key" in other.stdout

    alarms = run("redlist-node", "alarms", "--data", data, "--witness-for", log_key)
    assert alarms.returncode == 1, alarms.stderr
    assert "PROVES A SPLIT VIEW" in alarms.stdout and WATCHED in alarms.stdout


def test_a_primary_asking_again_with_the_same_fork_leaves_one_file(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A refused primary keeps asking (its back-off): the same evidence is kept once,
    # and another fork each time stops at MAX_EVIDENCE_FILES files.
    monkeypatch.setattr(evidence_files, "MAX_EVIDENCE_FILES", 3)

    async def body(stub: ledger_pb2_grpc.WitnessStub) -> None:
        await stub.AddCheckpoint(request(0, 10))
        for _ in range(3):
            error = await rpc_error(stub.AddCheckpoint(request(10, 30, FORKED)))
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        folder = data / EVIDENCE_DIR_NAME / origin_hash(WATCHED)
        assert len(list(folder.glob("*.txt"))) == 1
        for size in (11, 12, 13, 14, 15):  # a fork of another size each time
            error = await rpc_error(stub.AddCheckpoint(request(10, size, FORKED)))
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert len(list(folder.glob("*.txt"))) == 3

    witness_node(data, body)


def test_the_same_size_with_another_root_is_a_split_view(data: Path) -> None:
    async def body(stub: ledger_pb2_grpc.WitnessStub) -> None:
        await stub.AddCheckpoint(request(0, 10))
        error = await rpc_error(stub.AddCheckpoint(request(10, 10, FORKED)))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION

    witness_node(data, body)
    (evidence,) = (data / EVIDENCE_DIR_NAME).glob("*/*.txt")
    verdict = run("redlist-verify", "evidence", evidence, "--log-key", LOG.verifier().encode())
    assert verdict.returncode == 1 and "different roots" in verdict.stdout


def alarm_node(data: Path, body: Callable[[aio.Channel, NodeMetrics], Awaitable[None]]) -> None:
    """A node witnessing two logs, with metrics; ``body`` gets its channel."""
    config = WitnessConfig(WITNESS, {WATCHED: LOG.verifier(), STRANGER.name: STRANGER.verifier()})

    async def main() -> None:
        metrics = NodeMetrics()
        with Log.open(data) as log:
            store = WitnessStore.open(data)
            try:
                witness = Witness(config, store, data)
                node = await NodeServer.start(log, "127.0.0.1:0", None, metrics, witness)
                try:
                    async with aio.insecure_channel(node.address) as channel:
                        await asyncio.wait_for(body(channel, metrics), 20)
                finally:
                    await node.stop(grace=1.0)
            finally:
                store.close()

    asyncio.run(main())


async def health_of(channel: aio.Channel, service: str) -> str:
    stub = health_pb2_grpc.HealthStub(channel)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))


def split_view_metric(metrics: NodeMetrics, origin: str) -> float | None:
    return metrics.registry.get_sample_value("redlist_witness_split_view", {"origin": origin})


def test_a_split_view_turns_that_log_s_health_and_metric_until_the_evidence_is_moved(
    data: Path, tmp_path: Path
) -> None:
    watched, stranger = health_service(WATCHED), health_service(STRANGER.name)
    assert watched == "redlist.v1.Witness/rushan.example/log"

    async def before_and_after(channel: aio.Channel, metrics: NodeMetrics) -> None:
        assert await health_of(channel, watched) == "SERVING"
        assert split_view_metric(metrics, WATCHED) == 0
        stub = ledger_pb2_grpc.WitnessStub(channel)
        await stub.AddCheckpoint(request(0, 10))
        error = await rpc_error(stub.AddCheckpoint(request(10, 30, FORKED)))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        for _ in range(200):
            if await health_of(channel, watched) == "NOT_SERVING":
                break
            await asyncio.sleep(0.01)
        assert await health_of(channel, watched) == "NOT_SERVING"
        assert split_view_metric(metrics, WATCHED) == 1
        # The town's own log, the Witness service and the other log serve on.
        for service in ("", LEDGER_SERVICE, WITNESS_SERVICE, stranger):
            assert await health_of(channel, service) == "SERVING", service
        assert split_view_metric(metrics, STRANGER.name) == 0
        # It goes on cosigning the history it cosigned before, never the other one.
        await stub.AddCheckpoint(request(10, 20))

    async def restarted(channel: aio.Channel, metrics: NodeMetrics) -> None:
        assert await health_of(channel, watched) == "NOT_SERVING"
        assert await health_of(channel, stranger) == "SERVING"
        assert split_view_metric(metrics, WATCHED) == 1

    async def cleared(channel: aio.Channel, metrics: NodeMetrics) -> None:
        assert await health_of(channel, watched) == "SERVING"
        assert split_view_metric(metrics, WATCHED) == 0

    alarm_node(data, before_and_after)
    alarm_node(data, restarted)  # the evidence is kept: the alarm again
    (data / EVIDENCE_DIR_NAME / origin_hash(WATCHED)).rename(tmp_path / "kept-evidence")
    alarm_node(data, cleared)


def test_a_stale_old_size_is_aborted_with_the_stored_size(data: Path) -> None:
    async def body(stub: ledger_pb2_grpc.WitnessStub) -> None:
        await stub.AddCheckpoint(request(0, 10))
        error = await rpc_error(stub.AddCheckpoint(request(0, 20)))
        assert error.code() == grpc.StatusCode.ABORTED
        assert metadata_of(error)[WITNESS_SIZE_KEY] == "10"
        # The caller retries from there, and is cosigned.
        await stub.AddCheckpoint(request(10, 20))

    witness_node(data, body)
    assert stored_size(data) == 20


def test_refusals_unknown_log_bad_signature_bad_request(data: Path) -> None:
    async def body(stub: ledger_pb2_grpc.WitnessStub) -> None:
        error = await rpc_error(stub.AddCheckpoint(request(0, 5, signer=STRANGER)))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        error = await rpc_error(stub.AddCheckpoint(request(0, 5, signer=IMPOSTOR)))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        bad = request(0, 5)
        bad.old_size = 6
        error = await rpc_error(stub.AddCheckpoint(bad))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        garbage = pb.AddCheckpointRequest(old_size=0, checkpoint="not a note")
        error = await rpc_error(stub.AddCheckpoint(garbage))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT

    witness_node(data, body)
    assert stored_size(data) is None  # nothing refused was stored
    assert not (data / EVIDENCE_DIR_NAME).exists()
    quiet = run("redlist-node", "alarms", "--data", data)
    assert quiet.returncode == 0 and "No split-view evidence" in quiet.stdout


def test_unreadable_evidence_exits_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    for path in (junk, tmp_path / "missing.txt"):
        result = run("redlist-verify", "evidence", path, "--log-key", LOG.verifier().encode())
        assert result.returncode == 2
        assert "redlist-verify:" in result.stderr


def test_the_state_survives_kill_9_right_after_a_cosignature(tmp_path: Path, data: Path) -> None:
    key_file = tmp_path / "witness.pem"
    keyfile.write_key_files(key_file, WITNESS.key, WITNESS.name)
    log_pub = tmp_path / "rushan.pub"
    log_pub.write_text(LOG.verifier().encode() + "\n")
    flags = ("--witness-key", key_file, "--witness-for", log_pub, "--log-level", "warning")
    processes: list[subprocess.Popen[bytes]] = []

    for attempt, (old, size, expected) in enumerate(((0, 10, None), (0, 12, 10))):
        output = tmp_path / f"run-{attempt}"
        output.mkdir()
        serving = serve_in_subprocess(data, *flags, output=output, started=processes.append)
        with serving as address, grpc.insecure_channel(address) as channel:
            stub = ledger_pb2_grpc.WitnessStub(channel)
            key = stub.GetWitnessKey(pb.GetWitnessKeyRequest()).verifier_key
            assert key == WITNESS.cosignature_verifier().encode()  # named by FILE.pub
            if expected is None:
                stub.AddCheckpoint(request(old, size))
                os.kill(processes[-1].pid, signal.SIGKILL)
                processes[-1].wait(timeout=20)
            else:
                # Restarted: the witness remembers size 10 and refuses to start over.
                with pytest.raises(grpc.RpcError) as caught:
                    stub.AddCheckpoint(request(old, size))
                assert caught.value.code() == grpc.StatusCode.ABORTED
                trailing = dict(caught.value.trailing_metadata() or ())
                assert trailing[WITNESS_SIZE_KEY] == str(expected)
        if expected is None:
            assert processes[-1].returncode == -signal.SIGKILL
            assert stored_size(data) == 10


def test_witness_settings_come_together(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(
        'data = "town"\nlisten = "127.0.0.1:0"\nwitness_key = "w.pem"\n'
        f'witness_for = ["rushan.pub", "{LOG.verifier().encode()}"]\n'
    )
    settings = resolve_settings(load_config_file(config), {})
    assert settings.witness_key == tmp_path / "w.pem"
    assert settings.witness_for == (str(tmp_path / "rushan.pub"), LOG.verifier().encode())
    with pytest.raises(FormatError, match="together"):
        resolve_settings({}, {"data": "d", "listen": "127.0.0.1:0", "witness_for": ["x"]})
    with pytest.raises(FormatError, match="together"):
        resolve_settings({}, {"data": "d", "listen": "127.0.0.1:0", "witness_key": Path("k")})
