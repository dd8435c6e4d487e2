"""``redlist-node mirror``: copy other towns' logs, verify every entry, serve the copies."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from redlist.ledger.i18n import N_, _
from redlist.ledger.mirrorlog import MirrorLog
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.sigschedule import SignatureScheduler
from redlist.node.commands.serve import signature_workers, tune_process
from redlist.node.config import DEFAULT_GRACE_SECONDS, parse_address
from redlist.node.listenflags import LISTENER_FLAGS, add_listener_flags
from redlist.node.metrics import MirrorMetrics
from redlist.node.mirror import Follower
from redlist.node.mirrorcfg import MirrorSettings, load_mirror_config, resolve_mirror_settings
from redlist.node.peers import check_peer_address, open_peer_channel_sync
from redlist.node.server import NodeServer
from redlist.node.serveroptions import ServerOptions

logger = logging.getLogger(__name__)

#: Largest answer taken from a primary: a window of leaves, above a node's 4 MiB default.
PEER_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
)
DESCRIPTION = N_("""\
Copy another town's log from its node (--from ADDR, the primary) into the data
directory --data (created when new; its own LMDB, never the town's own directory),
verify every entry on receipt as an auditor does (signatures, hash chain, the rules
and balances) and every checkpoint (signed by --log-key, its root that of the entries
received, consistent with the last one held), and serve the copy's read API on
--listen: redlist-verify node, redlist account and redlist-node export work on a
mirror as on the town's own node. Submit is refused: the mirror takes no entries.

The mirror catches up in steps of a few thousand entries, each stored durably with
the checkpoint the log signed over it, then follows the log live. It resumes where
it stopped after a crash of either side, retrying an unreachable primary with a
back-off doubling from 1 to 60 seconds. Once serving, it prints for each log:

  mirroring log <origin> (<n> entries) from ADDR on HOST:PORT

A leaf or checkpoint that fails a check is refused and named in a log line (what,
which entry, which address); the mirror keeps serving what it verified. A checkpoint
that contradicts one the mirror holds (a split view: the log shows two histories) is
kept as evidence in DIR/evidence/ ('redlist-node alarms --data DIR'), health turns
NOT_SERVING, and the mirror stops following that log until an operator moves the
evidence out of DIR/evidence/ and restarts it.

--mirror-key FILE (a key from 'redlist keygen'; never the witness key, which
--witness-key names so the two are compared) makes the mirror cosign each checkpoint
once every entry up to it is durably stored (C2SP tlog-mirror: "I hold this and will
serve it"), under --mirror-name (default: the name in FILE.pub):

  redlist-node mirror --data mirrors/rushan --from rushan.example:7420 \\
      --log-key rushan.pub --listen 0.0.0.0:7431 --mirror-key keys/mirror.pem \\
      --peer-ca tls/towns-ca.pem --peer-cert tls/node.pem --peer-key tls/node.key

Several logs in one process: [[mirror]] tables in a TOML file (--config), each with
data, from, log_key and listen (see docs/operations.md, "Mirroring another town's
log"). --peer-ca (the other towns' CAs), with --peer-cert and --peer-key (this town's
certificate), reach the primaries over TLS, as 'serve' reaches witnesses; without
--peer-ca only a primary on this machine can be followed (plaintext).

The copies are served as 'serve' serves a log, with the same flags and config keys:
TLS with --tls-cert and --tls-key (mutual with --tls-client-ca, and other towns'
nodes accepted by --peer-ca, only those named by --peer-name when given), the
concurrency limits (--max-calls, --max-streams, ...), the rate limits (--rate-limit,
--rate-limit-bytes) and --max-message-bytes. Log lines go to stderr; SIGTERM or
SIGINT stops the mirror gracefully.""")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "mirror",
        help=_("copy, verify and serve another town's log"),
        description=_(DESCRIPTION),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, metavar="DIR", help=_("the mirror's data directory"))
    parser.add_argument(
        "--from", dest="upstream", metavar="ADDR", help=_("the log's node (HOST:PORT) to copy")
    )
    parser.add_argument(
        "--log-key",
        dest="log_key",
        metavar="VKEY",
        help=_("the log's verifier key string, or a file holding it (the town's log.pub)"),
    )
    parser.add_argument("--listen", metavar="HOST:PORT", help=_("address to serve the copy on"))
    parser.add_argument("--config", type=Path, metavar="FILE", help=_("a TOML settings file"))
    parser.add_argument(
        "--mirror-key",
        dest="mirror_key",
        type=Path,
        metavar="FILE",
        help=_("cosign stored checkpoints with this Ed25519 key (from redlist keygen)"),
    )
    parser.add_argument(
        "--mirror-name",
        dest="mirror_name",
        metavar="NAME",
        help=_("the cosigner's name in its signature lines (default: the name in FILE.pub)"),
    )
    parser.add_argument(
        "--witness-key",
        dest="witness_key",
        type=Path,
        metavar="FILE",
        help=_("this town's witness key: the mirror refuses to cosign with the same key"),
    )
    parser.add_argument(
        "--metrics", metavar="HOST:PORT", help=_("serve Prometheus metrics at /metrics")
    )
    parser.add_argument(
        "--map-size",
        dest="map_size_gib",
        type=int,
        metavar="GIB",
        help=_("address space reserved for each copy, in GiB (default 1024)"),
    )
    parser.add_argument(
        "--log-level",
        dest="log_level",
        choices=("debug", "info", "warning", "error"),
        help=_("how much to log on stderr (default info)"),
    )
    add_listener_flags(parser)
    parser.set_defaults(run=run)


_FLAGS = (
    "data",
    "upstream",
    "log_key",
    "listen",
    "mirror_key",
    "mirror_name",
    "witness_key",
    "metrics",
    "map_size_gib",
    "log_level",
    *LISTENER_FLAGS,
)


def run(args: argparse.Namespace) -> int:
    file_values: dict[str, Any] = load_mirror_config(args.config) if args.config else {}
    settings = resolve_mirror_settings(file_values, {name: getattr(args, name) for name in _FLAGS})
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    signer = settings.signer()
    tune_process()
    started = time.monotonic()
    with _scheduler() as scheduler, contextlib.ExitStack() as stack:
        logger.info("signature workers ready in_seconds=%.1f", time.monotonic() - started)
        metrics = MirrorMetrics()
        followers = _followers(settings, signer, scheduler, stack, metrics)
        logger.info(
            "copies opened logs=%d in_seconds=%.1f", len(followers), time.monotonic() - started
        )
        asyncio.run(mirror_until_signalled(followers, settings, metrics))
    return 0


def _followers(
    settings: MirrorSettings,
    signer: NoteSigner | None,
    scheduler: SignatureScheduler,
    stack: contextlib.ExitStack,
    metrics: MirrorMetrics,
) -> list[tuple[Follower, str]]:
    """A follower per mirrored log, with its copy open and its channel to the primary."""
    map_size = settings.map_size_gib << 30 if settings.map_size_gib else None
    tls = settings.peer_tls()
    for mirrored in settings.logs:  # every address, before anything is created
        check_peer_address(mirrored.upstream, tls, "--from")
    followers = []
    for mirrored in settings.logs:
        mirror = stack.enter_context(
            MirrorLog.open(mirrored.data, mirrored.log_key, map_size=map_size)
        )
        channel = stack.enter_context(
            open_peer_channel_sync(mirrored.upstream, tls, options=PEER_OPTIONS, what="--from")
        )
        follower = Follower(
            mirror,
            mirrored.upstream,
            channel,
            scheduler,
            signer=signer,
            limits=settings.limits(),
            metrics=metrics,
        )
        followers.append((follower, mirrored.listen))
    return followers


async def mirror_until_signalled(
    followers: list[tuple[Follower, str]],
    settings: MirrorSettings,
    metrics: MirrorMetrics,
    out: TextIO = sys.stdout,
) -> None:
    """Serve every mirrored log until SIGTERM or SIGINT, then stop gracefully."""
    nodes: list[NodeServer] = []
    try:
        for follower, listen in followers:
            node = await NodeServer.start(
                follower.mirror.log, listen, ServerOptions.for_listener(settings), follower=follower
            )
            nodes.append(node)
            # English in every language, as serve's "serving log" line: scripts read it.
            # One write, end of line included, as that line (server.serve_until_signalled).
            out.write(
                f"mirroring log {follower.mirror.origin} ({follower.mirror.size} entries) "
                f"from {follower.upstream} on {node.address}\n"
            )
            out.flush()
        if settings.metrics is not None:
            host, port = parse_address(settings.metrics, "metrics")
            bound = metrics.serve_http(host, port)
            print(
                _("metrics on http://{host}:{bound}/metrics").format(host=host, bound=bound),
                file=out,
                flush=True,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        logger.info("signal received, shutting down")
    finally:
        for node in nodes:
            await node.stop(DEFAULT_GRACE_SECONDS)
        metrics.stop_http()


@contextlib.contextmanager
def _scheduler() -> Iterator[SignatureScheduler]:
    """Worker processes verifying signatures (threads on a single core)."""
    with signature_workers() as workers:
        if workers is not None:
            yield workers
            return
    with SignatureScheduler(1) as single:
        yield single
