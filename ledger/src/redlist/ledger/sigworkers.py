"""Worker processes that verify entry signatures (``sigschedule`` schedules work on them).

Ed25519 verification is what limits an audit (DESIGN 6). The crypto library
releases the GIL, so threads can verify in parallel, but every call still needs
the GIL for a moment before and after the C code: while the auditor's own thread
runs the points semantics, a verifying thread waits for it, up to the
interpreter's switch interval (5 ms by default) for each signature it finishes.
A process has a GIL of its own and never waits for the auditor.

``VerifyPool`` runs a few workers, each a ``python -m redlist.ledger.sigworkers``
child talking over its stdin and stdout. ``submit`` splits a list of
``(public key, body, signature)`` triples between them and writes each share as
one length-prefixed msgpack message; ``Pending.result`` reads that worker's answer
(one byte per triple) when it is needed. Only the threads that call the pool
touch the pipes: the pool starts no helper thread of its own, unlike
``concurrent.futures.ProcessPoolExecutor``; and a plain child process needs
neither pickling nor a ``__main__`` guard in the program that uses the pool.

Robustness:

* a worker that cannot be started, dies, or answers nonsense never decides an
  outcome: the triples it was given are verified in the calling thread instead;
* bounded memory: a worker holds one message at a time, and a writer blocks while
  a worker's pipe is full;
* ``close`` closes the workers' stdin (they exit on end of input) and waits for
  them; one still running after a short wait is killed. The workers ignore
  SIGINT, so Ctrl-C in a terminal reaches only the program that started them.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import msgpack

from redlist.ledger import crypto

#: The interpreter's thread switch interval (seconds) that ``tune_interpreter`` sets.
VERIFY_SWITCH_INTERVAL_S = 0.0005
#: The garbage collector's thresholds that ``tune_interpreter`` sets.
GC_THRESHOLDS = (50_000, 20, 100)


#: (public key, body, signature), as ``crypto.verify_entry`` takes them.
Triple = tuple[bytes, bytes, bytes]

#: Seconds ``close`` waits for a worker to exit before killing it.
_EXIT_WAIT = 5.0
#: Every message and answer is preceded by its length, 4 bytes big-endian.
_LENGTH = struct.Struct(">I")
#: An answer starts with the number of the message it answers (4 bytes big-endian),
#: then has one byte per triple: 1 verified, 0 not.
_NUMBER = struct.Struct(">I")
_VALID = 1
_OUTCOMES = b"\x00\x01"
#: What a worker says first, once it has started and can verify.
_HELLO = b"redlist-verify/1"


class Pending:
    """One worker's answer for one share of triples, read when asked for."""

    def __init__(self, worker: _Worker, number: int, triples: Sequence[Triple]) -> None:
        self._worker = worker
        self._number = number
        self._triples = triples

    def result(self) -> list[bool]:
        """Whether each triple of the share verified, in order."""
        answer = self._worker.answer(self._number)
        if answer is None or len(answer) != len(self._triples):
            return verify_here(self._triples)
        return [byte == _VALID for byte in answer]


class _Worker:
    """One child process; messages are numbered in the order they are written.

    Writing (``send``) and reading (``answer``) each take their own lock, so one
    thread can queue the next message while another waits for an answer.
    """

    def __init__(self, process: subprocess.Popen[bytes] | None) -> None:
        self.process = process
        self.sent = 0
        self.received = 0
        #: Answers read before they were asked for, by message number.
        self.early: dict[int, bytes] = {}
        self.broken = process is None
        self.started = False
        self.sending = threading.Lock()
        self.receiving = threading.Lock()

    def poll_started(self) -> bool:
        """Whether the worker has said hello (or will never): never blocks for long."""
        if self.started or self.broken or self.process is None or self.process.stdout is None:
            return True
        try:
            readable, _, _ = select.select([self.process.stdout], [], [], 0)
        except (OSError, ValueError):  # pipes cannot be polled here: wait when reading
            return True
        if readable:
            with self.receiving:
                self._await_hello()
        return self.started or self.broken

    def _await_hello(self) -> None:
        if not self.started:
            self.started = True
            if self._read() != _HELLO:
                self.broken = True

    def send(self, triples: Sequence[Triple]) -> int:
        message = msgpack.packb(triples, use_bin_type=True)
        with self.sending:
            number = self.sent
            self.sent += 1
            if self.broken or self.process is None or self.process.stdin is None:
                return number
            try:
                self.process.stdin.write(_LENGTH.pack(len(message)) + message)
                self.process.stdin.flush()
            except (OSError, ValueError):  # gone: this share is verified by the caller
                self.broken = True
            return number

    def answer(self, number: int) -> bytes | None:
        """The answer to message ``number``, or None when it will never come."""
        with self.receiving:
            while number not in self.early and not self.broken:
                outcomes = self._read_outcomes()
                if outcomes is None:
                    self.broken = True
                    break
                self.early[self.received] = outcomes
                self.received += 1
            return self.early.pop(number, None)

    def _read_outcomes(self) -> bytes | None:
        """The outcomes of the next answer; None unless it is exactly that.

        Anything else means the worker cannot be trusted to be in step any more:
        whatever it has not answered is then verified by the caller.
        """
        self._await_hello()
        if self.broken:
            return None
        answer = self._read()
        if answer is None or len(answer) < _NUMBER.size:
            return None
        if _NUMBER.unpack_from(answer)[0] != self.received:
            return None
        outcomes = answer[_NUMBER.size :]
        return None if outcomes.translate(None, _OUTCOMES) else outcomes

    def _read(self) -> bytes | None:
        if self.process is None or self.process.stdout is None:
            return None
        try:
            return _read_message(self.process.stdout)
        except (OSError, ValueError):
            return None

    def hang_up(self) -> subprocess.Popen[bytes] | None:
        """Close the worker's pipes (it exits at the end of its input); its process,
        for ``reap``."""
        self.broken = True
        process, self.process = self.process, None
        if process is None:
            return None
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                # A worker that is gone already leaves nothing to flush.
                with contextlib.suppress(OSError):
                    stream.close()
        return process

    @staticmethod
    def reap(process: subprocess.Popen[bytes] | None) -> None:
        """Wait for a hung-up worker to exit; kill one that does not, soon."""
        if process is None:
            return
        try:
            process.wait(_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class VerifyPool:
    """``processes`` worker processes verifying entry signatures; see the module docstring.

    The workers start at once and ready themselves while the caller goes on. Every
    method may be called from several threads at once: a worker takes messages in
    the order they were written and each answer finds its ``Pending``, so two
    threads can each keep a share in flight. Use as a context manager, or call
    ``close``.
    """

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("a verify pool needs at least one process")
        self._workers = [_Worker(_start_worker()) for _ in range(processes)]

    def verify(self, triples: Sequence[Triple]) -> list[bool]:
        """Whether each triple verified, in order; blocks until all are known.

        After ``close`` the calling thread verifies them itself.
        """
        if not self._workers:
            return verify_here(triples)
        return [ok for pending in self.submit(triples) for ok in pending.result()]

    @property
    def processes(self) -> int:
        return len(self._workers)

    def started(self) -> bool:
        """Whether every worker has started (or failed to); never waits.

        Starting takes a fraction of a second; a caller with work to do meanwhile
        can do it elsewhere until this says the pool is ready.
        """
        return all([worker.poll_started() for worker in self._workers])

    def wait_started(self, timeout: float = _EXIT_WAIT) -> bool:
        """Wait (at most ``timeout`` seconds) until ``started``; whether it is so."""
        deadline = time.monotonic() + timeout
        while not self.started():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def __enter__(self) -> VerifyPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(self, triples: Sequence[Triple]) -> list[Pending]:
        """Send ``triples`` to the workers in shares; one ``Pending`` per share, in order."""
        workers = self._workers
        if not workers:
            raise ValueError("the verify pool is closed")
        if not triples:
            return []
        share = -(-len(triples) // len(workers))
        pending: list[Pending] = []
        for worker, begin in zip(workers, range(0, len(triples), share), strict=False):
            part = triples[begin : begin + share]
            pending.append(Pending(worker, worker.send(part), part))
        return pending

    def close(self) -> None:
        """Stop the workers and wait for them to exit (a share still in flight is then
        verified by the thread waiting for it)."""
        workers, self._workers = self._workers, []
        # Every worker is told first, so they all exit at once.
        for process in [worker.hang_up() for worker in workers]:
            _Worker.reap(process)


#: A pool started ahead of the scheduler that will use it (``start_early``).
_early: VerifyPool | None = None
_early_lock = threading.Lock()


def start_early(processes: int | None = None) -> bool:
    """Start the workers now, for the next ``take_early`` (``SignatureScheduler``).

    A command that will verify a long log calls this before it loads its own
    modules: a worker's interpreter takes a few hundredths of a second to start, and
    it then starts on the core the command's imports leave idle. Whether workers
    were started (not on one core). Unused workers are stopped at exit.
    """
    global _early
    count = processes or available_cores()
    if count < 2:
        return False
    with _early_lock:
        if _early is None:
            _early = VerifyPool(count)
            atexit.register(_stop_early)
    return True


def take_early(processes: int) -> VerifyPool | None:
    """The pool ``start_early`` started, if it has ``processes`` workers (it is then
    the caller's); a pool of another size is stopped. None when there is none."""
    pool = _take_any_early()
    if pool is not None and pool.processes != processes:
        pool.close()
        return None
    return pool


def _stop_early() -> None:
    pool = _take_any_early()
    if pool is not None:
        pool.close()


def _take_any_early() -> VerifyPool | None:
    global _early
    with _early_lock:
        pool, _early = _early, None
    return pool


def tune_interpreter() -> None:
    """Process-wide interpreter settings for a program that verifies many entries.

    Called by the commands that do (``redlist-node serve``, ``redlist-verify``) and by
    the benchmarks, never by the library itself, since both settings hold for the
    whole process:

    * the thread switch interval, ``VERIFY_SWITCH_INTERVAL_S``. Verification
      releases the GIL, but a thread re-takes it after every signature; while another
      thread runs Python (the points semantics, the gRPC server) it waits up to the
      switch interval, 5 ms by default, leaving a core idle for 5 ms per 50 us
      signature. At 0.5 ms threads verifying beside a busy thread scale across cores
      again, and the extra switching costs little;
    * the garbage collector's thresholds, ``GC_THRESHOLDS``. Every entry allocates
      a few dozen small objects, and the default (a young collection every 700
      allocations, full ones as the state grows) spends about a tenth of an audit's
      own time walking the millions of objects of a long log's state, none of which
      is ever garbage in a cycle.
    """
    sys.setswitchinterval(VERIFY_SWITCH_INTERVAL_S)
    gc.set_threshold(*GC_THRESHOLDS)


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on every platform
        return max(1, os.cpu_count() or 1)


def verify_here(triples: Sequence[Triple]) -> list[bool]:
    """Verify ``triples`` in the calling thread."""
    return [outcome == _VALID for outcome in crypto.verify_many(triples, crypto.ENTRY_DOMAIN)]


def _start_worker() -> subprocess.Popen[bytes] | None:
    """A new worker process, or None when none can be started (the caller verifies)."""
    environment = dict(os.environ)
    # The child imports redlist from where this process did: a source tree is put on
    # its path (an installed package is found anyway, and a site-packages directory
    # on PYTHONPATH would come before the standard library).
    source_root = Path(__file__).resolve().parents[2]
    if source_root.name not in ("site-packages", "dist-packages"):
        inherited = environment.get("PYTHONPATH")
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(source_root), *([inherited] if inherited else [])]
        )
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "redlist.ledger.sigworkers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
        )
    except (OSError, ValueError):
        return None


def _read_message(stream: IO[bytes]) -> bytes | None:
    """One length-prefixed message from ``stream``; None at end of input."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    message = stream.read(length)
    return message if len(message) == length else None


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """A worker's loop: verify each message's triples, answer one byte each, until EOF."""
    answers.write(_LENGTH.pack(len(_HELLO)) + _HELLO)
    answers.flush()
    number = 0
    while True:
        message = _read_message(requests)
        if message is None:
            return
        outcomes = crypto.verify_many(msgpack.unpackb(message, raw=False), crypto.ENTRY_DOMAIN)
        answer = _NUMBER.pack(number) + outcomes
        answers.write(_LENGTH.pack(len(answer)) + answer)
        answers.flush()
        number += 1


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # When the auditor stops listening there is no one left to answer.
    with contextlib.suppress(BrokenPipeError):
        serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()


__all__ = [
    "Pending",
    "Triple",
    "VerifyPool",
    "available_cores",
    "start_early",
    "take_early",
    "verify_here",
]
