"""TLS and mutual TLS on real servers (127.0.0.1:0), with certificates made here.

A small PKI is generated per module with ``cryptography``: a town CA, the node's
certificate for 127.0.0.1 and localhost, a staff client certificate, and the same
again from an unrelated CA. Covered: TLS serves a client that trusts the CA and
refuses plaintext and untrusting clients; mutual TLS refuses a client without a
certificate (or with one from another CA) and serves one with it; every bad file
is reported in words at start; ``redlist-node serve`` takes the flags and the TOML
keys; the staff CLI's ``redlist account`` works over mutual TLS, and says what to
do when TLS is missing.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc import aio
from tests.builders import Town, create_log
from tests.node.serving import rpc_error, serve_in_subprocess
from tests.pki import NOW, Authority, write_cert, write_key
from tests.staff.running import redlist

from redlist.ledger.errors import FormatError, KeyFileError
from redlist.ledger.log import Log
from redlist.node.configfile import load_config_file, resolve_settings
from redlist.node.ratelimit import RateLimit
from redlist.node.server import NodeServer
from redlist.node.serveroptions import ServerOptions
from redlist.node.tls import ServerTLS, is_loopback, load_server_material
from redlist.proto.client import RemoteTLS
from redlist.staff.cli import build_parser
from redlist.staff.client import LedgerClient, NodeAddress
from redlist.v1 import ledger_pb2 as pb
from redlist.v1 import ledger_pb2_grpc

CLERK = "CN=Wang Fang (grid),O=Dongguan town"
CASHIER = "CN=Sun Li (cashier),O=Dongguan town"


# ---------------------------------------------------------------------------
# A small PKI (tests/pki.py makes the certificates)


@dataclass(frozen=True)
class Pki:
    """PEM files: the town CA, the node's certificate and key, clients from both CAs."""

    root: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    cashier_cert: Path
    cashier_key: Path
    other_ca: Path
    stranger_cert: Path
    stranger_key: Path
    town_ca: Authority

    def server(self, *, mutual: bool = False) -> ServerTLS:
        return ServerTLS(self.server_cert, self.server_key, self.ca if mutual else None)

    def client(self, *, with_cert: bool = True, ca: Path | None = None) -> RemoteTLS:
        if not with_cert:
            return RemoteTLS(ca=ca or self.ca)
        return RemoteTLS(ca=ca or self.ca, cert=self.client_cert, key=self.client_key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    town_ca, other = Authority.create("Dongguan town CA"), Authority.create("Someone else's CA")
    server, server_key = town_ca.issue(
        "CN=node.dongguan.example", usage=ExtendedKeyUsageOID.SERVER_AUTH, server=True
    )
    client, client_key = town_ca.issue(CLERK, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    cashier, cashier_key = town_ca.issue(CASHIER, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger, stranger_key = other.issue(CLERK, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(
        root=root,
        ca=write_cert(root / "ca.pem", town_ca.cert),
        server_cert=write_cert(root / "node.pem", server),
        server_key=write_key(root / "node.key", server_key),
        client_cert=write_cert(root / "clerk.pem", client),
        client_key=write_key(root / "clerk.key", client_key),
        cashier_cert=write_cert(root / "cashier.pem", cashier),
        cashier_key=write_key(root / "cashier.key", cashier_key),
        other_ca=write_cert(root / "other-ca.pem", other.cert),
        stranger_cert=write_cert(root / "stranger.pem", stranger),
        stranger_key=write_key(root / "stranger.key", stranger_key),
        town_ca=town_ca,
    )


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    with create_log(tmp_path / "data", Town.generate(), setup=True) as opened:
        yield opened


# ---------------------------------------------------------------------------
# Serving


def credentials(tls: RemoteTLS) -> grpc.ChannelCredentials:
    return tls.channel_credentials()


def serve(log: Log, options: ServerOptions, body: Callable[[NodeServer], Awaitable[None]]) -> None:
    async def main() -> None:
        node = await NodeServer.start(log, "127.0.0.1:0", options)
        try:
            await asyncio.wait_for(body(node), 30)
        finally:
            await node.stop(grace=1.0)

    asyncio.run(main())


async def checkpoint_over(address: str, channel_credentials: grpc.ChannelCredentials | None) -> str:
    """GetCheckpoint over a TLS channel (plaintext when ``channel_credentials`` is None)."""
    if channel_credentials is None:
        channel = aio.insecure_channel(address)
    else:
        channel = aio.secure_channel(address, channel_credentials)
    async with channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        response = await stub.GetCheckpoint(pb.GetCheckpointRequest(), timeout=10)
        return response.checkpoint


def test_tls_serves_a_client_that_trusts_the_ca_by_ip_and_by_name(log: Log, pki: Pki) -> None:
    async def body(node: NodeServer) -> None:
        expected = log.checkpoint().note
        for host in ("127.0.0.1", "localhost"):
            address = f"{host}:{node.port}"
            assert await checkpoint_over(address, credentials(pki.client(with_cert=False))) == (
                expected
            )

    serve(log, ServerOptions(tls=pki.server()), body)


def test_tls_refuses_plaintext_and_clients_that_trust_another_ca(log: Log, pki: Pki) -> None:
    async def body(node: NodeServer) -> None:
        plaintext = await rpc_error(checkpoint_over(node.address, None))
        assert plaintext.code() is grpc.StatusCode.UNAVAILABLE
        untrusting = pki.client(with_cert=False, ca=pki.other_ca)
        wrong_ca = await rpc_error(checkpoint_over(node.address, credentials(untrusting)))
        assert wrong_ca.code() is grpc.StatusCode.UNAVAILABLE

    serve(log, ServerOptions(tls=pki.server()), body)


def test_a_tls_client_cannot_talk_to_a_plaintext_node(log: Log, pki: Pki) -> None:
    async def body(node: NodeServer) -> None:
        error = await rpc_error(checkpoint_over(node.address, credentials(pki.client())))
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert await checkpoint_over(node.address, None) == log.checkpoint().note

    serve(log, ServerOptions(), body)


def test_mutual_tls_needs_a_client_certificate_from_the_town_ca(log: Log, pki: Pki) -> None:
    async def body(node: NodeServer) -> None:
        without = await rpc_error(
            checkpoint_over(node.address, credentials(pki.client(with_cert=False)))
        )
        assert without.code() is grpc.StatusCode.UNAVAILABLE
        stranger = RemoteTLS(ca=pki.ca, cert=pki.stranger_cert, key=pki.stranger_key)
        foreign = await rpc_error(checkpoint_over(node.address, credentials(stranger)))
        assert foreign.code() is grpc.StatusCode.UNAVAILABLE
        plaintext = await rpc_error(checkpoint_over(node.address, None))
        assert plaintext.code() is grpc.StatusCode.UNAVAILABLE
        client = credentials(pki.client())
        assert await checkpoint_over(node.address, client) == log.checkpoint().note

    serve(log, ServerOptions(tls=pki.server(mutual=True)), body)


def test_under_mutual_tls_each_certificate_has_its_own_rate_limit(log: Log, pki: Pki) -> None:
    # Both clients connect from 127.0.0.1; the limit follows the certificate subject.
    cashier = RemoteTLS(ca=pki.ca, cert=pki.cashier_cert, key=pki.cashier_key)

    async def body(node: NodeServer) -> None:
        await checkpoint_over(node.address, credentials(pki.client()))
        refused = await rpc_error(checkpoint_over(node.address, credentials(pki.client())))
        assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"too many calls from the client certificate {CLERK}" in (refused.details() or "")
        assert await checkpoint_over(node.address, credentials(cashier)) == log.checkpoint().note

    options = ServerOptions(tls=pki.server(mutual=True), rate_limit=RateLimit(0.001, 1))
    serve(log, options, body)


# ---------------------------------------------------------------------------
# The staff client


def test_ledger_client_reads_over_mutual_tls(log: Log, pki: Pki) -> None:
    def read(address: str, tls: RemoteTLS | None) -> int:
        with LedgerClient(address, log_key=log.verifier_key, tls=tls) as client:
            return client.latest().size

    async def body(node: NodeServer) -> None:
        assert await asyncio.to_thread(read, node.address, pki.client()) == log.size
        # The same through a NodeAddress, as commands pass args.node.
        address = NodeAddress(node.address, pki.client())
        assert await asyncio.to_thread(read, address, None) == log.size

    serve(log, ServerOptions(tls=pki.server(mutual=True)), body)


@pytest.mark.parametrize(
    "argv",
    [
        ["--node", "127.0.0.1:7420", "--tls-ca", "ca.pem", "--tls-cert", "c.pem", "--tls-key", "k"],
        ["--tls-ca", "ca.pem", "--tls-cert", "c.pem", "--tls-key", "k", "--node", "127.0.0.1:7420"],
        ["--tls-cert", "c.pem", "--node", "127.0.0.1:7420", "--tls-ca", "ca.pem", "--tls-key", "k"],
    ],
)
def test_node_and_tls_flags_combine_in_any_order(argv: list[str]) -> None:
    args = build_parser().parse_args(["account", "dgc-0001", *argv])
    assert isinstance(args.node, NodeAddress)
    assert args.node == "127.0.0.1:7420"
    assert args.node.tls == RemoteTLS(Path("ca.pem"), Path("c.pem"), Path("k"))


def test_without_tls_flags_the_node_address_is_plaintext() -> None:
    args = build_parser().parse_args(["account", "dgc-0001", "--node", "127.0.0.1:7420"])
    assert args.node == "127.0.0.1:7420"
    assert args.node.tls is None


def test_client_tls_files_are_checked(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="--tls-cert and --tls-key together"):
        RemoteTLS(ca=pki.ca, cert=pki.client_cert).channel_credentials()
    with pytest.raises(KeyFileError, match=r"given with --tls-ca does not exist"):
        RemoteTLS(ca=tmp_path / "missing.pem").channel_credentials()


# ---------------------------------------------------------------------------
# The node's files, checked at start


def _expect_refusal(tls: ServerTLS, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        load_server_material(tls)


def test_good_files_load_and_describe_the_certificate(pki: Pki) -> None:
    material = load_server_material(pki.server(mutual=True))
    assert material.subject == "CN=node.dongguan.example"
    assert material.client_ca == pki.ca.read_bytes()
    assert material.not_after > NOW


def test_missing_and_unreadable_files_are_named(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.pem"
    _expect_refusal(ServerTLS(missing, pki.server_key), r"certificate file .*nothing\.pem")
    _expect_refusal(ServerTLS(pki.server_cert, missing), r"key file .*\(--tls-key\) does not")
    _expect_refusal(
        ServerTLS(pki.server_cert, pki.server_key, missing), r"client CA file .* does not exist"
    )
    _expect_refusal(ServerTLS(tmp_path, pki.server_key), "is a directory")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    _expect_refusal(ServerTLS(garbage, pki.server_key), "holds no readable PEM certificate")
    _expect_refusal(ServerTLS(pki.server_cert, garbage), "holds no readable PEM private key")
    _expect_refusal(
        ServerTLS(pki.server_cert, pki.server_key, garbage), "client CA file .* no readable PEM"
    )


def test_a_key_that_is_not_the_certificates_is_refused(pki: Pki) -> None:
    _expect_refusal(
        ServerTLS(pki.server_cert, pki.client_key), "does not belong to the certificate"
    )


def test_an_encrypted_key_is_refused_with_the_reason(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    locked = write_key(tmp_path / "locked.key", key, password=b"secret")
    _expect_refusal(ServerTLS(pki.server_cert, locked), "is encrypted; the node starts unattended")


def test_expired_future_and_client_only_certificates_are_refused(pki: Pki, tmp_path: Path) -> None:
    ca = pki.town_ca
    server = ExtendedKeyUsageOID.SERVER_AUTH
    expired, expired_key = ca.issue(
        "CN=old", usage=server, server=True, not_before=NOW - datetime.timedelta(days=20), days=5
    )
    future, future_key = ca.issue(
        "CN=new", usage=server, server=True, not_before=NOW + datetime.timedelta(days=2)
    )
    client_only, client_key = ca.issue("CN=c", usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    cases = [
        (expired, expired_key, "expired on"),
        (future, future_key, "is not valid before"),
        (client_only, client_key, "not issued for servers"),
    ]
    for number, (cert, key, message) in enumerate(cases):
        cert_path = write_cert(tmp_path / f"{number}.pem", cert)
        key_path = write_key(tmp_path / f"{number}.key", key)
        _expect_refusal(ServerTLS(cert_path, key_path), message)


def test_a_chain_file_with_intermediates_loads(pki: Pki, tmp_path: Path) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.server_cert.read_bytes() + pki.ca.read_bytes())
    assert load_server_material(ServerTLS(chain, pki.server_key)).subject == (
        "CN=node.dongguan.example"
    )


def test_the_node_does_not_start_with_bad_files(log: Log, pki: Pki) -> None:
    async def main() -> None:
        with pytest.raises(KeyFileError, match="does not belong"):
            await NodeServer.start(
                log, "127.0.0.1:0", ServerOptions(tls=ServerTLS(pki.server_cert, pki.client_key))
            )

    asyncio.run(main())


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104 -- the point: every interface
        ("[::]", False),
        ("10.1.2.3", False),
        ("node.dongguan.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# ---------------------------------------------------------------------------
# Settings


def test_tls_settings_come_from_the_file_relative_to_it(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text(
        'tls_cert = "tls/node.pem"\ntls_key = "/etc/redlist/node.key"\n'
        'tls_client_ca = "tls/ca.pem"\n',
        encoding="utf-8",
    )
    settings = resolve_settings(load_config_file(path), {"data": tmp_path, "listen": "h:1"})
    assert settings.tls_cert == tmp_path / "tls" / "node.pem"
    assert settings.tls_key == Path("/etc/redlist/node.key")
    assert settings.tls_client_ca == tmp_path / "tls" / "ca.pem"
    assert ServerOptions.from_settings(settings).tls == ServerTLS(
        tmp_path / "tls" / "node.pem", Path("/etc/redlist/node.key"), tmp_path / "tls" / "ca.pem"
    )


def test_plaintext_is_the_default() -> None:
    settings = resolve_settings({}, {"data": Path("d"), "listen": "127.0.0.1:7420"})
    assert ServerOptions.from_settings(settings).tls is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tls_cert": Path("c.pem")}, "both a certificate and its key"),
        ({"tls_key": Path("k.pem")}, "both a certificate and its key"),
        ({"tls_client_ca": Path("ca.pem")}, "needs TLS"),
    ],
)
def test_incomplete_tls_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        resolve_settings({"data": "d", "listen": "h:1", **values}, {})


# ---------------------------------------------------------------------------
# End to end: redlist-node serve with the flags, redlist account with the client's


@pytest.fixture
def mutual_tls_node(tmp_path: Path, pki: Pki) -> Iterator[str]:
    """``redlist-node serve`` in a subprocess with mutual TLS; yields its address."""
    create_log(tmp_path / "data", Town.generate(), setup=True).close()
    tls_flags: list[str | Path] = [
        "--tls-cert", pki.server_cert, "--tls-key", pki.server_key, "--tls-client-ca", pki.ca
    ]  # fmt: skip
    with serve_in_subprocess(tmp_path / "data", *tls_flags, output=tmp_path) as address:
        yield address
    assert "transport=mutual-tls" in (tmp_path / "serve.err").read_text()


def log_key_flag(tmp_path: Path) -> list[str]:
    return ["--log-key", str(tmp_path / "data" / "log.pub")]


def test_redlist_account_works_over_mutual_tls(
    mutual_tls_node: str, pki: Pki, tmp_path: Path
) -> None:
    tls_flags = ["--tls-ca", str(pki.ca), "--tls-cert", str(pki.client_cert),
                 "--tls-key", str(pki.client_key), *log_key_flag(tmp_path)]  # fmt: skip
    result = redlist("account", "dgc-0001", "--node", mutual_tls_node, *tls_flags, "--json")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert (document["score"], document["grade"], document["entries"]) == (1000, "A", [])


def test_redlist_account_without_tls_flags_says_to_give_them(
    mutual_tls_node: str, tmp_path: Path
) -> None:
    result = redlist("account", "dgc-0001", "--node", mutual_tls_node, *log_key_flag(tmp_path))
    assert result.code == 2
    assert result.err.startswith(f"error: cannot reach the node at {mutual_tls_node}")
    assert "if the node serves TLS, give --tls-ca" in result.err


def test_redlist_account_without_a_client_certificate_is_refused(
    mutual_tls_node: str, pki: Pki, tmp_path: Path
) -> None:
    flags = ["--tls-ca", str(pki.ca), *log_key_flag(tmp_path)]
    result = redlist("account", "dgc-0001", "--node", mutual_tls_node, *flags)
    assert result.code == 2
    assert "over TLS also check" in result.err
