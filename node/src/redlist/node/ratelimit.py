"""Per-client rate limits of a node: token buckets for calls and for request bytes.

Off unless configured (``serve --rate-limit``, ``--rate-limit-bytes``). The
buckets are consulted by :class:`redlist.node.admission.AdmissionInterceptor`
before a call's request is read:

* **calls**: every call takes one token from the client's bucket, which holds at
  most ``burst`` tokens and refills at ``per_second`` tokens a second. A call that
  finds the bucket empty is refused, and takes no token, so a client that waits as
  told always gets in.
* **request bytes**: a call is let in while the client's byte bucket is not in
  debt; once its request has been read, its size in bytes is taken from the
  bucket, which may leave it in debt (a request's size is known only once read).
  The client's next calls wait until the debt is repaid at ``per_second`` bytes a
  second. One call can thus never be refused for its own size (``max_message_bytes``
  bounds that), but a flood of large requests is slowed to the configured rate.

A refusal is ``RESOURCE_EXHAUSTED`` with a message saying when to retry; the same
wait is in the trailing metadata, in milliseconds, as ``redlist-retry-after-ms``
(with the check ``rate-limit`` or ``rate-limit-bytes``, ``redlist.proto.contract``)
and as gRPC's own ``grpc-retry-pushback-ms`` (gRFC A6), which clients with a retry
policy honour.

A client is the subject of its certificate when the node requires client
certificates (mutual TLS), otherwise its network address without the port (a
client cannot escape its bucket by opening new connections). Clients behind one
NAT share an address and so share a bucket: size the limit for that.

What it protects: the node's CPU and disk from one client's flood, so other
towns' mirrors, auditors and staff keep being served. It is no defence against
many addresses at once, which belongs to the network in front of the node.
Memory is bounded by the concurrency limits, not by these rates (see
:mod:`redlist.node.admission`). Health checks are never rate limited: a load
balancer probing often must not mark the node as down. A streaming call
(``Follow``, ``GetLeaves``) costs one token when it starts.

The buckets are used on the server's event loop only, so they need no lock.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grpc import aio

from redlist.ledger.errors import FormatError
from redlist.node.tls import client_identity

#: gRPC's own server pushback key (gRFC A6), read by clients with a retry policy.
PUSHBACK_METADATA = "grpc-retry-pushback-ms"
#: Services whose calls are never rate limited (method names start with "/<service>/").
EXEMPT_SERVICES = frozenset({"grpc.health.v1.Health"})

_Context = aio.ServicerContext[Any, Any]


@dataclass(frozen=True)
class RateLimit:
    """What a client may spend (calls, or request bytes): ``per_second`` on average,
    ``burst`` at once after a pause."""

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

    def describe(self, unit: str = "calls") -> str:
        return f"{self.per_second:g} {unit} per second (bursts of {self.burst})"


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

    def admit(self, client: str, cost: float = 1) -> Decision:
        """Take ``cost`` tokens for ``client`` if it has them; else say how long until it
        will. A cost of 0 admits a client whose bucket is not in debt (see :meth:`charge`)."""
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
        if bucket.tokens >= cost - _ROUNDING:
            bucket.tokens = max(0.0, bucket.tokens - cost) if cost else bucket.tokens
            bucket.refusing = False
            return Decision(0.0)
        first = not bucket.refusing
        bucket.refusing = True
        return Decision((cost - bucket.tokens) / self.limit.per_second, first)

    def charge(self, client: str, amount: float) -> None:
        """Take ``amount`` tokens from ``client``'s bucket, into debt if need be."""
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = _Bucket(float(self.limit.burst), now)
        else:
            self._refill(bucket, now)
        bucket.tokens -= amount

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
