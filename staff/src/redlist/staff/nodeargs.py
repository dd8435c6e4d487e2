"""The ``--node`` options every staff command takes, and the client they connect to.

:func:`add_node_argument` gives a command ``--node`` together with ``--log-key``,
``--tls-ca``, ``--tls-cert`` and ``--tls-key``, and stores the address and the TLS
files as one :class:`~redlist.staff.client.NodeAddress` in ``args.node``, so
:func:`connect` connects the way the user asked. Any of the three TLS options turns TLS
on: ``--tls-ca`` is the CA that signed the node's certificate (the system's trusted CAs
when absent); ``--tls-cert`` and ``--tls-key`` are this client's own certificate and
key, for a node that requires them (mutual TLS). ``connect`` holds the node to the town
log's key, given or remembered (:mod:`redlist.staff.knownlogs`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from redlist.ledger.i18n import _
from redlist.proto.client import RemoteTLS, check_address
from redlist.staff import knownlogs
from redlist.staff.client import LedgerClient, NodeAddress


class _NodeOption(argparse.Action):
    """Stores its value, then rebuilds ``args.node`` from ``--node`` and the TLS flags.

    argparse takes options in any order, so each of them recombines what is
    known so far; after parsing, ``args.node`` reflects all of them.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        address = getattr(namespace, "node", None)
        if address is None:
            return
        paths = (getattr(namespace, name, None) for name in ("tls_ca", "tls_cert", "tls_key"))
        ca, cert, key = paths
        tls = RemoteTLS(ca, cert, key) if (ca or cert or key) else None
        namespace.node = NodeAddress(str(address), tls)


def add_node_argument(parser: argparse.ArgumentParser) -> None:
    """``--node HOST:PORT``, ``--log-key`` and the TLS options.

    ``args.node`` becomes a :class:`NodeAddress`; :func:`connect` uses them all.
    """
    parser.add_argument(
        "--node",
        required=True,
        action=_NodeOption,
        metavar="HOST:PORT",
        help=_("the town node's address, e.g. 127.0.0.1:7420"),
    )
    parser.add_argument(
        "--log-key",
        dest="log_key",
        metavar="VKEY|FILE",
        help=_(
            "the town log's key (its log.pub file from the admin, or the key text); "
            "needed once per node, then remembered"
        ),
    )
    tls = parser.add_argument_group(_("reaching the node over TLS (plaintext when not given)"))
    tls.add_argument(
        "--tls-ca",
        dest="tls_ca",
        type=Path,
        action=_NodeOption,
        metavar="FILE",
        help=_("the CA certificate (PEM) that signed the node's certificate"),
    )
    tls.add_argument(
        "--tls-cert",
        dest="tls_cert",
        type=Path,
        action=_NodeOption,
        metavar="FILE",
        help=_("this client's certificate (PEM), for a node that requires one"),
    )
    tls.add_argument(
        "--tls-key",
        dest="tls_key",
        type=Path,
        action=_NodeOption,
        metavar="FILE",
        help=_("the private key (PEM) of --tls-cert"),
    )


def connect(args: argparse.Namespace, known: knownlogs.KnownLogs | None = None) -> LedgerClient:
    """A client of ``args.node`` that holds the node to the town log's key.

    The key is ``args.log_key`` or the one remembered for the address in ``known``
    (default: the user's known-logs file). On first contact the node's checkpoint
    is verified with the given key before the key is remembered (and that is said
    on stderr). Raises ``KeyFileError`` when no key is known or the given one is not
    the remembered one, ``VerificationError`` when the node does not prove its log.
    """
    check_address(str(args.node))  # a typing mistake first, before any key question
    known = knownlogs.KnownLogs(knownlogs.default_path()) if known is None else known
    choice = knownlogs.choose_log_key(str(args.node), args.log_key, known)
    client = LedgerClient(args.node, log_key=choice.log_key, key_source=choice.source)
    if choice.remember:
        try:
            client.latest()
            knownlogs.announce_remembered(str(args.node), choice, known)
        except BaseException:
            client.close()
            raise
    return client


__all__ = ["add_node_argument", "connect"]
