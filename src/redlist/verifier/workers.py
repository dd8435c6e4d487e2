"""Worker processes that verify entry signatures for the auditor.

Ed25519 verification is what limits an audit (DESIGN 6). The crypto library
releases the GIL, so threads can verify in parallel, but every call still needs
the GIL for a moment before and after the C code: while the auditor's own thread
runs the points semantics, a verifying thread waits up to the interpreter's switch
interval (5 ms by default) for each signature it finishes. Processes have a GIL
each and never wait for the auditor.

``VerifyPool`` keeps a few worker processes, each on one end of a pipe. ``submit``
splits a list of ``(public key, body, signature)`` triples between them and sends
each share as one msgpack message; it returns at once. ``Pending.result`` reads the
worker's answer (one byte per triple) when it is needed. Only the auditor's thread
touches the pipes: no helper thread competes with it for the GIL, unlike
``concurrent.futures.ProcessPoolExecutor``.

Robustness:

* spawn start method (safe beside threads, same on every platform); the workers
  import only this module and ``redlist.ledger.crypto``;
* bounded memory: a worker holds one message at a time, the auditor sends a chunk
  only once the chunk before it is being checked;
* a worker that dies or cannot be started never decides an outcome: the triples
  of a share whose answer does not come are verified in the calling thread;
* ``close`` closes the pipes (the workers then exit on their own) and waits for
  them; a worker still running after a short wait is terminated. The workers
  ignore SIGINT, so Ctrl-C reaches only the auditor.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import msgpack

from redlist.ledger import crypto

#: (public key, body, signature), as ``crypto.verify_entry`` takes them.
Triple = tuple[bytes, bytes, bytes]

#: Seconds ``close`` waits for a worker to exit before terminating it.
_EXIT_WAIT = 5.0
_VALID = 1


class Pending:
    """The answer of one worker for one share of triples, read when asked for."""

    def __init__(self, pool: VerifyPool, worker: int, number: int, triples: Sequence[Triple]):
        self._pool = pool
        self._worker = worker
        self._number = number
        self._triples = triples

    def result(self) -> list[bool]:
        """Whether each triple of the share verified, in order."""
        answer = self._pool._answer(self._worker, self._number)
        if answer is None or len(answer) != len(self._triples):
            return _verify_here(self._triples)
        return [byte == _VALID for byte in answer]


class _Worker:
    def __init__(self, process: BaseProcess, connection: Connection) -> None:
        self.process = process
        self.connection = connection
        self.sent = 0
        self.received = 0
        #: Answers read ahead of the one asked for, by message number.
        self.answers: dict[int, bytes | None] = {}
        self.broken = False


class VerifyPool:
    """``processes`` worker processes verifying entry signatures; see the module docstring.

    Use from one thread only. Use as a context manager, or call ``close``.
    """

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("a verify pool needs at least one process")
        context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        try:
            for number in range(processes):
                ours, theirs = context.Pipe(duplex=True)
                process = context.Process(
                    target=_serve,
                    args=(theirs,),
                    name=f"redlist-verify-{number}",
                    daemon=True,
                )
                process.start()
                theirs.close()
                self._workers.append(_Worker(process, ours))
        except BaseException:
            self.close()
            raise

    @property
    def processes(self) -> int:
        return len(self._workers)

    def __enter__(self) -> VerifyPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(self, triples: Sequence[Triple]) -> list[Pending]:
        """Send ``triples`` to the workers in shares; one ``Pending`` per share, in order."""
        if not triples:
            return []
        share = -(-len(triples) // len(self._workers))
        pending: list[Pending] = []
        for worker_number, begin in enumerate(range(0, len(triples), share)):
            part = triples[begin : begin + share]
            pending.append(Pending(self, worker_number, self._send(worker_number, part), part))
        return pending

    def close(self) -> None:
        """Stop the workers (closing their pipes) and wait for them to exit."""
        workers, self._workers = self._workers, []
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.connection.close()
        for worker in workers:
            worker.process.join(_EXIT_WAIT)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(_EXIT_WAIT)

    def _send(self, worker_number: int, triples: Sequence[Triple]) -> int:
        worker = self._workers[worker_number]
        number = worker.sent
        worker.sent += 1
        if worker.broken:
            worker.answers[number] = None
            return number
        try:
            worker.connection.send_bytes(msgpack.packb(triples, use_bin_type=True))
        except (OSError, ValueError):  # the worker is gone: its shares are verified here
            worker.broken = True
            worker.answers[number] = None
        return number

    def _answer(self, worker_number: int, number: int) -> bytes | None:
        if worker_number >= len(self._workers):
            return None  # the pool was closed
        worker = self._workers[worker_number]
        while number not in worker.answers and not worker.broken:
            try:
                answer: bytes | None = worker.connection.recv_bytes()
            except (EOFError, OSError):
                worker.broken = True
                break
            worker.answers[worker.received] = answer
            worker.received += 1
        return worker.answers.pop(number, None)


def _verify_here(triples: Sequence[Triple]) -> list[bool]:
    verify = crypto.verify_entry
    return [verify(public, body, signature) for public, body, signature in triples]


def _serve(connection: Connection) -> None:
    """A worker's loop: verify each message's triples, answer one byte each; exit on EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    verify = crypto.verify_entry
    while True:
        try:
            message = connection.recv_bytes()
        except (EOFError, OSError):
            return
        triples = msgpack.unpackb(message, raw=False)
        answer = bytes(verify(public, body, signature) for public, body, signature in triples)
        try:
            connection.send_bytes(answer)
        except OSError:
            return


__all__ = ["Pending", "Triple", "VerifyPool"]
