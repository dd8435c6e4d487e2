"""The flags of a node's listener, shared by ``redlist-node serve`` and ``mirror``.

TLS (``--tls-cert``, ``--tls-key``, ``--tls-client-ca``), other towns' nodes
(``--peer-ca``, ``--peer-cert``, ``--peer-key``, ``--peer-name``), the admission
limits and the rate limits: the fields of :class:`~redlist.node.config.ListenerSettings`,
which the same keys set in either command's TOML file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from redlist.ledger.i18n import _
from redlist.node.config import (
    DEFAULT_MAX_CALLS,
    DEFAULT_MAX_CALLS_PER_CLIENT,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_STREAMS_PER_CLIENT,
    DEFAULT_STREAM_WRITE_SECONDS,
    LISTENER_TYPES,
)

#: The ``argparse`` destinations of the flags, the names of ``ListenerSettings``.
LISTENER_FLAGS = tuple(LISTENER_TYPES)


def add_listener_flags(parser: argparse.ArgumentParser) -> None:
    """Add the listener's flags to ``parser`` (each destination in ``LISTENER_FLAGS``)."""
    parser.add_argument(
        "--max-message-bytes",
        dest="max_message_bytes",
        type=int,
        metavar="BYTES",
        help=_(
            "largest request (and answer) the node handles (default "
            "{DEFAULT_MAX_MESSAGE_BYTES}, {value} MiB)"
        ).format(
            DEFAULT_MAX_MESSAGE_BYTES=DEFAULT_MAX_MESSAGE_BYTES,
            value=DEFAULT_MAX_MESSAGE_BYTES >> 20,
        ),
    )
    tls = parser.add_argument_group(_("transport security (plaintext when not given)"))
    tls.add_argument(
        "--tls-cert",
        dest="tls_cert",
        type=Path,
        metavar="FILE",
        help=_("serve TLS with this PEM certificate (then any intermediate CA certificates)"),
    )
    tls.add_argument(
        "--tls-key",
        dest="tls_key",
        type=Path,
        metavar="FILE",
        help=_("the certificate's private key (PEM, unencrypted)"),
    )
    tls.add_argument(
        "--tls-client-ca",
        dest="tls_client_ca",
        type=Path,
        metavar="FILE",
        help=_("mutual TLS: require client certificates signed by a CA in this PEM file"),
    )
    peers = parser.add_argument_group(
        _("other towns' nodes (plaintext to loopback addresses only when not given)")
    )
    peers.add_argument(
        "--peer-ca",
        dest="peer_ca",
        type=Path,
        metavar="FILE",
        help=_(
            "other towns' CAs (PEM): trusted when connecting to their nodes and, with "
            "--tls-cert, accepted from them as client certificates"
        ),
    )
    peers.add_argument(
        "--peer-cert",
        dest="peer_cert",
        type=Path,
        metavar="FILE",
        help=_("this town's certificate (PEM, usable by a client) shown to other towns' nodes"),
    )
    peers.add_argument(
        "--peer-key",
        dest="peer_key",
        type=Path,
        metavar="FILE",
        help=_("its key (PEM, unencrypted)"),
    )
    peers.add_argument(
        "--peer-name",
        dest="peer_names",
        action="append",
        metavar="NAME",
        help=_(
            "an other town's node allowed in: a common name or DNS name of its certificate "
            "(repeatable; default: any certificate --peer-ca issued)"
        ),
    )
    concurrency = parser.add_argument_group(
        _("concurrency (always on; these set the memory ceiling)")
    )
    concurrency.add_argument(
        "--max-calls",
        dest="max_calls",
        type=int,
        metavar="N",
        help=_("calls served at once, all clients together (default {DEFAULT_MAX_CALLS})").format(
            DEFAULT_MAX_CALLS=DEFAULT_MAX_CALLS
        ),
    )
    concurrency.add_argument(
        "--max-calls-per-client",
        dest="max_calls_per_client",
        type=int,
        metavar="N",
        help=_(
            "calls served at once for one client (default {DEFAULT_MAX_CALLS_PER_CLIENT})"
        ).format(DEFAULT_MAX_CALLS_PER_CLIENT=DEFAULT_MAX_CALLS_PER_CLIENT),
    )
    concurrency.add_argument(
        "--max-streams",
        dest="max_streams",
        type=int,
        metavar="N",
        help=_(
            "streams (GetLeaves, Follow, ...) open at once, all clients together (default "
            "{DEFAULT_MAX_STREAMS})"
        ).format(DEFAULT_MAX_STREAMS=DEFAULT_MAX_STREAMS),
    )
    concurrency.add_argument(
        "--max-streams-per-client",
        dest="max_streams_per_client",
        type=int,
        metavar="N",
        help=_(
            "streams open at once for one client (default {DEFAULT_MAX_STREAMS_PER_CLIENT})"
        ).format(DEFAULT_MAX_STREAMS_PER_CLIENT=DEFAULT_MAX_STREAMS_PER_CLIENT),
    )
    concurrency.add_argument(
        "--stream-write-timeout",
        dest="stream_write_seconds",
        type=float,
        metavar="SECONDS",
        help=_(
            "end a stream whose reader leaves an answer unread this long (default "
            "{DEFAULT_STREAM_WRITE_SECONDS:g})"
        ).format(DEFAULT_STREAM_WRITE_SECONDS=DEFAULT_STREAM_WRITE_SECONDS),
    )
    limits = parser.add_argument_group(_("rate limiting (off when not given)"))
    limits.add_argument(
        "--rate-limit",
        dest="rate_limit",
        type=float,
        metavar="N",
        help=_("calls per second one client may make on average"),
    )
    limits.add_argument(
        "--rate-burst",
        dest="rate_burst",
        type=int,
        metavar="N",
        help=_("calls a client may make at once after a pause (default: --rate-limit)"),
    )
    limits.add_argument(
        "--rate-limit-bytes",
        dest="rate_limit_bytes",
        type=float,
        metavar="BYTES",
        help=_("request bytes per second one client may send on average"),
    )
    limits.add_argument(
        "--rate-burst-bytes",
        dest="rate_burst_bytes",
        type=int,
        metavar="BYTES",
        help=_(
            "request bytes a client may send at once after a pause (default: "
            "--rate-limit-bytes or --max-message-bytes, whichever is larger)"
        ),
    )
