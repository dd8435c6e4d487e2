"""Mutual TLS between towns' nodes (issue 8, transport), with certificates made here.

Wendeng witnesses Rushan's log. Each town has its own CA, which issues its node one
certificate for both serving and calling (serverAuth and clientAuth). Wendeng's node
serves TLS with its certificate, takes its staff's certificates (``--tls-client-ca``)
and other towns' (``--peer-ca``: Rushan's and Juxian's CAs), and admits only Rushan
(``--peer-name rushan``). Covered, on real nodes on 127.0.0.1:0:

* Rushan's primary gets Wendeng's cosignatures through the collector over mutual TLS;
* Juxian's node (a known CA, a name not listed) is refused PERMISSION_DENIED, logged
  with its subject and address, and counted in ``redlist_peer_refusals``;
* a certificate naming ``rushan`` from an unknown CA fails the handshake;
* a listed peer reads but never submits; the town's staff submit, but do not witness;
* plaintext to another machine is refused at start; the settings come together.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc import aio
from tests.builders import Town, create_log, submit_request
from tests.node.mirroring import mirror_in_subprocess
from tests.node.serving import rpc_error, serve_in_subprocess
from tests.pki import Authority, write_cert, write_key

from redlist.ledger.crypto import SigningKey
from redlist.ledger.errors import FormatError, KeyFileError
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.note.cosignature import verify_cosignature
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.witnessstore import WitnessStore
from redlist.node.configfile import load_config_file, resolve_settings
from redlist.node.cosigning import AskedWitness
from redlist.node.metrics import NodeMetrics
from redlist.node.peers import (
    PEER_SUBMIT,
    UNLISTED_PEER,
    WITNESS_NOT_PEER,
    check_peer_address,
    open_peer_channel,
    open_peer_channel_sync,
)
from redlist.node.server import NodeServer
from redlist.node.serveroptions import ServerOptions
from redlist.node.tls import PeerMaterial, PeerTLS, ServerTLS, load_peer_material
from redlist.node.witness import Witness, WitnessConfig
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

WITNESS = NoteSigner("wendeng-witness", SigningKey.generate())
BOTH = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


@dataclass(frozen=True)
class Towns:
    """The PEM files of three towns' CAs and nodes, a staff member, and a stranger."""

    wendeng_ca: Path
    wendeng_cert: Path
    wendeng_key: Path
    clerk_cert: Path
    clerk_key: Path
    peer_cas: Path  # Rushan's and Juxian's CAs, as Wendeng lists them
    rushan_cert: Path
    rushan_key: Path
    juxian_cert: Path
    juxian_key: Path
    stranger_cert: Path
    stranger_key: Path
    server_only_cert: Path
    server_only_key: Path

    def node(self, town: str) -> PeerMaterial:
        """What ``town``'s node presents when it calls Wendeng."""
        cert, key = getattr(self, f"{town}_cert"), getattr(self, f"{town}_key")
        return load_peer_material(PeerTLS(self.wendeng_ca, cert, key))

    def wendeng(self) -> ServerTLS:
        return ServerTLS(self.wendeng_cert, self.wendeng_key, self.wendeng_ca, self.peer_cas)


@pytest.fixture(scope="module")
def towns(tmp_path_factory: pytest.TempPathFactory) -> Towns:
    root = tmp_path_factory.mktemp("towns")
    wendeng, rushan, juxian = (
        Authority.create(f"{town} town CA") for town in ("Wendeng", "Rushan", "Juxian")
    )
    stranger = Authority.create("Rushan town CA")  # the same name, another key
    files: dict[str, Path] = {}

    def keep(name: str, issued: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> None:
        cert, key = issued
        files[f"{name}_cert"] = write_cert(root / f"{name}.pem", cert)
        files[f"{name}_key"] = write_key(root / f"{name}.key", key)

    keep("wendeng", wendeng.issue("CN=wendeng", usage=BOTH, server=True, dns=("wendeng",)))
    keep("clerk", wendeng.issue("CN=Wang Fang (grid)", usage=ExtendedKeyUsageOID.CLIENT_AUTH))
    keep("rushan", rushan.issue("CN=rushan", usage=BOTH, server=True, dns=("rushan",)))
    keep("juxian", juxian.issue("CN=juxian", usage=BOTH, server=True, dns=("juxian",)))
    keep("stranger", stranger.issue("CN=rushan", usage=BOTH, dns=("rushan",)))
    keep("server_only", rushan.issue("CN=rushan", usage=ExtendedKeyUsageOID.SERVER_AUTH))
    return Towns(
        wendeng_ca=write_cert(root / "wendeng-ca.pem", wendeng.cert),
        peer_cas=write_cert(root / "towns-ca.pem", rushan.cert, juxian.cert),
        **files,
    )


@pytest.fixture
def town() -> Town:
    return Town.generate()


@pytest.fixture
def rushan(tmp_path: Path, town: Town) -> Iterator[Path]:
    directory = tmp_path / "rushan"
    with create_log(directory, town, setup=True):
        pass
    yield directory


@pytest.fixture
def wendeng_data(tmp_path: Path) -> Path:
    directory = tmp_path / "wendeng"
    with create_log(directory, Town.generate("wendeng.example/log")):
        pass
    return directory


@asynccontextmanager
async def wendeng_node(
    data: Path, towns: Towns, watched: Log, metrics: NodeMetrics
) -> AsyncIterator[NodeServer]:
    """Wendeng's node: mutual TLS, Rushan's log witnessed, only ``rushan`` admitted."""
    config = WitnessConfig(WITNESS, {watched.origin: watched.verifier_key})
    options = ServerOptions(tls=towns.wendeng(), peer_names=frozenset({"rushan"}))
    with Log.open(data) as own:
        store = WitnessStore.open(data)
        try:
            witness = Witness(config, store, data)
            node = await NodeServer.start(own, "127.0.0.1:0", options, metrics, witness)
            try:
                yield node
            finally:
                await node.stop(grace=1.0)
        finally:
            store.close()


def refusals(metrics: NodeMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("redlist_peer_refusals_total", {"reason": reason})
    return value or 0.0


def test_the_listed_peer_gets_cosignatures_over_mutual_tls(
    rushan: Path, wendeng_data: Path, towns: Towns, town: Town
) -> None:
    metrics = NodeMetrics()

    async def main() -> None:
        with Log.open(rushan) as log:
            async with wendeng_node(wendeng_data, towns, log, metrics) as witness:
                ask = AskedWitness(witness.address, WITNESS.cosignature_verifier())
                options = ServerOptions(
                    ask_witness=(ask,),
                    cosign_interval=0.0,
                    peer_tls=PeerTLS(towns.wendeng_ca, towns.rushan_cert, towns.rushan_key),
                )
                primary = await NodeServer.start(log, "127.0.0.1:0", options)
                try:
                    async with aio.insecure_channel(primary.address) as channel:
                        stub = ledger_pb2_grpc.LedgerStub(channel)
                        await stub.Submit(submit_request([town.award("r-1", "litter")]))
                        served = await cosigned(stub, log)
                finally:
                    await primary.stop(grace=1.0)
        assert verify_cosignature(served, WITNESS.cosignature_verifier()) > 0

    asyncio.run(main())
    for reason in (UNLISTED_PEER, PEER_SUBMIT, WITNESS_NOT_PEER):
        assert refusals(metrics, reason) == 0


async def cosigned(stub: ledger_pb2_grpc.LedgerStub, log: Log) -> SignedCheckpoint:
    deadline = time.monotonic() + 15
    while True:
        note = (await stub.GetCheckpoint(pb.GetCheckpointRequest())).checkpoint
        checkpoint = SignedCheckpoint(note, log.verifier_key)
        if checkpoint.size == log.size and any(
            line.is_by(WITNESS.cosignature_verifier()) for line in checkpoint.signatures
        ):
            return checkpoint
        assert time.monotonic() < deadline, f"no cosignature: {note}"
        await asyncio.sleep(0.05)


def test_an_unlisted_peer_and_an_unknown_ca_are_refused(
    rushan: Path, wendeng_data: Path, towns: Towns, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = NodeMetrics()
    caplog.set_level(logging.WARNING, logger="redlist.node.peers")

    async def main() -> None:
        with Log.open(rushan) as log:
            async with wendeng_node(wendeng_data, towns, log, metrics) as witness:
                note = log.checkpoint().note
                request = pb.AddCheckpointRequest(old_size=0, checkpoint=note)
                # Juxian: a CA Wendeng lists, a name it does not.
                async with open_peer_channel(witness.address, towns.node("juxian")) as channel:
                    stub = ledger_pb2_grpc.WitnessStub(channel)
                    refused = await rpc_error(stub.AddCheckpoint(request))
                    assert refused.code() is grpc.StatusCode.PERMISSION_DENIED
                    assert UNLISTED_PEER in (refused.details() or "")
                    reads = ledger_pb2_grpc.LedgerStub(channel)
                    refused = await rpc_error(reads.GetCheckpoint(pb.GetCheckpointRequest()))
                    assert refused.code() is grpc.StatusCode.PERMISSION_DENIED
                # A certificate that says "rushan", from a CA nobody listed.
                async with open_peer_channel(witness.address, towns.node("stranger")) as channel:
                    stub = ledger_pb2_grpc.WitnessStub(channel)
                    handshake = await rpc_error(stub.AddCheckpoint(request))
                    assert handshake.code() is grpc.StatusCode.UNAVAILABLE
                # Rushan itself is cosigned: the refusals changed nothing.
                async with open_peer_channel(witness.address, towns.node("rushan")) as channel:
                    stub = ledger_pb2_grpc.WitnessStub(channel)
                    answer = await stub.AddCheckpoint(request)
                    assert answer.cosignature.startswith(f"— {WITNESS.name} ")

    asyncio.run(main())
    assert refusals(metrics, UNLISTED_PEER) == 2
    logged = [record.getMessage() for record in caplog.records]
    assert any(
        "peer refused reason=unlisted-peer subject=CN=juxian names=juxian,localhost "
        "address=ipv4:127.0.0.1:" in line
        for line in logged
    ), logged


def test_a_peer_reads_but_never_submits_and_staff_do_not_witness(
    rushan: Path, wendeng_data: Path, towns: Towns
) -> None:
    metrics = NodeMetrics()
    clerk = PeerTLS(towns.wendeng_ca, towns.clerk_cert, towns.clerk_key)

    async def main() -> None:
        with Log.open(rushan) as log:
            async with wendeng_node(wendeng_data, towns, log, metrics) as witness:
                async with open_peer_channel(witness.address, towns.node("rushan")) as channel:
                    reads = ledger_pb2_grpc.LedgerStub(channel)
                    answer = await reads.GetCheckpoint(pb.GetCheckpointRequest())
                    assert answer.checkpoint.startswith("wendeng.example/log\n")
                    refused = await rpc_error(reads.Submit(submit_request([b"x"])))
                    assert refused.code() is grpc.StatusCode.PERMISSION_DENIED
                    assert "never submit" in (refused.details() or "")
                    # Another town's node is not the town's staff: the register is not its.
                    asked = pb.CheckAccountsRequest(accounts=["dgc-0001"])
                    refused = await rpc_error(reads.CheckAccounts(asked))
                    assert refused.code() is grpc.StatusCode.PERMISSION_DENIED
                async with open_peer_channel(witness.address, load_peer_material(clerk)) as channel:
                    reads = ledger_pb2_grpc.LedgerStub(channel)
                    await reads.GetCheckpoint(pb.GetCheckpointRequest())
                    # A staff certificate is enough to check accounts (no register here).
                    checked = await reads.CheckAccounts(asked)
                    assert checked.register is False
                    submitted = await rpc_error(reads.Submit(submit_request([b"x"])))
                    # Refused by the ledger's rules, not by the peer policy.
                    assert submitted.code() is not grpc.StatusCode.PERMISSION_DENIED
                    witnessing = ledger_pb2_grpc.WitnessStub(channel)
                    refused = await rpc_error(witnessing.GetWitnessKey(pb.GetWitnessKeyRequest()))
                    assert refused.code() is grpc.StatusCode.PERMISSION_DENIED

    asyncio.run(main())
    assert refusals(metrics, PEER_SUBMIT) == 1
    assert refusals(metrics, WITNESS_NOT_PEER) == 1


def test_plaintext_to_another_machine_is_refused_at_start(rushan: Path) -> None:
    check_peer_address("127.0.0.1:7420", None)
    check_peer_address("localhost:7420", None)
    with pytest.raises(FormatError, match=r"rushan.example:7420 is not on this machine.*--peer-ca"):
        check_peer_address("rushan.example:7420", None)
    ask = AskedWitness("wendeng.example:7420", WITNESS.cosignature_verifier())

    async def main() -> None:
        with (
            Log.open(rushan) as log,
            pytest.raises(FormatError, match=r"--ask-witness wendeng\.example:7420"),
        ):
            await NodeServer.start(log, "127.0.0.1:0", ServerOptions(ask_witness=(ask,)))

    asyncio.run(main())


def test_peer_files_are_checked(towns: Towns, tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"not issued for clients .*clientAuth"):
        load_peer_material(PeerTLS(towns.wendeng_ca, towns.server_only_cert, towns.server_only_key))
    with pytest.raises(KeyFileError, match=r"does not belong to the certificate"):
        load_peer_material(PeerTLS(towns.wendeng_ca, towns.rushan_cert, towns.juxian_key))
    with pytest.raises(KeyFileError, match=r"peer CA file .*\(--peer-ca\) does not exist"):
        load_peer_material(PeerTLS(tmp_path / "missing.pem"))
    with pytest.raises(KeyFileError, match="--peer-cert and --peer-key together"):
        load_peer_material(PeerTLS(towns.wendeng_ca, towns.rushan_cert))
    assert load_peer_material(PeerTLS(towns.wendeng_ca)).subject is None


def test_peer_settings_come_together(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(
        'data = "town"\nlisten = "127.0.0.1:0"\ntls_cert = "tls/node.pem"\n'
        'tls_key = "tls/node.key"\npeer_ca = "tls/towns.pem"\npeer_cert = "tls/node.pem"\n'
        'peer_key = "tls/node.key"\npeer_names = ["rushan", "juxian"]\n'
    )
    settings = resolve_settings(load_config_file(config), {})
    assert settings.peer_ca == tmp_path / "tls/towns.pem"
    assert settings.peer_names == ("rushan", "juxian")
    options = ServerOptions.from_settings(settings)
    assert options.tls is not None and options.tls.peer_ca == tmp_path / "tls/towns.pem"
    assert options.peer_tls == PeerTLS(
        tmp_path / "tls/towns.pem", tmp_path / "tls/node.pem", tmp_path / "tls/node.key"
    )
    assert options.peer_names == {"rushan", "juxian"}
    flags = {"data": "d", "listen": "127.0.0.1:0"}
    with pytest.raises(FormatError, match="needs mutual TLS"):
        resolve_settings({}, {**flags, "peer_names": ["rushan"]})
    with pytest.raises(FormatError, match="together"):
        resolve_settings({}, {**flags, "peer_ca": Path("ca"), "peer_cert": Path("c")})
    with pytest.raises(FormatError, match="give 'peer_ca'"):
        resolve_settings({}, {**flags, "peer_cert": Path("c"), "peer_key": Path("k")})


def test_a_mirror_serves_its_copy_over_mutual_tls_to_listed_peers_only(
    rushan: Path, towns: Towns, tmp_path: Path
) -> None:
    """Wendeng mirrors Rushan's log (``redlist-node mirror``, a real subprocess) and
    serves the copy with serve's transport flags: mutual TLS, its staff CA and the
    towns' CAs, only ``rushan`` among the other towns' nodes."""
    with Log.open(rushan) as log:
        size, origin = log.size, log.origin
    with (
        serve_in_subprocess(
            rushan, "--tls-cert", towns.rushan_cert, "--tls-key", towns.rushan_key, output=tmp_path
        ) as upstream,
        mirror_in_subprocess(
            *("--data", tmp_path / "mirror", "--from", upstream, "--listen", "127.0.0.1:0"),
            *("--log-key", rushan / "log.pub", "--log-level", "info"),
            *("--peer-ca", towns.peer_cas, "--peer-cert", towns.wendeng_cert),
            *("--peer-key", towns.wendeng_key, "--tls-cert", towns.wendeng_cert),
            *("--tls-key", towns.wendeng_key, "--tls-client-ca", towns.wendeng_ca),
            *("--peer-name", "rushan", "--max-streams-per-client", "2"),
            output=tmp_path,
        ) as (_process, address),
    ):
        request = pb.GetCheckpointRequest()
        with open_peer_channel_sync(address, towns.node("rushan")) as channel:
            reads = ledger_pb2_grpc.LedgerStub(channel)
            deadline = time.monotonic() + 30
            while True:  # the listed peer reads the copy once it has caught up
                try:
                    note = reads.GetCheckpoint(request, timeout=5).checkpoint
                    if note.startswith(f"{origin}\n{size}\n"):
                        break
                except grpc.RpcError as error:
                    assert error.code() is grpc.StatusCode.UNAVAILABLE, error
                assert time.monotonic() < deadline, "the mirror did not catch up"
                time.sleep(0.05)
        clerk = load_peer_material(PeerTLS(towns.wendeng_ca, towns.clerk_cert, towns.clerk_key))
        with open_peer_channel_sync(address, clerk) as channel:
            ledger_pb2_grpc.LedgerStub(channel).GetCheckpoint(request, timeout=5)
        with open_peer_channel_sync(address, towns.node("juxian")) as channel:
            with pytest.raises(grpc.RpcError) as refused:
                ledger_pb2_grpc.LedgerStub(channel).GetCheckpoint(request, timeout=5)
            assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
            assert UNLISTED_PEER in (refused.value.details() or "")
        with grpc.insecure_channel(address) as channel:  # plaintext: no handshake
            with pytest.raises(grpc.RpcError) as refused:
                ledger_pb2_grpc.LedgerStub(channel).GetCheckpoint(request, timeout=5)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    logged = (tmp_path / "mirror.err").read_text()
    assert "transport=mutual-tls" in logged, logged
    assert "1 per client" not in logged and "2 per client" in logged, logged
    assert "peer refused reason=unlisted-peer subject=CN=juxian" in logged, logged
