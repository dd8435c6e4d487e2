"""A small PKI for tests, made with ``cryptography``: CAs and the certificates they issue.

EC P-256 keys; a CA is self-signed and valid for 30 days from yesterday; a certificate
states its extended key usage, and names 127.0.0.1 and localhost when it is a server's.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

NOW = datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(rfc4514: str) -> x509.Name:
    return x509.Name.from_rfc4514_string(rfc4514)


@dataclass(frozen=True)
class Authority:
    """A CA: its name, key and self-signed certificate."""

    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, common_name: str) -> Authority:
        key = _new_key()
        name = _name(f"CN={common_name}")
        cert = (
            _builder(name, name, key.public_key(), NOW - datetime.timedelta(days=1), days=30)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(name, key, cert)

    def issue(
        self,
        subject: str,
        *,
        usage: x509.ObjectIdentifier | tuple[x509.ObjectIdentifier, ...],
        server: bool = False,
        dns: tuple[str, ...] = (),
        not_before: datetime.datetime | None = None,
        days: int = 10,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A certificate for ``subject`` (for 127.0.0.1 and localhost when ``server``),
        naming also the DNS names ``dns``."""
        key = key or _new_key()
        usages = list(usage) if isinstance(usage, tuple) else [usage]
        start = not_before or NOW - datetime.timedelta(hours=1)
        builder = _builder(_name(subject), self.name, key.public_key(), start, days)
        builder = builder.add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        ).add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        if server:
            names += [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    start: datetime.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
    )


def write_cert(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs))
    return path


def write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path
