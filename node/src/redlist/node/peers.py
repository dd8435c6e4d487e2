"""Other towns' nodes: the channels this node opens to them, and what they may call here.

**Dialling out.** Every node-to-node connection (the cosignature collector asking a
witness, a mirror following its primary) is opened by :func:`open_peer_channel` (or
:func:`open_peer_channel_sync`, its synchronous twin), the one place that decides the
transport:

* with :class:`~redlist.node.tls.PeerMaterial` (``--peer-ca``, and ``--peer-cert`` with
  ``--peer-key``): TLS, trusting only the CAs of ``--peer-ca`` and presenting this
  town's certificate, so a peer that requires client certificates knows which town
  calls (mutual TLS);
* without it: plaintext, and only to an address on this machine (loopback, the rule
  of :func:`redlist.node.tls.is_loopback`); any other address is refused with a
  ``FormatError`` telling the operator to give ``--peer-ca``.
  :func:`check_peer_address` makes that check at start-up.

**Calls in.** A node whose listener accepts other towns' certificates (``--peer-ca``
beside ``--tls-cert``) tells them from its own staff by the CA that issued the
client's certificate: a certificate issued directly by a certificate in ``--peer-ca``
is a *peer*. :class:`PeerInterceptor` then applies :class:`PeerPolicy`:

* a peer whose certificate names none of ``peer_names`` (its subject's common name, or
  a DNS name of its subject alternative names) is refused every call;
* a peer may read (``Ledger`` without ``Submit``), call the ``Witness`` service,
  health and reflection, but never ``Submit``: entries come from the town's staff;
* with ``peer_names`` given, the ``Witness`` service answers listed peers only.

A refusal is PERMISSION_DENIED in words, logged as a warning with the certificate's
subject, its names and the caller's address, and counted in the metric
``redlist_peer_refusals`` by reason (:data:`UNLISTED_PEER`, :data:`PEER_SUBMIT`,
:data:`WITNESS_NOT_PEER`). A certificate from a CA in neither ``--tls-client-ca`` nor
``--peer-ca`` never gets this far: the TLS handshake fails (gRPC refuses it, and the
caller sees UNAVAILABLE).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID
from grpc import aio

from redlist.ledger.errors import FormatError
from redlist.node.config import parse_address
from redlist.node.metrics import NodeMetrics
from redlist.node.tls import PEER_CA_FLAG, PeerMaterial, is_loopback
from redlist.v1 import ledger_pb2 as pb

logger = logging.getLogger(__name__)

_Context = aio.ServicerContext[Any, Any]

SUBMIT_METHOD = f"/{pb.DESCRIPTOR.services_by_name['Ledger'].full_name}/Submit"
WITNESS_PREFIX = f"/{pb.DESCRIPTOR.services_by_name['Witness'].full_name}/"

#: Reasons a peer's call is refused (the ``reason`` label of ``redlist_peer_refusals``).
UNLISTED_PEER = "unlisted-peer"
PEER_SUBMIT = "peer-submit"
WITNESS_NOT_PEER = "witness-not-peer"

#: Client certificates whose classification is remembered (a peer calls often).
_CACHED_CERTIFICATES = 1024


def open_peer_channel(
    address: str,
    tls: PeerMaterial | None,
    *,
    options: Sequence[tuple[str, Any]] = (),
    what: str = "peer",
) -> aio.Channel:
    """An asyncio channel to another town's node at ``address`` (see the module docstring).

    ``what`` names the setting the address came from in a refusal (``--ask-witness``).
    """
    check_peer_address(address, tls, what)
    if tls is None:
        return aio.insecure_channel(address, options=list(options))
    return aio.secure_channel(address, tls.channel_credentials(), options=list(options))


def open_peer_channel_sync(
    address: str,
    tls: PeerMaterial | None,
    *,
    options: Sequence[tuple[str, Any]] = (),
    what: str = "peer",
) -> grpc.Channel:
    """The same channel as :func:`open_peer_channel`, synchronous: for a mirror's
    follower, which runs on a thread of its own beside the node's event loop."""
    check_peer_address(address, tls, what)
    if tls is None:
        return grpc.insecure_channel(address, options=list(options))
    return grpc.secure_channel(address, tls.channel_credentials(), options=list(options))


def check_peer_address(address: str, tls: PeerMaterial | None, what: str = "peer") -> None:
    """Refuse (``FormatError``) an address that is not ``HOST:PORT``, or plaintext off this
    machine."""
    host, _port = parse_address(address, what)
    if tls is None and not is_loopback(host):
        raise FormatError(
            f"{what} {address} is not on this machine, and this node has no TLS for other "
            f"towns' nodes: give {PEER_CA_FLAG} (their CAs), and --peer-cert and --peer-key "
            "if they require this town's certificate"
        )


@dataclass(frozen=True)
class PeerIdentity:
    """Who a client certificate names: its subject, and the names a policy can list."""

    subject: str
    #: The subject's common names and the certificate's DNS subject alternative names.
    names: frozenset[str]
    #: Issued by one of the peer CAs: another town's node (or anyone that CA vouches for).
    is_peer: bool


@dataclass(frozen=True)
class PeerPolicy:
    """Which other towns' certificates may call what (see the module docstring)."""

    #: The certificates in ``--peer-ca``: a client certificate one of them issued is a peer.
    authorities: tuple[x509.Certificate, ...]
    #: The peers allowed (empty: every peer the CAs issued a certificate to).
    names: frozenset[str] = frozenset()

    def identify(self, certificate: x509.Certificate) -> PeerIdentity:
        names = {
            str(attribute.value)
            for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        }
        try:
            alternatives = certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value
            names.update(alternatives.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            pass
        return PeerIdentity(
            subject=certificate.subject.rfc4514_string(),
            names=frozenset(names),
            is_peer=any(_issued_by(certificate, ca) for ca in self.authorities),
        )

    def refusal(self, method: str, client: PeerIdentity | None) -> str | None:
        """Why ``client`` may not call ``method`` (a reason constant), or None."""
        if client is not None and client.is_peer:
            if self.names and not client.names & self.names:
                return UNLISTED_PEER
            if method == SUBMIT_METHOD:
                return PEER_SUBMIT
            return None
        if self.names and method.startswith(WITNESS_PREFIX):
            return WITNESS_NOT_PEER
        return None


def _issued_by(certificate: x509.Certificate, authority: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


_WORDS = {
    UNLISTED_PEER: "this node does not serve that town's node: its certificate names {names}, "
    "none of which is in this node's peer_names",
    PEER_SUBMIT: "another town's node may read and ask for cosignatures, never submit entries",
    WITNESS_NOT_PEER: "the Witness service answers the towns in this node's peer_names only",
}


class PeerInterceptor(aio.ServerInterceptor):
    """Applies a :class:`PeerPolicy` to every call, before its handler runs."""

    def __init__(self, policy: PeerPolicy, metrics: NodeMetrics | None = None) -> None:
        self.policy = policy
        self._metrics = metrics
        self._identities: dict[bytes, PeerIdentity] = {}
        self._wrapped: dict[str, tuple[object, grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _guarded(handler, method, self._check)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    async def _check(self, method: str, context: _Context) -> None:
        """Abort the call with PERMISSION_DENIED if the policy refuses its client."""
        client = self._identity(context)
        reason = self.policy.refusal(method, client)
        if reason is None:
            return
        if self._metrics is not None:
            self._metrics.peer_refusals.labels(reason=reason).inc()
        names = "none" if client is None else ",".join(sorted(client.names)) or "none"
        logger.warning(
            "peer refused reason=%s subject=%s names=%s address=%s method=%s",
            reason,
            "none" if client is None else client.subject,
            names,
            context.peer(),
            method,
        )
        words = _WORDS[reason].format(names=names.replace(",", ", "))
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{words} [{reason}]")

    def _identity(self, context: _Context) -> PeerIdentity | None:
        pems = context.auth_context().get("x509_pem_cert") or ()
        for pem in pems:
            known = self._identities.get(pem)
            if known is not None:
                return known
            identity = self.policy.identify(x509.load_pem_x509_certificate(pem))
            if len(self._identities) >= _CACHED_CERTIFICATES:
                self._identities.pop(next(iter(self._identities)))
            self._identities[pem] = identity
            return identity
        return None


def _guarded(
    handler: grpc.RpcMethodHandler[Any, Any],
    method: str,
    check: Callable[[str, _Context], Awaitable[None]],
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with ``check`` run first, in whichever of the four shapes it has."""
    serializers: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        unary: Callable[..., Any] = handler.unary_unary

        async def unary_unary(request: Any, context: _Context) -> Any:
            await check(method, context)
            return await _awaited(unary(request, context))

        return grpc.unary_unary_rpc_method_handler(unary_unary, **serializers)
    if handler.stream_unary is not None:
        stream_in: Callable[..., Any] = handler.stream_unary

        async def stream_unary(requests: Any, context: _Context) -> Any:
            await check(method, context)
            return await _awaited(stream_in(requests, context))

        return grpc.stream_unary_rpc_method_handler(stream_unary, **serializers)
    streaming: Callable[..., Any] | None = handler.unary_stream or handler.stream_stream
    if streaming is None:
        return handler
    make = (
        grpc.unary_stream_rpc_method_handler
        if handler.unary_stream is not None
        else grpc.stream_stream_rpc_method_handler
    )
    behaviour: Callable[..., Any] = streaming
    if inspect.isasyncgenfunction(behaviour):

        async def generated(argument: Any, context: _Context) -> AsyncIterator[Any]:
            await check(method, context)
            async for response in behaviour(argument, context):
                yield response

        return make(generated, **serializers)

    async def written(argument: Any, context: _Context) -> None:
        await check(method, context)
        await _awaited(behaviour(argument, context))

    return make(written, **serializers)


async def _awaited(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result
