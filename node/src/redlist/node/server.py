"""The node's gRPC server: the Ledger service, health, reflection, and graceful shutdown.

With a :class:`~redlist.node.witness.Witness` it also serves ``redlist.v1.Witness``
(cosigning other towns' checkpoints; its calls run on the same read pool). With
witnesses to ask (``ServerOptions.ask_witness``, :mod:`redlist.node.serveroptions`) it runs a
:class:`~redlist.node.cosigning.Cosigner` and serves its checkpoints with the
cosignatures collected (GetCheckpoint, Follow, Submit's answer).

:class:`NodeServer` serves one open :class:`~redlist.ledger.log.Log` on one address.
It owns the batcher that groups Submit calls and the thread pool for reads; the
caller owns the log and closes it after :meth:`NodeServer.stop` returns.

Health: SERVING overall, for each service, and for the writes
(``WRITES_HEALTH_SERVICE``, ``redlist.v1.Ledger/Submit``); the writes alone turn
NOT_SERVING when the store stops taking entries until a restart (ADR 0029).

Shutdown, in order: health turns NOT_SERVING (load balancers move away);
``Follow`` streams end cleanly; the server stops taking calls and gives those in
flight ``grace`` seconds; commits already under way finish (a commit is never
abandoned halfway, and the log is not closed under it); the thread pools stop.
Whatever a client was told is committed is durable before its answer was sent.

Transport: plaintext unless :class:`ServerOptions` carries a
:class:`~redlist.node.tls.ServerTLS` (TLS, or mutual TLS with client
certificates). With other towns' CAs (``ServerTLS.peer_ca``) their nodes'
certificates are accepted too, and :class:`~redlist.node.peers.PeerInterceptor`
decides what they may call (``ServerOptions.peer_names``); the node's own calls to
other towns go through :func:`~redlist.node.peers.open_peer_channel` with
``ServerOptions.peer_tls``. Every call first passes admission (:mod:`redlist.node.admission`):
the limits on concurrent calls and open streams, in all and per client, which
with ``max_message_bytes`` give the node its memory ceiling, and the per-client
rate limits of calls and request bytes (:mod:`redlist.node.ratelimit`) when
configured.
Every service of the node, health and reflection included, is on the one
listener: nothing served changes how the node behaves except ``Submit``, whose
entries carry their own authority (signatures the ledger rules check), so no
call needs a separate administrative listener (see docs/threat-model.md).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from redlist.ledger import native
from redlist.ledger.errors import FormatError, RedlistError
from redlist.ledger.log import Log
from redlist.ledger.sigschedule import SignatureScheduler
from redlist.ledger.sigworkers import Stopped
from redlist.node.accountcheck import RegisterCheck
from redlist.node.admission import AdmissionInterceptor
from redlist.node.batcher import Batcher, CommitReport, TreeWatch
from redlist.node.config import (
    DEFAULT_GRACE_SECONDS,
    ServeSettings,
    parse_address,
)
from redlist.node.cosigning import Cosigner
from redlist.node.metrics import NodeMetrics
from redlist.node.mirror import Follower
from redlist.node.peers import PeerInterceptor, PeerPolicy, check_peer_address
from redlist.node.ratelimit import RateLimiter
from redlist.node.readers import ReadAuthority
from redlist.node.recognised import RecognisedGrades
from redlist.node.review import ReviewQueue
from redlist.node.serveroptions import ServerOptions
from redlist.node.servicer import LedgerServicer
from redlist.node.texts import NodeTexts
from redlist.node.tls import (
    is_loopback,
    load_peer_material,
    load_server_material,
)
from redlist.node.undecodable import UndecodableRequestInterceptor
from redlist.node.witness import WITNESS_SERVICE, Witness, WitnessServicer
from redlist.node.witness import health_service as witness_health_service
from redlist.v1 import ledger_pb2, ledger_pb2_grpc

logger = logging.getLogger(__name__)

LEDGER_SERVICE = ledger_pb2.DESCRIPTOR.services_by_name["Ledger"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
#: The health service name of the node's writes: SERVING while it takes entries,
#: NOT_SERVING once it has stopped taking them until a restart (a commit the disk
#: failed, a damaged state record), while the reads (``LEDGER_SERVICE``) go on.
WRITES_HEALTH_SERVICE = f"{LEDGER_SERVICE}/Submit"


class NodeServer:
    """A running gRPC server for one log. Make one with :meth:`start`."""

    def __init__(
        self,
        *,
        server: aio.Server,
        address: str,
        port: int,
        batcher: Batcher | None,
        watch: TreeWatch,
        health_servicer: health.aio.HealthServicer,
        reads: ThreadPoolExecutor,
        cosigner: Cosigner | None = None,
        recognised: RecognisedGrades | None = None,
        follower: Follower | None = None,
        review: ReviewQueue | None = None,
    ) -> None:
        self._server = server
        self._review = review
        self._recognised = recognised
        self._cosigner = cosigner
        self._follower = follower
        self.address = address
        self.port = port
        self._batcher = batcher
        self._watch = watch
        self._health = health_servicer
        self._reads = reads
        self._stop_task: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        log: Log,
        listen: str,
        options: ServerOptions | None = None,
        metrics: NodeMetrics | None = None,
        witness: Witness | None = None,
        follower: Follower | None = None,
    ) -> NodeServer:
        """Serve ``log`` on ``listen`` (``HOST:PORT``; port 0 picks a free one).

        With ``witness``, also serve ``redlist.v1.Witness`` for the logs it is
        configured for (the caller owns its store, as it owns the log).

        With ``follower``, serve a mirror: ``log`` is the read view of the mirror's
        copy, Submit is refused, the follower runs (on its own thread) while the node
        serves and tells Follow streams when the copy grew; a split view it finds turns
        health NOT_SERVING. The caller owns the follower's mirror and channel.
        """
        options = options or ServerOptions()
        host, _ = parse_address(listen, "listen")
        # Read and check the TLS files first: a wrong file stops the start in words.
        material = load_server_material(options.tls) if options.tls is not None else None
        peers = load_peer_material(options.peer_tls) if options.peer_tls is not None else None
        for asked in options.ask_witness:
            check_peer_address(asked.address, peers, "--ask-witness")
        policy = None
        if material is not None and material.peer_authorities:
            policy = PeerPolicy(material.peer_authorities, options.peer_names)
        elif options.peer_names:
            raise FormatError(
                "peer names are checked in other towns' certificates, which needs TLS with "
                "their CAs (--tls-cert, --tls-key and --peer-ca)"
            )
        reads = ThreadPoolExecutor(
            max_workers=options.read_workers, thread_name_prefix="redlist-read"
        )
        loop = asyncio.get_running_loop()
        size = await loop.run_in_executor(reads, lambda: log.size)
        watch = TreeWatch(size)
        if metrics is not None:
            metrics.tree_size.set(size)
            metrics.watch_id_filters(lambda: log.id_filter_bytes)

        def on_commit(report: CommitReport) -> None:
            # Sizes, not seq counts, say what was appended: exact even when commits
            # overlap and when a batch only resubmits stored entries.
            appended = max(0, report.tree_size - watch.size)
            watch.publish(report.tree_size)
            if metrics is not None:
                metrics.observe_commit(
                    appended=appended,
                    batches=report.batches,
                    seconds=report.seconds,
                    size=watch.size,
                )

        batcher = None
        if follower is None:
            batcher = Batcher(
                log, max_group=options.max_group, depth=options.commit_depth, on_commit=on_commit
            )
        admission = AdmissionInterceptor(
            options.call_limits,
            calls=None if options.rate_limit is None else RateLimiter(options.rate_limit),
            request_bytes=(
                None if options.rate_limit_bytes is None else RateLimiter(options.rate_limit_bytes)
            ),
        )
        # Admission outermost: it decides before the request is read. The other is
        # innermost, so its handlers stay the same objects and are wrapped once.
        interceptors: list[aio.ServerInterceptor] = [admission, UndecodableRequestInterceptor()]
        if policy is not None:  # after admission: a refused peer is still within the limits
            interceptors.insert(1, PeerInterceptor(policy, metrics))
        server = aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", options.max_message_bytes),
                ("grpc.max_send_message_length", options.max_message_bytes),
                # Two nodes on one port would split the clients between two logs.
                ("grpc.so_reuseport", 0),
                # Without bandwidth-delay probing the receive window stays at gRPC's
                # default rather than growing with the connection, so gRPC does not
                # read ahead megabytes of a request it will refuse as too large
                # (measured: 30 requests of 60 MiB, 4 MiB allowed, peaked at 290 MB
                # with probing, 56 MB without; ingest throughput unchanged).
                ("grpc.http2.bdp_probe", 0),
            ],
        )
        cosigner = None
        if options.ask_witness:
            cosigner = Cosigner(
                log,
                options.ask_witness,
                watch,
                reads,
                log.data_dir,
                interval=options.cosign_interval,
                peer_tls=peers,
            )
        # A mirror serves another town's log: this town's recognitions are not its, and
        # it receives leaves only, never the texts (they stay with the town).
        recognised = None if follower is not None else RecognisedGrades(log.data_dir)
        health_servicer = health.aio.HealthServicer()

        async def writes_stopped(reason: str) -> None:
            if metrics is not None:
                metrics.writes_stopped.labels(reason=reason).set(1)
            await health_servicer.set(
                WRITES_HEALTH_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING
            )

        texts = None
        review = None
        if follower is None:
            review = ReviewQueue(log.data_dir, log, options.review)
            if metrics is not None:
                metrics.review_pending.set(await loop.run_in_executor(reads, review.pending_count))
            texts = NodeTexts(log.data_dir, log)
            orphans = await loop.run_in_executor(reads, texts.clean_orphans)
            if orphans:
                logger.info("removed texts of entries never appended count=%d", orphans)
        ledger_pb2_grpc.add_LedgerServicer_to_server(
            LedgerServicer(
                log,
                batcher,
                watch,
                reads,
                limits=options.limits(),
                metrics=metrics,
                served=follower.served
                if follower is not None
                else None
                if cosigner is None
                else cosigner.served,
                recognised=recognised,
                submit_refusal=None if follower is None else follower.submit_refusal,
                writes_stopped=writes_stopped,
                texts=texts,
                readers=ReadAuthority(log.staff_key, policy),
                review=review,
                register=None if follower is not None else RegisterCheck(log.data_dir),
            ),
            server,
        )
        services = [LEDGER_SERVICE]
        if witness is not None:
            ledger_pb2_grpc.add_WitnessServicer_to_server(WitnessServicer(witness, reads), server)
            services.append(WITNESS_SERVICE)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        try:
            if material is None:
                port = server.add_insecure_port(listen)
            else:
                port = server.add_secure_port(listen, material.credentials())
        except RuntimeError as error:
            reads.shutdown()
            raise RedlistError(f"cannot listen on {listen}: {error}") from None
        if port == 0:  # older gRPC reports a failed bind this way
            reads.shutdown()
            raise RedlistError(f"cannot listen on {listen}: the address is in use or not local")
        if cosigner is not None:
            await cosigner.start()  # before serving: a kept cosigned checkpoint is served at once
        await server.start()
        if batcher is not None:
            batcher.start()
        # A mirror takes no entries: it has no writes' health to report.
        writes = () if batcher is None else (WRITES_HEALTH_SERVICE,)
        for service in ("", *services, *writes):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        if follower is not None:
            await _run_follower(follower, watch, health_servicer, services)
        if witness is not None:
            await _watch_witness(witness, health_servicer, metrics)
        node = cls(
            server=server,
            address=f"{host}:{port}",
            port=port,
            batcher=batcher,
            watch=watch,
            health_servicer=health_servicer,
            reads=reads,
            cosigner=cosigner,
            recognised=recognised,
            follower=follower,
            review=review,
        )
        transport = "plaintext" if options.tls is None else options.tls.mode
        logger.info(
            "serving origin=%s size=%d address=%s transport=%s limits=%s rate_limit=%s "
            "rate_limit_bytes=%s memory_ceiling_mib=%d core=%s",
            log.origin,
            size,
            node.address,
            transport,
            options.call_limits.describe(),
            "off" if options.rate_limit is None else options.rate_limit.describe(),
            "off"
            if options.rate_limit_bytes is None
            else options.rate_limit_bytes.describe("bytes"),
            options.memory_ceiling() >> 20,
            # Whether the core's hot modules run compiled (docs/adr/0057).
            "compiled" if native.compiled_modules() else "sources",
        )
        if witness is not None:
            logger.info(
                "witnessing key=%s logs=%s",
                witness.config.verifier_key(),
                ",".join(sorted(witness.config.logs)),
            )
        for asked in options.ask_witness:
            logger.info("asking witness address=%s key=%s", asked.address, asked.key.encode())
        if policy is not None:
            logger.info(
                "other towns' nodes accepted cas=%s names=%s",
                ";".join(ca.subject.rfc4514_string() for ca in policy.authorities),
                ",".join(sorted(policy.names)) or "any",
            )
        if peers is not None:
            logger.info(
                "reaching other towns' nodes over tls certificate=%s", peers.subject or "none"
            )
        if material is not None:
            logger.info(
                "tls certificate subject=%s expires=%s",
                material.subject,
                material.not_after.isoformat(),
            )
        elif not is_loopback(host):
            logger.warning(
                "serving without TLS on %s, which other machines can reach: anyone on the "
                "way can read account queries and pose as this node; give --tls-cert and "
                "--tls-key unless a TLS proxy sits in front",
                node.address,
            )
        return node

    @property
    def tree_size(self) -> int:
        """The log's size as of the last commit this server made."""
        return self._watch.size

    async def stop(self, grace: float | None = DEFAULT_GRACE_SECONDS) -> None:
        """Shut down gracefully (see the module docstring); safe to call more than once."""
        if self._stop_task is None:
            self._stop_task = asyncio.create_task(self._stop(grace))
        await asyncio.shield(self._stop_task)

    async def _stop(self, grace: float | None) -> None:
        logger.info("draining grace_seconds=%s", grace)
        await self._health.enter_graceful_shutdown()
        if self._follower is not None:
            await asyncio.to_thread(self._follower.stop)  # a commit under way finishes
        self._watch.close()
        if self._cosigner is not None:
            await self._cosigner.close()
        await self._server.stop(grace)
        if self._batcher is not None:
            await self._batcher.close()
        await asyncio.to_thread(self._reads.shutdown, True)
        if self._recognised is not None:
            self._recognised.close()
        if self._review is not None:
            self._review.close()
        logger.info("stopped")


async def _run_follower(
    follower: Follower,
    watch: TreeWatch,
    health_servicer: health.aio.HealthServicer,
    services: list[str],
) -> None:
    """Start ``follower``: its commits wake Follow streams, its alarm turns health off."""
    loop = asyncio.get_running_loop()

    async def not_serving() -> None:
        for service in ("", *services):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)

    def on_alarm(message: str) -> None:
        asyncio.run_coroutine_threadsafe(not_serving(), loop)

    def on_commit(size: int) -> None:
        # A new size, or new cosignature lines at the same size: Follow streams wake.
        loop.call_soon_threadsafe(_grown_or_touched, watch, size)

    follower.attach(on_commit, on_alarm)
    if follower.alarm is not None:
        await not_serving()
    else:
        follower.start()


async def _watch_witness(
    witness: Witness, health_servicer: health.aio.HealthServicer, metrics: NodeMetrics | None
) -> None:
    """A health service per witnessed log (``witness.health_service``) and the metric,
    both showing its alarm; a split view found later turns them (from the read pool)."""
    loop = asyncio.get_running_loop()

    async def show(origin: str) -> None:
        alarmed = origin in witness.alarmed
        if metrics is not None:
            metrics.witness_split_view.labels(origin).set(1 if alarmed else 0)
        status = health_pb2.HealthCheckResponse.NOT_SERVING if alarmed else SERVING
        await health_servicer.set(witness_health_service(origin), status)

    def on_alarm(origin: str) -> None:
        asyncio.run_coroutine_threadsafe(show(origin), loop)

    witness.attach(on_alarm)
    for origin in sorted(witness.config.logs):
        await show(origin)


async def serve_until_signalled(
    log: Log,
    settings: ServeSettings,
    out: TextIO = sys.stdout,
    witness: Witness | None = None,
    workers: SignatureScheduler | None = None,
) -> None:
    """Serve ``log`` until SIGTERM or SIGINT, then shut down gracefully.

    Prints the address (with the real port when 0 was asked for) once serving, so
    scripts and tests can read it: ``serving log <origin> (<n> entries) on HOST:PORT``.
    ``workers``: the log's signature workers, for the metrics and the node's log.
    """
    metrics = NodeMetrics()
    if workers is not None:
        _watch_signature_workers(workers, metrics)
    node = await NodeServer.start(
        log, settings.listen, ServerOptions.from_settings(settings), metrics, witness
    )
    try:
        if settings.metrics is not None:
            host, port = parse_address(settings.metrics, "metrics")
            bound = metrics.serve_http(host, port)
            print(f"metrics on http://{host}:{bound}/metrics", file=out, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # One write, end of line included: under ``python -u`` print() writes the line
        # and its end apart, and a log record from another thread can land between them
        # where output and log share a file, hiding the line from a script reading it.
        out.write(f"serving log {log.origin} ({node.tree_size} entries) on {node.address}\n")
        out.flush()
        # What start-up made (modules, the server, the log's caches: hundreds of
        # thousands of objects) lives as long as the node: left out of the garbage
        # collector's passes, which otherwise walk all of it again and again while
        # entries are ingested (ADR 0045). Start-up's own garbage is freed first: a
        # frozen cycle is never collected. The thresholds stay (docs/reliability.md).
        gc.collect()
        gc.freeze()
        await stop.wait()
        logger.info("signal received, shutting down")
    finally:
        gc.unfreeze()
        await node.stop(settings.grace_seconds)
        metrics.stop_http()


def _watch_signature_workers(workers: SignatureScheduler, metrics: NodeMetrics) -> None:
    """Count the signature workers in the metrics; say in the log when one is replaced."""

    def running() -> int:
        figures = workers.worker_processes()
        return 0 if figures is None else figures.running

    def replaced(stopped: Stopped) -> None:
        metrics.signature_worker_replacements.inc()
        status = stopped.status
        if stopped.by_pool:
            how = "hung, stayed silent or answered out of step, and was stopped"
        elif status is None:
            how = "could not be started"
        elif status < 0:
            how = f"was killed by signal {-status}"
        else:
            how = f"exited with status {status}"
        logger.warning("a signature worker %s; another is started in its place", how)

    metrics.watch_signature_workers(running)
    workers.on_worker_replaced(replaced)


def _grown_or_touched(watch: TreeWatch, size: int) -> None:
    if size > watch.size:
        watch.publish(size)
    else:
        watch.touch()
