"""``redlist-node serve``: serve a town's log over gRPC until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redlist.ledger.cores import available_cores
from redlist.ledger.errors import StoreError
from redlist.ledger.i18n import N_, _
from redlist.ledger.log import Log
from redlist.ledger.sigschedule import SignatureScheduler
from redlist.ledger.sigworkers import VERIFY_SWITCH_INTERVAL_S
from redlist.ledger.witnessstore import WitnessStore
from redlist.node.allocator import limit_arenas
from redlist.node.config import DEFAULT_COSIGN_INTERVAL, DEFAULT_GRACE_SECONDS, DEFAULT_MAX_BATCH
from redlist.node.configfile import load_config_file, resolve_settings
from redlist.node.listenflags import LISTENER_FLAGS, add_listener_flags
from redlist.node.server import serve_until_signalled
from redlist.node.witness import Witness, WitnessConfig

DESCRIPTION = N_("""\
Serve the log in --data over gRPC (service redlist.v1.Ledger, plus the standard
health service and server reflection) on --listen HOST:PORT. Port 0 picks a
free port; the address actually used is printed once the node serves:

  serving log <origin> (<n> entries) on HOST:PORT

Submitted batches are answered only once durably stored; concurrent batches are
committed together. SIGTERM or SIGINT stops the node gracefully: it takes no
new calls, lets calls in flight finish (up to --grace seconds), closes the log
and exits 0.

Transport: plaintext by default, meant for a node on 127.0.0.1 (or behind a TLS
proxy). --tls-cert and --tls-key serve TLS; --tls-client-ca also requires every
client to present a certificate signed by a CA in that file (mutual TLS):

  redlist-node serve --data town --listen 0.0.0.0:7420 \\
      --tls-cert tls/node.pem --tls-key tls/node.key --tls-client-ca tls/staff-ca.pem

Other towns' nodes (docs/federation.md, "Between towns: mutual TLS"): --peer-ca
FILE holds their CAs. This node trusts them when it connects to another town (a
witness it asks) and presents --peer-cert/--peer-key; with --tls-cert it also
accepts their nodes' certificates, which may read and call the Witness service but
never Submit. --peer-name NAME (repeatable) admits only the nodes whose certificate
names NAME; the others are refused PERMISSION_DENIED and logged. Without
--peer-ca, connections to other nodes are plaintext, to loopback addresses only:

  redlist-node serve --data town --listen 0.0.0.0:7420 \\
      --tls-cert tls/node.pem --tls-key tls/node.key --tls-client-ca tls/staff-ca.pem \\
      --peer-ca tls/towns-ca.pem --peer-cert tls/node.pem --peer-key tls/node.key \\
      --peer-name rushan --peer-name juxian

Limits (always on; see docs/operations.md, "Memory"): at most --max-calls calls
at once (--max-calls-per-client from one client), --max-streams open streams
(--max-streams-per-client), requests of --max-message-bytes; a stream whose
reader does not take an answer within --stream-write-timeout seconds is ended.
A call over a limit is refused with RESOURCE_EXHAUSTED before its request is
read. With the defaults the node stays under about 690 MiB of memory, whatever
clients send; the log line at start-up states the ceiling.

--rate-limit N refuses a client's calls beyond N per second on average (bursts
of --rate-burst, default N) with RESOURCE_EXHAUSTED and the time to wait;
--rate-limit-bytes B does the same for request bytes (bursts of
--rate-burst-bytes). A client is its certificate subject under mutual TLS, else
its address. Off by default.

Witness (DESIGN 8.2): --witness-key FILE (a key from 'redlist keygen') with
--witness-for VKEY (repeatable: another town's log key string, or its log.pub)
also serves redlist.v1.Witness, cosigning those logs' checkpoints; the cosigner's
name is --witness-name, else the name in FILE.pub. Its state is kept in
DIR/witness.lmdb, with a journal DIR/witness.journal that refuses an older copy of
it put back (see 'redlist-node witness-reset'), split-view evidence in
DIR/evidence/ (see 'redlist-node alarms'). While evidence of a log is kept there, the
health service 'redlist.v1.Witness/<origin>' of that log is NOT_SERVING and the
metric redlist_witness_split_view{origin} is 1:

  redlist-node serve --data town --listen 127.0.0.1:7420 \\
      --witness-key keys/witness.pem --witness-for rushan.pub --witness-for juxian.pub

Collecting cosignatures (DESIGN 8.4): --ask-witness ADDR VKEY (repeatable; VKEY is
the witness's cosigning key, as its GetWitnessKey states it) asks that witness to
cosign each new checkpoint (at most once every --cosign-interval seconds), and
serves checkpoints with the cosignatures collected for exactly them. A witness
that is down or refuses is logged and asked again later; it never delays Submit:

  redlist-node serve --data town --listen 127.0.0.1:7420 \\
      --ask-witness rushan.example:7420 rushan-witness+5e6f7a8b+BA...

Settings may also come from a TOML file (--config); flags override it. Log lines
(one per commit and one per refused batch) go to stderr.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help=_("serve the log over gRPC"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, metavar="DIR", help=_("the node's data directory"))
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help=_("address to serve on, e.g. 127.0.0.1:7420")
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help=_("a TOML settings file"))
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help=_("serve Prometheus metrics at http://HOST:PORT/metrics (off by default)"),
    )
    parser.add_argument(
        "--grace",
        dest="grace_seconds",
        type=float,
        metavar="SECONDS",
        help=_(
            "how long shutdown waits for calls in flight (default {DEFAULT_GRACE_SECONDS:g})"
        ).format(DEFAULT_GRACE_SECONDS=DEFAULT_GRACE_SECONDS),
    )
    parser.add_argument(
        "--max-batch",
        dest="max_batch",
        type=int,
        metavar="N",
        help=_("most envelopes one Submit may carry (default {DEFAULT_MAX_BATCH})").format(
            DEFAULT_MAX_BATCH=DEFAULT_MAX_BATCH
        ),
    )
    parser.add_argument(
        "--map-size",
        dest="map_size_gib",
        type=int,
        metavar="GIB",
        help=_(
            "address space reserved for the ledger, in GiB (default 1024); raise it when "
            "the node reports that the ledger's storage is full"
        ),
    )
    parser.add_argument(
        "--log-level",
        dest="log_level",
        choices=("debug", "info", "warning", "error"),
        help=_("how much to log on stderr (default info)"),
    )
    add_listener_flags(parser)
    witness = parser.add_argument_group(_("witness of other towns' logs (off when not given)"))
    witness.add_argument(
        "--witness-key",
        dest="witness_key",
        type=Path,
        metavar="FILE",
        help=_("serve the Witness service, cosigning with this Ed25519 key (from redlist keygen)"),
    )
    witness.add_argument(
        "--witness-name",
        dest="witness_name",
        metavar="NAME",
        help=_("the cosigner's name in its signature lines (default: the name in FILE.pub)"),
    )
    witness.add_argument(
        "--witness-for",
        dest="witness_for",
        action="append",
        metavar="VKEY",
        help=_("a log to witness: its verifier key string or a file holding it (repeatable)"),
    )
    asking = parser.add_argument_group(_("cosignatures of this log (off when not given)"))
    asking.add_argument(
        "--ask-witness",
        dest="ask_witness",
        action="append",
        nargs=2,
        metavar=("ADDR", "VKEY"),
        help=_("a witness to ask for cosignatures: its address and cosigning key (repeatable)"),
    )
    asking.add_argument(
        "--cosign-interval",
        dest="cosign_interval",
        type=float,
        metavar="SECONDS",
        help=_(
            "ask the witnesses at most once every SECONDS (default {DEFAULT_COSIGN_INTERVAL:g})"
        ).format(DEFAULT_COSIGN_INTERVAL=DEFAULT_COSIGN_INTERVAL),
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    file_values: dict[str, Any] = load_config_file(args.config) if args.config else {}
    flags = {
        name: getattr(args, name)
        for name in (
            "data",
            "listen",
            "metrics",
            "grace_seconds",
            "max_batch",
            "log_level",
            "map_size_gib",
            "witness_key",
            "witness_name",
            "witness_for",
            "ask_witness",
            "cosign_interval",
            *LISTENER_FLAGS,
        )
    }
    settings = resolve_settings(file_values, flags)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    map_size = settings.map_size_gib << 30 if settings.map_size_gib else None
    check_data_dir(settings.data)
    config = None
    if settings.witness_key is not None:
        config = WitnessConfig.load(
            settings.witness_key, settings.witness_name, settings.witness_for
        )
    tune_process()
    with (
        Log.open(settings.data, map_size=map_size) as log,
        _witness(settings.data, config) as witness,
        signature_workers() as workers,
    ):
        if workers is not None:
            log.verify_signatures_with(workers)
        asyncio.run(serve_until_signalled(log, settings, witness=witness, workers=workers))
    return 0


@contextlib.contextmanager
def _witness(data: Path, config: WitnessConfig | None) -> Iterator[Witness | None]:
    """The witness with its state open (opened after the log: the log's lock comes first)."""
    if config is None:
        yield None
        return
    store = WitnessStore.open(data)
    try:
        yield Witness(config, store, data)
    finally:
        store.close()


def tune_process() -> None:
    """Process-wide settings for serving, made before any server thread starts.

    * the thread switch interval, as ``redlist.ledger.sigworkers.tune_interpreter``
      sets it (a verifying thread beside the server's waits less for the GIL);
    * glibc's malloc arenas (``redlist.node.allocator``), so freed requests are
      reused rather than kept per thread;
    * not the garbage collector's thresholds, which ``tune_interpreter`` raises for
      an audit's millions of long-lived objects: the node keeps its state in LMDB,
      not in Python objects, and a short-lived cycle (gRPC makes a few per call)
      should be freed soon, not after 50,000 allocations.
    """
    sys.setswitchinterval(VERIFY_SWITCH_INTERVAL_S)
    limit_arenas()


#: How many steps nicer than the node its signature workers run (ADR 0055): the
#: node's one writer, which every batch waits for, then has a core whenever it can
#: run, and the workers verify on what is left. Measured on 2 cores: about a tenth
#: more entries a second than at the node's own priority.
WORKER_NICENESS = 5


@contextlib.contextmanager
def signature_workers() -> Iterator[SignatureScheduler | None]:
    """One signature-verifying process per core (none on a single core), for the log.

    Processes rather than threads: a thread re-takes the GIL after every signature
    and waits for it while the server and the writer run Python (DESIGN 6). They run
    ``WORKER_NICENESS`` steps nicer than the node.
    """
    cores = available_cores()
    if cores < 2:
        yield None
        return
    with SignatureScheduler(cores, processes=True, niceness=WORKER_NICENESS) as workers:
        workers.wait_started()  # serve once they can verify (a fraction of a second)
        yield workers


def check_data_dir(data: Path) -> None:
    """Refuse, in words, a ``--data`` that names no directory at all (missing, or a file)."""
    if data.is_dir():
        return
    if data.exists():
        raise StoreError(
            _(
                "{data} is a file, not a data directory; --data names the directory "
                "'redlist-node init' created"
            ).format(data=data)
        )
    raise StoreError(
        _("the data directory {data} does not exist; create a log with 'redlist-node init'").format(
            data=data
        )
    )
