"""Who may read free texts, and ask about the resident register: the town's staff,
authenticated (DESIGN 9.2; proto GetAccount and CheckAccounts, docs/adr/0038).

The log's leaves are public and hold no personal data; the texts beside them (notes,
items) are personal data, served only to a reader the node can name:

* **mutual TLS**: a client certificate the TLS handshake verified against
  ``--tls-client-ca`` (the town's staff). A certificate issued by a ``--peer-ca``
  (another town's node, ``peers.PeerPolicy``) is not enough: texts stay with the town;
* **a staff key's signature** over the request (``ReadSignature``): Ed25519 over
  ``contract.read_message("GetAccount", account, time)``, by a key registered and not
  revoked in the log as it stands, with ``time`` within ``READ_WINDOW_S`` of the node's
  clock. The window bounds replay: a signature overheard reads the same account, for
  minutes, and nothing else.

A read signature that is present and wrong is refused (PERMISSION_DENIED, check
``read-signature``), never quietly treated as anonymous, so a clerk learns at once that
the key or the clock is wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cryptography import x509

from redlist.ledger import crypto
from redlist.ledger.entry import KEY_ID_SIZE, SIGNATURE_SIZE
from redlist.ledger.errors import CheckError
from redlist.ledger.state import KeyRecord
from redlist.node.peers import PeerPolicy
from redlist.proto.contract import READ_SIGNATURE_CHECK, READ_WINDOW_S, read_message
from redlist.v1 import ledger_pb2 as pb


class ReadRefusal(CheckError):
    """A read signature the node does not accept (check ``read-signature``)."""

    def __init__(self, message: str) -> None:
        super().__init__(READ_SIGNATURE_CHECK, message)


class ReadAuthority:
    """Decides whether a read may see free texts.

    ``staff_key`` looks a key id up in the log as it stands; ``policy`` tells other towns'
    certificates from the town's own (None: every verified client certificate is staff);
    ``clock`` gives seconds since the epoch.
    """

    def __init__(
        self,
        staff_key: Callable[[bytes], KeyRecord | None],
        policy: PeerPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._staff_key = staff_key
        self._policy = policy
        self._clock = clock

    def staff_certificate(self, pems: tuple[bytes, ...]) -> bool:
        """Whether the client certificate (PEM, as gRPC's auth context gives it) is a
        staff member's: verified by the handshake, and not issued by a peer CA."""
        for pem in pems:
            if self._policy is None:
                return True
            identity = self._policy.identify(x509.load_pem_x509_certificate(pem))
            return not identity.is_peer
        return False

    def signed(self, method: str, subject: str, signature: pb.ReadSignature) -> KeyRecord:
        """The staff key that signed this read; ``ReadRefusal`` in words otherwise."""
        if len(signature.key_id) != KEY_ID_SIZE or len(signature.signature) != SIGNATURE_SIZE:
            raise ReadRefusal(
                f"a read signature has an {KEY_ID_SIZE}-byte key id and a "
                f"{SIGNATURE_SIZE}-byte signature"
            )
        now = int(self._clock())
        if abs(now - signature.time) > READ_WINDOW_S:
            raise ReadRefusal(
                f"the read was signed at {signature.time}, more than {READ_WINDOW_S} seconds "
                f"from this node's clock ({now}): check the clock of the signing computer"
            )
        record = self._staff_key(bytes(signature.key_id))
        if record is None:
            raise ReadRefusal(
                f"key {signature.key_id.hex()} is not registered in this log: only the town's "
                f"staff may make a {method} read"
            )
        if not record.active:
            raise ReadRefusal(f"key {signature.key_id.hex()} ({record.name}) was revoked")
        message = read_message(method, subject, signature.time)
        if not crypto.verify(record.public, message, bytes(signature.signature)):
            raise ReadRefusal(
                f"the read signature does not verify with key {signature.key_id.hex()} "
                f"({record.name}) for {method} of {subject}"
            )
        return record
