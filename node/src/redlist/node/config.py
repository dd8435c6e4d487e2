"""Settings of ``redlist-node serve``: built-in defaults, an optional TOML file, then flags.

Every setting has a default except the data directory and the listen address. A
TOML file (``--config FILE``) may set any of them; a command-line flag overrides
the file (``configfile`` reads the file and combines it with the flags). Unknown keys
are refused, so a misspelt setting never silently does nothing::

    data = "/var/lib/redlist/wendeng"   # relative paths are relative to this file
    listen = "0.0.0.0:7420"
    metrics = "127.0.0.1:9420"          # Prometheus /metrics; off when absent
    max_batch = 1000                    # envelopes one Submit may carry
    max_group = 10000                   # envelopes one shared commit may carry
    commit_depth = 2                    # shared commits in flight at once
    grace_seconds = 10.0                # how long shutdown waits for in-flight calls
    max_message_bytes = 4194304         # largest request (and answer) the node handles (4 MiB)
    max_calls = 32                      # calls served at once, all clients together
    max_calls_per_client = 16           # calls served at once for one client
    max_streams = 16                    # streams open at once (GetLeaves, Follow, ...)
    max_streams_per_client = 4          # streams open at once for one client
    stream_write_seconds = 30.0         # how long a stream's answer waits to be read
    log_level = "info"                  # debug, info, warning or error
    tls_cert = "tls/node.pem"           # serve TLS with this certificate (chain) ...
    tls_key = "tls/node.key"            # ... and its private key; plaintext when absent
    tls_client_ca = "tls/staff-ca.pem"  # mutual TLS: require client certs from these CAs
    peer_ca = "tls/towns-ca.pem"        # other towns' CAs: trusted when connecting to their
                                        # nodes, and (with tls_cert) accepted from them
    peer_cert = "tls/node.pem"          # this town's certificate, shown to other towns' nodes ...
    peer_key = "tls/node.key"           # ... and its key (clientAuth use)
    peer_names = ["rushan", "juxian"]   # other towns' nodes allowed in (certificate CN or DNS name)
    rate_limit = 50.0                   # calls per second per client; off when absent
    rate_burst = 200                    # calls a quiet client may make at once
    rate_limit_bytes = 1048576          # request bytes per second per client; off when absent
    rate_burst_bytes = 8388608          # request bytes a quiet client may send at once
    map_size_gib = 1024                 # LMDB address space; raise when storage is full
    witness_key = "keys/witness.pem"    # serve Witness, cosigning with this key ...
    witness_name = "wendeng-witness"    # ... under this name (default: the key's .pub name)
    witness_for = ["rushan.pub", "juxian.example/log+1a2b3c4d+AQ..."]  # ... for these logs
    cosign_interval = 1.0               # seconds between rounds of asking witnesses (at most)
    review_days = 30                    # proposals wait this long for the council, then expire
    review_max_pending = 1000           # proposals waiting at once, all proposers together
    review_max_per_proposer = 200       # proposals waiting at once from one staff key
    [[ask_witness]]                     # collect this witness's cosignatures (repeatable)
    address = "rushan.example:7420"
    key = "rushan-witness+5e6f7a8b+BA..."
    [recognition]                       # other towns' grades (redlist-node recognise)
    auditors = ["keys/county-audit.pem.pub"]
    [recognition.towns."rushan.example/log"]
    log_key = "keys/rushan.pub"
    grades = { AAA = "AAA", AA = "AA", A = "A", B = "B" }

``[recognition]`` is read by ``redlist-node recognise`` (``redlist.node.recognition``
says what it holds); ``serve`` checks it and otherwise leaves it alone.

Plaintext is the default, meant for a node on loopback (``127.0.0.1``), behind a
TLS-terminating proxy, or in a test; see ``redlist.node.tls``. Connections to other
towns' nodes (``ask_witness``) are plaintext only to loopback addresses; elsewhere
they need ``peer_ca`` (``redlist.node.peers``). Rate limiting is
off by default (``redlist.node.ratelimit``); ``rate_burst`` defaults to one
second's worth of calls, ``rate_burst_bytes`` to one second's worth of bytes or
``max_message_bytes``, whichever is larger.

**Memory.** The concurrency limits (``redlist.node.admission``) are always on; they
and ``max_message_bytes`` set the node's memory ceiling (:meth:`ServeSettings.memory_ceiling`):
a request is held about :data:`REQUEST_COPIES` times while it is decoded and
checked, and a stream holds one chunk of leaves, so the node's resident memory
stays under about::

    BASE_MEMORY + max_calls * REQUEST_COPIES * max_message_bytes + max_streams * STREAM_CHUNK_BYTES

which for the defaults is 688 MiB (docs/operations.md, "Memory").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from redlist.ledger.errors import FormatError
from redlist.ledger.i18n import _
from redlist.node.recognition import RecognitionConfig
from redlist.node.review import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_PER_PROPOSER,
    DEFAULT_REVIEW_DAYS,
)

#: A clerk's sheet goes in batches of a few hundred (``redlist submit``: 500).
DEFAULT_MAX_BATCH = 1_000
DEFAULT_MAX_GROUP = 10_000
DEFAULT_COMMIT_DEPTH = 2
DEFAULT_GRACE_SECONDS = 10.0
#: Envelopes are at most 64 KiB each (checked by the log); a request is a batch of
#: them. 4 MiB holds 64 of the largest, or a batch of 1,000 ordinary ones (a few
#: hundred bytes each) many times over.
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_CALLS = 32
#: An auditor reads accounts 8 at a time (``redlist-verify node``).
DEFAULT_MAX_CALLS_PER_CLIENT = 16
DEFAULT_MAX_STREAMS = 16
DEFAULT_MAX_STREAMS_PER_CLIENT = 4
DEFAULT_STREAM_WRITE_SECONDS = 30.0
#: A busy primary asks its witnesses about once a second, not after every commit.
DEFAULT_COSIGN_INTERVAL = 1.0
#: What the ceiling allows for the node itself: interpreter, libraries, gRPC, the
#: LMDB pages it touches, the glibc arenas of its threads (measured: about 70 MB
#: idle; see docs/reliability.md, "Memory under abuse") and the entry-id index's
#: filters (at most 32 MiB, ``redlist.ledger.idfilter.BUDGET_BYTES``).
BASE_MEMORY = 160 * 1024 * 1024
#: How many copies of a request the node holds at most while handling it: gRPC's
#: buffer of the received bytes, the Python bytes, the decoded protobuf message,
#: the envelopes taken out of it (measured in docs/reliability.md).
REQUEST_COPIES = 4
#: Leaves one stream reads ahead of its reader (redlist.node.leafreads.CHUNK_BYTES).
STREAM_CHUNK_BYTES = 1024 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, kw_only=True)
class ListenerSettings:
    """How a node's listener serves: TLS, the other towns' nodes it lets in, admission
    and rate limits. ``serve`` and ``mirror`` take the same settings (flags and TOML
    keys), so a mirror's listener is as well guarded as a town's own."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_calls: int = DEFAULT_MAX_CALLS
    max_calls_per_client: int = DEFAULT_MAX_CALLS_PER_CLIENT
    max_streams: int = DEFAULT_MAX_STREAMS
    max_streams_per_client: int = DEFAULT_MAX_STREAMS_PER_CLIENT
    stream_write_seconds: float = DEFAULT_STREAM_WRITE_SECONDS
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    #: Other towns' CAs; this town's client certificate for them and its key.
    peer_ca: Path | None = None
    peer_cert: Path | None = None
    peer_key: Path | None = None
    #: The other towns' nodes allowed to call this one (names in their certificates).
    peer_names: tuple[str, ...] = ()
    rate_limit: float | None = None
    rate_burst: int | None = None
    rate_limit_bytes: float | None = None
    rate_burst_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "max_message_bytes",
            "max_calls",
            "max_calls_per_client",
            "max_streams",
            "max_streams_per_client",
        ):
            if getattr(self, name) < 1:
                raise FormatError(
                    _("'{name}' must be at least 1, not {getattr}").format(
                        name=name, getattr=getattr(self, name)
                    )
                )
        if not (self.stream_write_seconds > 0 and math.isfinite(self.stream_write_seconds)):
            raise FormatError(
                _(
                    "'stream_write_seconds' must be a positive number of seconds, not "
                    "{stream_write_seconds}"
                ).format(stream_write_seconds=self.stream_write_seconds)
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise FormatError(
                _(
                    "TLS needs both a certificate and its key: give 'tls_cert' and 'tls_key' "
                    "(--tls-cert and --tls-key) together"
                )
            )
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise FormatError(
                _(
                    "'tls_client_ca' (--tls-client-ca) asks clients for certificates, which "
                    "needs TLS: give 'tls_cert' and 'tls_key' as well"
                )
            )
        if (self.peer_cert is None) != (self.peer_key is None):
            raise FormatError(
                _(
                    "a certificate for other towns needs its key: give 'peer_cert' and 'peer_key' "
                    "(--peer-cert and --peer-key) together"
                )
            )
        if self.peer_cert is not None and self.peer_ca is None:
            raise FormatError(
                _(
                    "'peer_cert' (--peer-cert) is shown to other towns' nodes, which needs their "
                    "CAs: give 'peer_ca' (--peer-ca) as well"
                )
            )
        if self.peer_names:
            if self.peer_ca is None or self.tls_cert is None:
                raise FormatError(
                    _(
                        "'peer_names' (--peer-name) admits other towns' nodes by their "
                        "certificates, which needs mutual TLS: give 'peer_ca' (--peer-ca) and "
                        "'tls_cert' and 'tls_key' as well"
                    )
                )
            if not all(name.strip() == name and name for name in self.peer_names):
                raise FormatError(
                    _(
                        "each of 'peer_names' must be a name without surrounding spaces, not "
                        "{peer_names!r}"
                    ).format(peer_names=list(self.peer_names))
                )
        if self.rate_limit is not None and not (
            self.rate_limit > 0 and math.isfinite(self.rate_limit)
        ):
            raise FormatError(
                _(
                    "'rate_limit' must be a positive number of calls per second, not {rate_limit}"
                ).format(rate_limit=self.rate_limit)
            )
        if self.rate_burst is not None:
            if self.rate_limit is None:
                raise FormatError(_("'rate_burst' needs 'rate_limit' (--rate-limit) as well"))
            if self.rate_burst < 1:
                raise FormatError(
                    _("'rate_burst' must be at least 1, not {rate_burst}").format(
                        rate_burst=self.rate_burst
                    )
                )
        if self.rate_limit_bytes is not None and not (
            self.rate_limit_bytes > 0 and math.isfinite(self.rate_limit_bytes)
        ):
            raise FormatError(
                _(
                    "'rate_limit_bytes' must be a positive number of bytes per second, not "
                    "{rate_limit_bytes}"
                ).format(rate_limit_bytes=self.rate_limit_bytes)
            )
        if self.rate_burst_bytes is not None:
            if self.rate_limit_bytes is None:
                raise FormatError(
                    _("'rate_burst_bytes' needs 'rate_limit_bytes' (--rate-limit-bytes) as well")
                )
            if self.rate_burst_bytes < 1:
                raise FormatError(
                    _("'rate_burst_bytes' must be at least 1, not {rate_burst_bytes}").format(
                        rate_burst_bytes=self.rate_burst_bytes
                    )
                )

    def memory_ceiling(self) -> int:
        """The resident memory, in bytes, this node stays under (see the module docstring)."""
        return memory_ceiling(
            max_calls=self.max_calls,
            max_message_bytes=self.max_message_bytes,
            max_streams=self.max_streams,
        )


@dataclass(frozen=True, kw_only=True)
class ServeSettings(ListenerSettings):
    """Everything ``serve`` needs to know, after defaults, file and flags were combined."""

    data: Path
    listen: str
    metrics: str | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    max_group: int = DEFAULT_MAX_GROUP
    commit_depth: int = DEFAULT_COMMIT_DEPTH
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    log_level: str = "info"
    map_size_gib: int | None = None
    #: The witness's cosigning key file; None: the node is no witness.
    witness_key: Path | None = None
    witness_name: str | None = None
    #: The logs witnessed: each a verifier key string or a file holding one.
    witness_for: tuple[str, ...] = ()
    #: Witnesses whose cosignatures this node collects: (address, cosigning key string).
    ask_witness: tuple[tuple[str, str], ...] = ()
    cosign_interval: float = DEFAULT_COSIGN_INTERVAL
    #: Other towns' grades this town recognises (``[recognition]``); None: none.
    recognition: RecognitionConfig | None = None
    #: The review queue (``redlist.node.review``): days a proposal waits, and how many may.
    review_days: int = DEFAULT_REVIEW_DAYS
    review_max_pending: int = DEFAULT_MAX_PENDING
    review_max_per_proposer: int = DEFAULT_MAX_PER_PROPOSER

    def __post_init__(self) -> None:
        parse_address(self.listen, "listen")
        if self.metrics is not None:
            parse_address(self.metrics, "metrics")
        for name in (
            "max_batch",
            "max_group",
            "commit_depth",
            "review_days",
            "review_max_pending",
            "review_max_per_proposer",
        ):
            if getattr(self, name) < 1:
                raise FormatError(
                    _("'{name}' must be at least 1, not {getattr}").format(
                        name=name, getattr=getattr(self, name)
                    )
                )
        if self.max_group < self.max_batch:
            raise FormatError(
                _(
                    "'max_group' ({max_group}) must be at least 'max_batch' ({max_batch}): a "
                    "shared "
                    "commit always takes whole batches"
                ).format(max_group=self.max_group, max_batch=self.max_batch)
            )
        super().__post_init__()
        if self.grace_seconds < 0:
            raise FormatError(
                _("'grace_seconds' must not be negative, not {grace_seconds}").format(
                    grace_seconds=self.grace_seconds
                )
            )
        if self.log_level not in LOG_LEVELS:
            raise FormatError(
                _("'log_level' must be one of {join}, not {log_level!r}").format(
                    join=", ".join(LOG_LEVELS), log_level=self.log_level
                )
            )
        if (self.witness_key is None) != (not self.witness_for):
            raise FormatError(
                _(
                    "a witness needs both its key and the logs it witnesses: give 'witness_key' "
                    "and 'witness_for' (--witness-key and --witness-for) together"
                )
            )
        if self.witness_name is not None and self.witness_key is None:
            raise FormatError(_("'witness_name' (--witness-name) needs 'witness_key' as well"))
        if not (self.cosign_interval >= 0 and math.isfinite(self.cosign_interval)):
            raise FormatError(
                _("'cosign_interval' must be a number of seconds, not {cosign_interval}").format(
                    cosign_interval=self.cosign_interval
                )
            )
        addresses = [address for address, _key in self.ask_witness]
        if len(set(addresses)) != len(addresses):
            raise FormatError(_("'ask_witness' names one witness address twice"))
        if self.map_size_gib is not None and self.map_size_gib < 1:
            raise FormatError(
                _("'map_size_gib' must be at least 1, not {map_size_gib}").format(
                    map_size_gib=self.map_size_gib
                )
            )


def memory_ceiling(*, max_calls: int, max_message_bytes: int, max_streams: int) -> int:
    """``BASE_MEMORY + max_calls * REQUEST_COPIES * max_message_bytes + max_streams *
    STREAM_CHUNK_BYTES``: the resident memory a node with these limits stays under."""
    return (
        BASE_MEMORY
        + max_calls * REQUEST_COPIES * max_message_bytes
        + max_streams * STREAM_CHUNK_BYTES
    )


#: The listener's settings (``ListenerSettings``) -> the types a TOML value may have;
#: the same keys in ``serve``'s and ``mirror``'s config files.
LISTENER_TYPES: dict[str, tuple[type, ...]] = {
    "max_message_bytes": (int,),
    "max_calls": (int,),
    "max_calls_per_client": (int,),
    "max_streams": (int,),
    "max_streams_per_client": (int,),
    "stream_write_seconds": (int, float),
    "tls_cert": (str,),
    "tls_key": (str,),
    "tls_client_ca": (str,),
    "peer_ca": (str,),
    "peer_cert": (str,),
    "peer_key": (str,),
    "peer_names": (list,),
    "rate_limit": (int, float),
    "rate_burst": (int,),
    "rate_limit_bytes": (int, float),
    "rate_burst_bytes": (int,),
}


def parse_address(address: str, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as (host, port); port 0 picks a free one."""
    host, separator, port_text = address.rpartition(":")
    if not separator or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise FormatError(
            _("{what} address {address!r} is not HOST:PORT (for example 127.0.0.1:7420)").format(
                what=what, address=address
            )
        )
    return host, int(port_text)
