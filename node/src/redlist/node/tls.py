"""Transport security of a serving node: TLS, and mutual TLS with client certificates.

A node serves plaintext unless it is given a certificate and its key. Plaintext is
the default because the first node of a town usually listens on loopback, and
because nothing in the log depends on the transport: entries carry their authors'
signatures and checkpoints the log key's. What TLS adds is that a client knows it
talks to the town's node (and not to an impostor that swallows entries or serves
stale figures), and that account queries cannot be read on the wire.

With ``client_ca`` the node also demands a client certificate signed by one of the
CAs in that file (mutual TLS); a client without one fails the handshake and never
reaches a service. The certificate's subject then names the client, for instance
to the rate limiter (:func:`client_identity`).

With ``peer_ca`` (the CAs of other towns' nodes, ``--peer-ca``) the node also accepts
client certificates from those CAs, so the listener is mutual TLS as well; such a
client is another town's node, and :mod:`redlist.node.peers` decides what it may
call. The same CAs are the ones this node trusts when it connects to other towns
(:class:`PeerTLS`, :func:`load_peer_material`), presenting its own certificate
(``--peer-cert``, ``--peer-key``), which must be usable by a client.

Files are PEM: the certificate file holds the node's certificate first and any
intermediate CA certificates after it; the key file holds its private key,
unencrypted (the node starts unattended), readable by the node's user only.
Everything is checked when the node starts, so a wrong file is reported in words
instead of as a failed handshake on every call.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc import aio

from redlist.ledger.errors import KeyFileError
from redlist.ledger.i18n import _

#: What the flags are called, so messages point at the thing to change.
CERT_FLAG = "--tls-cert"
KEY_FLAG = "--tls-key"
CLIENT_CA_FLAG = "--tls-client-ca"
PEER_CA_FLAG = "--peer-ca"
PEER_CERT_FLAG = "--peer-cert"
PEER_KEY_FLAG = "--peer-key"


@dataclass(frozen=True)
class ServerTLS:
    """Where a node's TLS material is: its certificate chain, its key, the client CAs.

    ``client_ca`` or ``peer_ca`` set means mutual TLS: every client must present a
    certificate signed by one of the CAs in those files (``peer_ca``: other towns').
    """

    cert: Path
    key: Path
    client_ca: Path | None = None
    peer_ca: Path | None = None

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None or self.peer_ca is not None

    @property
    def mode(self) -> str:
        """How the node is reached, in words for its log: "tls" or "mutual-tls"."""
        return "mutual-tls" if self.mutual else "tls"


@dataclass(frozen=True)
class ServerMaterial:
    """The PEM bytes of a :class:`ServerTLS`, read and checked."""

    cert_chain: bytes
    key: bytes
    client_ca: bytes | None
    subject: str
    not_after: datetime.datetime
    #: The CA certificates of other towns (``peer_ca``); empty when none are given.
    peer_authorities: tuple[x509.Certificate, ...] = ()
    peer_ca: bytes | None = None

    def credentials(self) -> grpc.ServerCredentials:
        roots = b"".join(pem for pem in (self.client_ca, self.peer_ca) if pem is not None)
        return grpc.ssl_server_credentials(
            [(self.key, self.cert_chain)],
            root_certificates=roots or None,
            require_client_auth=bool(roots),
        )


def load_server_material(tls: ServerTLS, *, now: datetime.datetime | None = None) -> ServerMaterial:
    """Read and check the files of ``tls``; ``KeyFileError`` names the file and the fault.

    Checked: each file is PEM of the right kind; the key is not encrypted and
    belongs to the first certificate; that certificate is valid ``now`` (default:
    the current time) and, if it restricts its use, may serve TLS.
    """
    moment = now or datetime.datetime.now(datetime.UTC)
    chain_pem = _read(tls.cert, "certificate", CERT_FLAG)
    chain = _certificates(chain_pem, tls.cert, "certificate", CERT_FLAG)
    leaf = chain[0]
    key_pem = _read(tls.key, "key", KEY_FLAG)
    _check_key_matches(leaf, key_pem, tls.key, tls.cert, KEY_FLAG)
    _check_validity(leaf, tls.cert, moment)
    _check_use(leaf, tls.cert, ExtendedKeyUsageOID.SERVER_AUTH)
    client_ca: bytes | None = None
    if tls.client_ca is not None:
        client_ca = _read(tls.client_ca, _("client CA"), CLIENT_CA_FLAG)
        _certificates(client_ca, tls.client_ca, _("client CA"), CLIENT_CA_FLAG)
    peer_ca: bytes | None = None
    authorities: tuple[x509.Certificate, ...] = ()
    if tls.peer_ca is not None:
        peer_ca = _read(tls.peer_ca, _("peer CA"), PEER_CA_FLAG)
        authorities = tuple(_certificates(peer_ca, tls.peer_ca, _("peer CA"), PEER_CA_FLAG))
    return ServerMaterial(
        cert_chain=chain_pem,
        key=key_pem,
        client_ca=client_ca,
        subject=leaf.subject.rfc4514_string(),
        not_after=leaf.not_valid_after_utc,
        peer_authorities=authorities,
        peer_ca=peer_ca,
    )


@dataclass(frozen=True)
class PeerTLS:
    """How this node reaches other towns' nodes: the CAs it trusts, its client certificate.

    ``cert`` and ``key`` go together; without them the node connects over TLS but
    presents no certificate (enough for a peer that does not require one).
    """

    ca: Path
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class PeerMaterial:
    """The PEM bytes of a :class:`PeerTLS`, read and checked."""

    ca: bytes
    cert_chain: bytes | None
    key: bytes | None
    #: The subject of this node's client certificate, None when it presents none.
    subject: str | None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert_chain
        )


def load_peer_material(tls: PeerTLS, *, now: datetime.datetime | None = None) -> PeerMaterial:
    """Read and check the files of ``tls``; ``KeyFileError`` names the file and the fault.

    Checked as for the server's files, except that the certificate must be usable by
    a client (if it restricts its use: ``clientAuth``).
    """
    ca = _read(tls.ca, _("peer CA"), PEER_CA_FLAG)
    _certificates(ca, tls.ca, _("peer CA"), PEER_CA_FLAG)
    if tls.cert is None or tls.key is None:
        if tls.cert is not None or tls.key is not None:
            raise KeyFileError(
                _(
                    "a peer certificate needs its key: give {PEER_CERT_FLAG} and {PEER_KEY_FLAG} "
                    "together"
                ).format(PEER_CERT_FLAG=PEER_CERT_FLAG, PEER_KEY_FLAG=PEER_KEY_FLAG)
            )
        return PeerMaterial(ca, None, None, None)
    chain_pem = _read(tls.cert, _("peer certificate"), PEER_CERT_FLAG)
    leaf = _certificates(chain_pem, tls.cert, _("peer certificate"), PEER_CERT_FLAG)[0]
    key_pem = _read(tls.key, _("peer key"), PEER_KEY_FLAG)
    _check_key_matches(leaf, key_pem, tls.key, tls.cert, PEER_KEY_FLAG)
    _check_validity(leaf, tls.cert, now or datetime.datetime.now(datetime.UTC))
    _check_use(leaf, tls.cert, ExtendedKeyUsageOID.CLIENT_AUTH)
    return PeerMaterial(ca, chain_pem, key_pem, leaf.subject.rfc4514_string())


def client_identity(context: aio.ServicerContext[Any, Any]) -> str | None:
    """The subject of the client's verified certificate (mutual TLS), or None without one.

    gRPC puts the subject in the call's auth context only after the handshake has
    verified the certificate against the node's client CAs.
    """
    subjects = context.auth_context().get("x509_subject") or ()
    for subject in subjects:
        return subject.decode("utf-8", "replace")
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (as in ``HOST:PORT``) only accepts connections from this machine."""
    bare = host.removeprefix("[").removesuffix("]")
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def _read(path: Path, what: str, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(
            _("the TLS {what} file {path} ({flag}) does not exist").format(
                what=what, path=path, flag=flag
            )
        ) from None
    except IsADirectoryError:
        raise KeyFileError(
            _("the TLS {what} file {path} ({flag}) is a directory").format(
                what=what, path=path, flag=flag
            )
        ) from None
    except OSError as error:
        raise KeyFileError(
            _("cannot read the TLS {what} file {path} ({flag}): {value}").format(
                what=what, path=path, flag=flag, value=error.strerror or error
            )
        ) from None


def _certificates(pem: bytes, path: Path, what: str, flag: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise KeyFileError(
            _(
                "the TLS {what} file {path} ({flag}) holds no readable PEM certificate (it "
                "should contain '-----BEGIN CERTIFICATE-----' blocks)"
            ).format(what=what, path=path, flag=flag)
        ) from None


def _check_key_matches(
    leaf: x509.Certificate, key_pem: bytes, key_path: Path, cert_path: Path, flag: str
) -> None:
    key_public = _private_key_public_bytes(key_pem, key_path, flag)
    leaf_public = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if key_public != leaf_public:
        raise KeyFileError(
            _(
                "the TLS key {key_path} does not belong to the certificate in {cert_path} "
                "({rfc4514_string}); give the key the certificate was issued for"
            ).format(
                key_path=key_path, cert_path=cert_path, rfc4514_string=leaf.subject.rfc4514_string()
            )
        )


def _private_key_public_bytes(pem: bytes, path: Path, flag: str) -> bytes:
    """The SubjectPublicKeyInfo of the private key in ``pem``, DER encoded."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # cryptography's way of saying "encrypted, and no password given"
        raise KeyFileError(
            _(
                "the TLS key {path} ({flag}) is encrypted; the node starts unattended, so it "
                "needs the key unencrypted, in a file only the node's user can read"
            ).format(path=path, flag=flag)
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(
            _("the TLS key file {path} ({flag}) holds no readable PEM private key").format(
                path=path, flag=flag
            )
        ) from None
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_validity(leaf: x509.Certificate, path: Path, now: datetime.datetime) -> None:
    if now > leaf.not_valid_after_utc:
        raise KeyFileError(
            _(
                "the TLS certificate in {path} expired on {day}; every client would refuse it: "
                "renew it"
            ).format(path=path, day=_day(leaf.not_valid_after_utc))
        )
    if now < leaf.not_valid_before_utc:
        raise KeyFileError(
            _(
                "the TLS certificate in {path} is not valid before {day}; is this machine's "
                "clock right?"
            ).format(path=path, day=_day(leaf.not_valid_before_utc))
        )


def _check_use(leaf: x509.Certificate, path: Path, usage: x509.ObjectIdentifier) -> None:
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no restriction
    if usage not in usages:
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            raise KeyFileError(
                _(
                    "the TLS certificate in {path} is not issued for servers (its extended key "
                    "usage "
                    "lacks serverAuth); clients would refuse it"
                ).format(path=path)
            )
        raise KeyFileError(
            _(
                "the TLS certificate in {path} is not issued for clients (its extended key usage "
                "lacks clientAuth); other towns' nodes would refuse it"
            ).format(path=path)
        )


def _day(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
