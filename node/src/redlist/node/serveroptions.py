"""How a node serves (``ServerOptions``): its limits, TLS, peers, rate limits, witnesses
asked and review queue, made from ``serve``'s or ``mirror``'s settings (``config``).

``ServerOptions.from_settings`` gives a town's own node its options;
``ServerOptions.for_listener`` gives a mirror's listener the same guards (TLS, peers,
admission and rate limits) and the defaults for the rest. ``NodeServer.start``
(``server``) serves with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from redlist.ledger.entry import MAX_ENVELOPE_SIZE
from redlist.node.admission import CallLimits
from redlist.node.config import (
    DEFAULT_COMMIT_DEPTH,
    DEFAULT_COSIGN_INTERVAL,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_CALLS,
    DEFAULT_MAX_CALLS_PER_CLIENT,
    DEFAULT_MAX_GROUP,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_STREAMS_PER_CLIENT,
    DEFAULT_STREAM_WRITE_SECONDS,
    ListenerSettings,
    ServeSettings,
    memory_ceiling,
)
from redlist.node.cosigning import AskedWitness
from redlist.node.ratelimit import RateLimit
from redlist.node.review import ReviewLimits
from redlist.node.tls import PeerTLS, ServerTLS
from redlist.proto.contract import Limits

#: Threads for the log's blocking reads (proofs, leaves, accounts, sizes).
DEFAULT_READ_WORKERS = 8
DEFAULT_CALL_LIMITS = CallLimits(
    max_calls=DEFAULT_MAX_CALLS,
    max_calls_per_client=DEFAULT_MAX_CALLS_PER_CLIENT,
    max_streams=DEFAULT_MAX_STREAMS,
    max_streams_per_client=DEFAULT_MAX_STREAMS_PER_CLIENT,
    stream_write_seconds=DEFAULT_STREAM_WRITE_SECONDS,
)


@dataclass(frozen=True)
class ServerOptions:
    """How a node serves (see ``redlist.node.config`` for what each one means)."""

    max_batch: int = DEFAULT_MAX_BATCH
    max_group: int = DEFAULT_MAX_GROUP
    commit_depth: int = DEFAULT_COMMIT_DEPTH
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    read_workers: int = DEFAULT_READ_WORKERS
    #: None: plaintext (meant for loopback, or behind a TLS-terminating proxy).
    tls: ServerTLS | None = None
    #: How the node reaches other towns' nodes; None: plaintext, to loopback only.
    peer_tls: PeerTLS | None = None
    #: Other towns' nodes allowed in (names in their certificates); empty: any the
    #: peer CAs (``tls.peer_ca``) vouch for.
    peer_names: frozenset[str] = frozenset()
    #: None: no per-client limit of calls.
    rate_limit: RateLimit | None = None
    #: None: no per-client limit of request bytes.
    rate_limit_bytes: RateLimit | None = None
    call_limits: CallLimits = DEFAULT_CALL_LIMITS
    #: Witnesses whose cosignatures the node collects and serves; none: it asks nobody.
    ask_witness: tuple[AskedWitness, ...] = ()
    #: Seconds between rounds of asking them, at most one round per interval.
    cosign_interval: float = DEFAULT_COSIGN_INTERVAL
    #: How long proposals wait for the council, and how many may (``review``).
    review: ReviewLimits = field(default_factory=ReviewLimits)

    def memory_ceiling(self) -> int:
        """The resident memory, in bytes, a node serving with these options stays under."""
        return memory_ceiling(
            max_calls=self.call_limits.max_calls,
            max_message_bytes=self.max_message_bytes,
            max_streams=self.call_limits.max_streams,
        )

    @classmethod
    def for_listener(cls, settings: ListenerSettings) -> ServerOptions:
        """The options ``settings`` give a listener (TLS, peers, limits); the rest default.
        ``mirror`` serves with these, ``serve`` with :meth:`from_settings`."""
        tls = None
        if settings.tls_cert is not None and settings.tls_key is not None:
            tls = ServerTLS(
                settings.tls_cert, settings.tls_key, settings.tls_client_ca, settings.peer_ca
            )
        peer_tls = None
        if settings.peer_ca is not None:
            peer_tls = PeerTLS(settings.peer_ca, settings.peer_cert, settings.peer_key)
        rate_limit = None
        if settings.rate_limit is not None:
            rate_limit = RateLimit.with_default_burst(settings.rate_limit, settings.rate_burst)
        rate_limit_bytes = None
        if settings.rate_limit_bytes is not None:
            burst = settings.rate_burst_bytes
            if burst is None:  # a quiet client can always send one largest request
                burst = max(settings.max_message_bytes, math.ceil(settings.rate_limit_bytes))
            rate_limit_bytes = RateLimit(settings.rate_limit_bytes, burst)
        return cls(
            max_message_bytes=settings.max_message_bytes,
            tls=tls,
            peer_tls=peer_tls,
            peer_names=frozenset(settings.peer_names),
            rate_limit=rate_limit,
            rate_limit_bytes=rate_limit_bytes,
            call_limits=CallLimits(
                max_calls=settings.max_calls,
                max_calls_per_client=settings.max_calls_per_client,
                max_streams=settings.max_streams,
                max_streams_per_client=settings.max_streams_per_client,
                stream_write_seconds=settings.stream_write_seconds,
            ),
        )

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> ServerOptions:
        return replace(
            cls.for_listener(settings),
            max_batch=settings.max_batch,
            max_group=settings.max_group,
            commit_depth=settings.commit_depth,
            ask_witness=tuple(
                AskedWitness.parse(address, key) for address, key in settings.ask_witness
            ),
            cosign_interval=settings.cosign_interval,
            review=ReviewLimits(
                settings.review_days,
                settings.review_max_pending,
                settings.review_max_per_proposer,
            ),
        )

    def limits(self) -> Limits:
        """What the node takes in one Submit, as ``GetLimits`` states it."""
        return Limits(self.max_batch, MAX_ENVELOPE_SIZE, self.max_message_bytes)


__all__ = ["DEFAULT_CALL_LIMITS", "DEFAULT_READ_WORKERS", "ServerOptions"]
