"""Per-client rate limiting of a node's calls: one token bucket per client, as an interceptor.

Off unless configured (``serve --rate-limit``). When on, every call a client makes
takes one token from that client's bucket; the bucket holds at most ``burst``
tokens and refills at ``per_second`` tokens a second. A call that finds the
bucket empty is refused with ``RESOURCE_EXHAUSTED`` before it reaches the
service, with a message saying when to retry; the same wait is in the trailing
metadata, in milliseconds, as ``redlist-retry-after-ms`` (with the check
``rate-limit``, ``redlist.proto.contract``) and as gRPC's own
``grpc-retry-pushback-ms`` (gRFC A6), which clients with a retry policy honour.
A refused call takes no token, so a client that waits as told always gets in.

A client is the subject of its certificate when the node requires client
certificates (mutual TLS), otherwise its network address without the port (a
client cannot escape its bucket by opening new connections). Clients behind one
NAT share an address and so share a bucket: size the limit for that.

What it protects: the node's CPU and disk from one client's flood, so other
towns' mirrors, auditors and staff keep being served. It is no defence against
many addresses at once, which belongs to the network in front of the node. A
Submit counts as one call however many envelopes it carries; its size is bounded
separately (``max_batch``, ``max_message_bytes``). Health checks are never
limited: a load balancer probing often must not mark the node as down. A
streaming call (``Follow``, ``GetLeaves``) costs one token when it starts.

The interceptor runs on the server's event loop only, so the buckets need no lock.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc import aio

from redlist.ledger.errors import FormatError
from redlist.node.tls import client_identity
from redlist.proto.contract import RATE_LIMIT_CHECK, RefusalDetails

logger = logging.getLogger(__name__)

#: gRPC's own server pushback key (gRFC A6), read by clients with a retry policy.
PUSHBACK_METADATA = "grpc-retry-pushback-ms"
#: Services whose calls are never limited (method names start with "/<service>/").
EXEMPT_SERVICES = frozenset({"grpc.health.v1.Health"})

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_Context = aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class RateLimit:
    """Calls a client may make: ``per_second`` on average, ``burst`` at once after a pause."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and math.isfinite(self.per_second)):
            raise FormatError(
                f"the rate limit must be a positive number of calls per second, "
                f"not {self.per_second}"
            )
        if self.burst < 1:
            raise FormatError(f"the rate burst must be at least 1 call, not {self.burst}")

    @classmethod
    def with_default_burst(cls, per_second: float, burst: int | None = None) -> RateLimit:
        """``burst`` defaults to one second's worth of calls (at least 1)."""
        if burst is None:
            burst = max(1, math.ceil(per_second)) if math.isfinite(per_second) else 1
        return cls(per_second, burst)

    def describe(self) -> str:
        return f"{self.per_second:g} calls per second (bursts of {self.burst})"


@dataclass(frozen=True)
class Decision:
    """The limiter's answer for one call: admitted, or how long to wait."""

    wait_seconds: float
    #: The first refusal since this client's last admitted call (worth one log line).
    first_refusal: bool = False

    @property
    def admitted(self) -> bool:
        return self.wait_seconds <= 0

    @property
    def wait_ms(self) -> int:
        return max(1, math.ceil(self.wait_seconds * 1000))


_ROUNDING = 1e-9


class _Bucket:
    __slots__ = ("refusing", "tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated
        self.refusing = False


class RateLimiter:
    """Token buckets keyed by client. ``clock`` is in seconds (default: monotonic time).

    Memory stays bounded by the clients seen recently: a bucket that has refilled
    completely is the same as no bucket, and such buckets are dropped from time to
    time (every ``burst / per_second`` seconds, at least every second).
    """

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._sweep_every = max(1.0, limit.burst / limit.per_second)
        self._last_sweep = clock()

    @property
    def tracked_clients(self) -> int:
        """How many clients currently have a bucket (for tests and diagnostics)."""
        return len(self._buckets)

    def admit(self, client: str) -> Decision:
        """Take a token for ``client`` if it has one; else say how long until it will."""
        now = self._clock()
        if now - self._last_sweep >= self._sweep_every:
            self._sweep(now)
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = _Bucket(float(self.limit.burst), now)
        else:
            self._refill(bucket, now)
        # The tolerance absorbs float rounding in the refill, so a client that waited
        # exactly as long as it was told is let in.
        if bucket.tokens >= 1 - _ROUNDING:
            bucket.tokens = max(0.0, bucket.tokens - 1)
            bucket.refusing = False
            return Decision(0.0)
        first = not bucket.refusing
        bucket.refusing = True
        return Decision((1 - bucket.tokens) / self.limit.per_second, first)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(
            float(self.limit.burst), bucket.tokens + elapsed * self.limit.per_second
        )
        bucket.updated = now

    def _sweep(self, now: float) -> None:
        for client, bucket in list(self._buckets.items()):
            self._refill(bucket, now)
            if bucket.tokens >= self.limit.burst:
                del self._buckets[client]
        self._last_sweep = now


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer string, without the port.

    ``ipv4:10.0.0.5:51234`` gives ``10.0.0.5``; ``ipv6:[::1]:51234`` (also
    percent-encoded) gives ``::1``; anything else (a Unix socket) is kept whole.
    """
    decoded = urllib.parse.unquote(peer)
    scheme, _, rest = decoded.partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return decoded
    host, separator, port = rest.rpartition(":")
    if not separator or not port.isdigit():
        return rest
    return host.removeprefix("[").removesuffix("]")


def client_of(context: _Context) -> str:
    """The client a call is counted against, in words: its certificate or its address."""
    subject = client_identity(context)
    if subject is not None:
        return f"the client certificate {subject}"
    return f"the client at {peer_host(context.peer())}"


class RateLimitInterceptor(aio.ServerInterceptor):
    """Refuses calls from a client over its limit before they reach the service."""

    def __init__(
        self, limiter: RateLimiter, exempt_services: frozenset[str] = EXEMPT_SERVICES
    ) -> None:
        self._limiter = limiter
        self._exempt = tuple(f"/{service}/" for service in exempt_services)
        # method -> (the handler it came with, its guarded twin): one wrapping per method.
        self._guarded: dict[str, tuple[object, grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails],
            Awaitable[grpc.RpcMethodHandler[_Request, _Response] | None],
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Request, _Response] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(self._exempt):
            return handler
        cached = self._guarded.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        guarded = _limited_handler(handler, self._admit)
        self._guarded[method] = (handler, guarded)
        return guarded

    async def _admit(self, context: _Context) -> None:
        client = client_of(context)
        decision = self._limiter.admit(client)
        if decision.admitted:
            return
        if decision.first_refusal:
            logger.info(
                "rate limit reached by %s (limit %s)", client, self._limiter.limit.describe()
            )
        details = RefusalDetails(RATE_LIMIT_CHECK, retry_after_ms=decision.wait_ms)
        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"too many calls from {client}: this node takes at most "
            f"{self._limiter.limit.describe()} from one client; retry in "
            f"{decision.wait_ms / 1000:.1f} s [{RATE_LIMIT_CHECK}]",
            (*details.to_metadata(), (PUSHBACK_METADATA, str(decision.wait_ms))),
        )


_Admit = Callable[[_Context], Awaitable[None]]


def _limited_handler(
    handler: grpc.RpcMethodHandler[_Request, _Response], admit: _Admit
) -> grpc.RpcMethodHandler[_Request, _Response]:
    """``handler`` with ``admit`` awaited before its behaviour runs (same kind of call)."""
    serializers: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _guard(handler.unary_unary, admit), **serializers
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _guard(handler.unary_stream, admit), **serializers
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _guard(handler.stream_unary, admit), **serializers
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _guard(handler.stream_stream, admit), **serializers
        )
    return handler


def _guard(behaviour: Callable[..., Any], admit: _Admit) -> Callable[..., Any]:
    """``behaviour`` behind ``admit``, keeping its shape (gRPC aio dispatches on it).

    Every handler of a node is async: an async generator (streamed answers) or a
    coroutine function (one answer, or answers written with ``context.write``).
    """
    if inspect.isasyncgenfunction(behaviour):

        async def guarded_stream(request: Any, context: _Context) -> AsyncIterator[Any]:
            await admit(context)
            async for response in behaviour(request, context):
                yield response

        return guarded_stream

    async def guarded_call(request: Any, context: _Context) -> Any:
        await admit(context)
        result = behaviour(request, context)
        return await result if inspect.isawaitable(result) else result

    return guarded_call
