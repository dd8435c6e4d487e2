"""Prometheus metrics of a serving node, and the optional ``/metrics`` HTTP endpoint.

Each :class:`NodeMetrics` has its own registry, so several nodes (or tests) in
one process never collide. The figures are always kept (they cost a few
increments per commit); they are exposed over HTTP only when ``serve`` is given
``--metrics HOST:PORT``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Commit latency is dominated by signature checks (~50 us each) and one fsync.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Exposed:
    """A registry of figures, and the optional HTTP endpoint that exposes it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._http: WSGIServer | None = None
        self._http_thread: threading.Thread | None = None

    def serve_http(self, host: str, port: int) -> int:
        """Expose ``/metrics`` on ``host:port`` (0: any free port); return the bound port."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._http, self._http_thread = server, thread
        return int(server.server_port)

    def stop_http(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join(timeout=5)
            self._http_thread = None


class NodeMetrics(_Exposed):
    """Counters, a latency histogram and the tree size of one node."""

    def __init__(self) -> None:
        super().__init__()
        self.entries = Counter(
            "redlist_entries_appended",
            "Entries appended to the log (resubmissions of stored entries not counted).",
            registry=self.registry,
        )
        self.commits = Counter(
            "redlist_commits",
            "Durable write transactions (each holds one or more Submit batches).",
            registry=self.registry,
        )
        self.batches = Counter(
            "redlist_batches",
            "Submit batches answered, by outcome (committed or refused).",
            ["outcome"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "redlist_refusals",
            "Submit batches refused, by gRPC status and broken check.",
            ["code", "check"],
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "redlist_commit_seconds",
            "Time of one shared commit: decoding, signature checks, rules, durable write.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.peer_refusals = Counter(
            "redlist_peer_refusals",
            "Calls refused by the peer policy (redlist.node.peers), by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.writes_stopped = Gauge(
            "redlist_writes_stopped",
            "1 once the node has stopped taking entries until restarted, by reason: disk "
            "(a commit the disk failed; never retried) or damage (a damaged state record).",
            ["reason"],
            registry=self.registry,
        )
        self.tree_size = Gauge(
            "redlist_tree_size",
            "Entries in the log (its Merkle tree size).",
            registry=self.registry,
        )
        self.review_pending = Gauge(
            "redlist_review_pending",
            "Proposals waiting in the review queue for council signatures.",
            registry=self.registry,
        )
        self.witness_split_view = Gauge(
            "redlist_witness_split_view",
            "1 when this node's witness holds split-view evidence of a log it witnesses.",
            ["origin"],
            registry=self.registry,
        )
        self.signature_workers = Gauge(
            "redlist_signature_workers",
            "Signature-verifying worker processes running (0 on one core: the node's own "
            "threads verify).",
            registry=self.registry,
        )
        self.id_filter_bytes = Gauge(
            "redlist_id_filter_bytes",
            "Memory the entry-id index's filters take (at most 32 MiB; ADR 0056).",
            registry=self.registry,
        )
        self.signature_worker_replacements = Counter(
            "redlist_signature_worker_replacements",
            "Signature worker processes started in place of ones that stopped.",
            registry=self.registry,
        )

    def observe_commit(self, *, appended: int, batches: int, seconds: float, size: int) -> None:
        """One durable commit of ``batches`` Submit batches adding ``appended`` entries."""
        self.commits.inc()
        self.entries.inc(appended)
        self.batches.labels(outcome="committed").inc(batches)
        self.commit_seconds.observe(seconds)
        self.tree_size.set(size)

    def watch_signature_workers(self, running: Callable[[], int]) -> None:
        """Read the number of running signature workers from ``running`` when asked."""
        self.signature_workers.set_function(running)

    def watch_id_filters(self, memory: Callable[[], int]) -> None:
        """Read the bytes the entry-id index's filters take from ``memory`` when asked."""
        self.id_filter_bytes.set_function(memory)

    def observe_refusal(self, *, code: str, check: str) -> None:
        self.batches.labels(outcome="refused").inc()
        self.refusals.labels(code=code, check=check).inc()


class MirrorMetrics(_Exposed):
    """The figures of ``redlist-node mirror``, one series per mirrored log (``origin``)."""

    def __init__(self) -> None:
        super().__init__()
        self.tree_size = Gauge(
            "redlist_mirror_tree_size",
            "Entries the mirror holds, verified and durably stored, per mirrored log.",
            ["origin"],
            registry=self.registry,
        )
        self.entries = Counter(
            "redlist_mirror_entries",
            "Entries the mirror verified and stored, per mirrored log.",
            ["origin"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "redlist_mirror_refusals",
            "Leaves and checkpoints refused from the primary, by broken check.",
            ["origin", "check"],
            registry=self.registry,
        )
        self.alarm = Gauge(
            "redlist_mirror_split_view",
            "1 when the mirror holds split-view evidence of the log and stopped following it.",
            ["origin"],
            registry=self.registry,
        )
        self.primary_answering = Gauge(
            "redlist_mirror_primary_answering",
            "1 while the primary answers the mirror (its last call or stream worked), 0 "
            "while it cannot be reached or does not answer in time.",
            ["origin"],
            registry=self.registry,
        )
