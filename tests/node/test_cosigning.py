"""A primary collecting a witness's cosignatures (DESIGN 8.4, ``--ask-witness``): real
nodes on 127.0.0.1:0, the witness a second ``NodeServer`` with its own LMDB state, the
bundle written by ``redlist-node export`` and checked by ``redlist-verify``."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from grpc import aio
from tests.builders import Town, create_log, submit_request
from tests.node.mirroring import mirroring
from tests.node.serving import BIN

from redlist.ledger.crypto import SigningKey
from redlist.ledger.errors import FormatError
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.note.cosignature import verify_cosignature
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.witnessstore import WitnessStore
from redlist.node.configfile import load_config_file, resolve_settings
from redlist.node.cosigning import COSIGNED_FILE, AskedWitness
from redlist.node.server import NodeServer
from redlist.node.serveroptions import ServerOptions
from redlist.node.witness import Witness, WitnessConfig
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

WITNESS = NoteSigner("wendeng-witness", SigningKey.generate())
OTHER = NoteSigner("juxian-witness", SigningKey.generate())


@pytest.fixture
def town() -> Town:
    return Town.generate()


@pytest.fixture
def primary(tmp_path: Path, town: Town) -> Iterator[Path]:
    directory = tmp_path / "rushan"
    with create_log(directory, town, setup=True):
        pass
    yield directory


@pytest.fixture
def witness_data(tmp_path: Path) -> Path:
    directory = tmp_path / "wendeng"
    with create_log(directory, Town.generate("wendeng.example/log")):
        pass
    return directory


@asynccontextmanager
async def witness_node(data: Path, watched: Log) -> AsyncIterator[NodeServer]:
    config = WitnessConfig(WITNESS, {watched.origin: watched.verifier_key})
    with Log.open(data) as own:
        store = WitnessStore.open(data)
        try:
            node = await NodeServer.start(own, "127.0.0.1:0", witness=Witness(config, store, data))
            try:
                yield node
            finally:
                await node.stop(grace=1.0)
        finally:
            store.close()


@asynccontextmanager
async def primary_node(log: Log, *asked: AskedWitness) -> AsyncIterator[ledger_pb2_grpc.LedgerStub]:
    options = ServerOptions(ask_witness=asked, cosign_interval=0.0)
    node = await NodeServer.start(log, "127.0.0.1:0", options)
    try:
        async with aio.insecure_channel(node.address) as channel:
            yield ledger_pb2_grpc.LedgerStub(channel)
    finally:
        await node.stop(grace=1.0)


async def cosigned_checkpoint(
    stub: ledger_pb2_grpc.LedgerStub, log: Log, size: int
) -> SignedCheckpoint:
    """GetCheckpoint, polled until it is at ``size`` and carries WITNESS's cosignature."""
    deadline = time.monotonic() + 15
    while True:
        note = (await stub.GetCheckpoint(pb.GetCheckpointRequest())).checkpoint
        checkpoint = SignedCheckpoint(note, log.verifier_key)
        cosigned = any(line.is_by(WITNESS.cosignature_verifier()) for line in checkpoint.signatures)
        if checkpoint.size == size and cosigned:
            return checkpoint
        assert time.monotonic() < deadline, f"no cosignature at size {size}: {note}"
        await asyncio.sleep(0.05)


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / argv[0], *argv[1:]], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_primary_serves_and_exports_its_witness_s_cosignatures(
    primary: Path, witness_data: Path, town: Town, tmp_path: Path
) -> None:

    async def main() -> None:
        with Log.open(primary) as log:
            async with witness_node(witness_data, log) as witness:
                ask = AskedWitness(witness.address, WITNESS.cosignature_verifier())
                async with primary_node(log, ask) as stub:
                    for n in range(3):
                        await stub.Submit(submit_request([town.award(f"resident-{n}", "litter")]))
                    served = await cosigned_checkpoint(stub, log, log.size)
                    assert verify_cosignature(served, WITNESS.cosignature_verifier()) > 0
                    # Follow serves the same cosigned note for the latest size.
                    stream = stub.Follow(pb.FollowRequest(start=log.size))
                    event = await anext(aiter(stream))
                    stream.cancel()
                    assert event.checkpoint == served.note
                    # A newer checkpoint is served plainly until the witness cosigned it.
                    answer = await stub.Submit(submit_request([town.award("resident-9", "litter")]))
                    fresh = SignedCheckpoint(answer.checkpoint, log.verifier_key)
                    for line in fresh.signatures:
                        if line.is_by(WITNESS.cosignature_verifier()):
                            verify_cosignature(fresh, WITNESS.cosignature_verifier())
                    await cosigned_checkpoint(stub, log, log.size)

    asyncio.run(main())
    assert (primary / COSIGNED_FILE).is_file()

    bundle = tmp_path / "bundle"
    exported = run("redlist-node", "export", "--data", primary, "--out", bundle, "--full")
    assert exported.returncode == 0, exported.stderr
    assert "cosigned by: wendeng-witness" in exported.stdout
    log_key = (primary / "log.pub").read_text().strip()
    witness_key = WITNESS.cosignature_verifier().encode()
    passed = run("redlist-verify", "bundle", bundle, "--log-key", log_key, "--witness", witness_key)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    other_key = OTHER.cosignature_verifier().encode()
    failed = run("redlist-verify", "bundle", bundle, "--log-key", log_key, "--witness", other_key)
    assert failed.returncode != 0
    assert "witness-policy" in failed.stdout + failed.stderr


def test_a_restarted_primary_catches_up_with_a_witness_that_is_ahead(
    primary: Path, witness_data: Path, town: Town
) -> None:
    """Without its kept note the primary asks from 0; the witness says its size (ABORTED)."""

    async def main() -> None:
        with Log.open(primary) as log:
            async with witness_node(witness_data, log) as witness:
                ask = AskedWitness(witness.address, WITNESS.cosignature_verifier())
                async with primary_node(log, ask) as stub:
                    await stub.Submit(submit_request([town.award("r-1", "litter")]))
                    await cosigned_checkpoint(stub, log, log.size)
                (primary / COSIGNED_FILE).unlink()
                async with primary_node(log, ask) as stub:
                    await stub.Submit(submit_request([town.award("r-2", "litter")]))
                    await cosigned_checkpoint(stub, log, log.size)

    asyncio.run(main())


def test_a_witness_that_is_down_never_blocks_submit(primary: Path, town: Town) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"

    async def main() -> None:
        with Log.open(primary) as log:
            ask = AskedWitness(address, WITNESS.cosignature_verifier())
            async with primary_node(log, ask) as stub:
                started = time.monotonic()
                for n in range(3):
                    answer = await stub.Submit(
                        submit_request([town.award(f"resident-{n}", "litter")])
                    )
                    assert len(answer.seqs) == 1
                assert time.monotonic() - started < 5
                note = (await stub.GetCheckpoint(pb.GetCheckpointRequest())).checkpoint
                served = SignedCheckpoint(note, log.verifier_key)
                assert served.size == log.size
                assert len(served.signatures) == 1  # the log's own signature only

    asyncio.run(main())
    assert not (primary / COSIGNED_FILE).exists()


def test_a_wrong_witness_address_or_key_is_named_in_the_log(
    primary: Path, witness_data: Path, tmp_path: Path, town: Town, caplog: pytest.LogCaptureFixture
) -> None:
    # Two mistakes of an operator: an address that is a node but no witness, and the
    # key of another witness than the one at the address.
    caplog.set_level(logging.WARNING, logger="redlist.node.cosigning")
    witness_own = tmp_path / "witness-own"
    with create_log(witness_own, Town.generate("witness.example/log")):
        pass
    addresses: list[str] = []

    async def main() -> None:
        with Log.open(primary) as log, Log.open(witness_data) as plain_log:
            plain = await NodeServer.start(plain_log, "127.0.0.1:0")  # serves no Witness
            addresses.append(plain.address)
            try:
                async with witness_node(witness_own, log) as witness:
                    asked = (
                        AskedWitness(plain.address, WITNESS.cosignature_verifier()),
                        AskedWitness(witness.address, OTHER.cosignature_verifier()),
                    )
                    async with primary_node(log, *asked) as stub:
                        await stub.Submit(submit_request([town.award("resident-1", "litter")]))
                        deadline = time.monotonic() + 15
                        while caplog.text.count("witness not cosigning") < 2:
                            assert time.monotonic() < deadline, caplog.text
                            await asyncio.sleep(0.05)
            finally:
                await plain.stop(grace=1.0)

    asyncio.run(main())
    said = caplog.text
    assert f"the node at {addresses[0]} is not a witness" in said
    assert "check the address given with --ask-witness" in said
    assert f"signed by wendeng-witness+{WITNESS.cosignature_verifier().key_hash.hex()}" in said
    assert f"not by the configured key {OTHER.cosignature_verifier().describe()}" in said


def test_witnesses_to_ask_come_from_the_config_file_and_are_checked(tmp_path: Path) -> None:
    key = WITNESS.cosignature_verifier().encode()
    config = tmp_path / "node.toml"
    config.write_text(
        'data = "town"\nlisten = "127.0.0.1:0"\ncosign_interval = 5\n'
        f'[[ask_witness]]\naddress = "127.0.0.1:7421"\nkey = "{key}"\n'
    )
    settings = resolve_settings(load_config_file(config), {})
    assert settings.ask_witness == (("127.0.0.1:7421", key),)
    assert settings.cosign_interval == 5.0
    options = ServerOptions.from_settings(settings)
    assert options.ask_witness == (AskedWitness("127.0.0.1:7421", WITNESS.cosignature_verifier()),)

    with pytest.raises(FormatError, match="log key, not a witness's cosigning key"):
        AskedWitness.parse("127.0.0.1:7421", WITNESS.verifier().encode())
    with pytest.raises(FormatError, match="not HOST:PORT"):
        AskedWitness.parse("nowhere", key)
    config.write_text('data = "town"\nlisten = "127.0.0.1:0"\n[[ask_witness]]\naddress = "x"\n')
    with pytest.raises(FormatError, match="exactly 'address' and 'key'"):
        load_config_file(config)


def test_serve_takes_ask_witness_flags(primary: Path) -> None:
    """A bad --ask-witness stops the start in words, before anything is served."""
    result = run(
        "redlist-node",
        "serve",
        "--data",
        primary,
        "--listen",
        "127.0.0.1:0",
        "--ask-witness",
        "127.0.0.1:7421",
        "not-a-key",
    )
    assert result.returncode != 0
    assert "--ask-witness 127.0.0.1:7421" in result.stderr


def test_follow_sends_the_checkpoint_again_once_witnesses_cosigned_it_and_a_mirror_serves_it(
    primary: Path, witness_data: Path, town: Town, tmp_path: Path
) -> None:
    """A Follow stream gets the plain checkpoint at the commit, then the cosigned one: a
    mirror following the primary serves the witness's cosignature beside its own."""
    mirror_key = NoteSigner("juxian-mirror", SigningKey.generate())

    async def main() -> None:
        with Log.open(primary) as log:
            async with witness_node(witness_data, log) as witness:
                ask = AskedWitness(witness.address, WITNESS.cosignature_verifier())
                options = ServerOptions(ask_witness=(ask,), cosign_interval=1.0)
                node = await NodeServer.start(log, "127.0.0.1:0", options)
                try:
                    async with (
                        aio.insecure_channel(node.address) as channel,
                        mirroring(
                            tmp_path / "mirror", node.address, log.verifier_key, signer=mirror_key
                        ) as mirrored,
                    ):
                        stub = ledger_pb2_grpc.LedgerStub(channel)
                        stream = stub.Follow(pb.FollowRequest(start=log.size))
                        events = aiter(stream)
                        size = log.size + 1
                        await stub.Submit(submit_request([town.award("resident-1", "litter")]))
                        notes: list[str] = []
                        while not notes or not _cosigned_at(notes[-1], log, size):
                            event = await asyncio.wait_for(anext(events), 15)
                            if event.HasField("checkpoint"):
                                notes.append(event.checkpoint)
                        stream.cancel()
                        last = SignedCheckpoint(notes[-1], log.verifier_key)
                        # The same size came first without the witness's line.
                        sizes = [SignedCheckpoint(n, log.verifier_key).size for n in notes]
                        assert sizes.count(size) >= 2
                        assert not _cosigned_by_witness(notes[sizes.index(size)], log)
                        # The mirror, following the same stream, serves the same cosignature.
                        await mirrored.wait_for(size)
                        deadline = time.monotonic() + 15
                        async with aio.insecure_channel(mirrored.address) as to_mirror:
                            copy = ledger_pb2_grpc.LedgerStub(to_mirror)
                            while True:
                                answer = await copy.GetCheckpoint(pb.GetCheckpointRequest())
                                if _cosigned_by_witness(answer.checkpoint, log):
                                    break
                                assert time.monotonic() < deadline, answer.checkpoint
                                await asyncio.sleep(0.05)
                        served = SignedCheckpoint(answer.checkpoint, log.verifier_key)
                        assert served.text == last.text
                        verify_cosignature(served, mirror_key.cosignature_verifier())
                finally:
                    await node.stop(grace=1.0)

    asyncio.run(main())


def _cosigned_at(note: str, log: Log, size: int) -> bool:
    return SignedCheckpoint(note, log.verifier_key).size == size and _cosigned_by_witness(note, log)


def _cosigned_by_witness(note: str, log: Log) -> bool:
    checkpoint = SignedCheckpoint(note, log.verifier_key)
    return any(line.is_by(WITNESS.cosignature_verifier()) for line in checkpoint.signatures)
