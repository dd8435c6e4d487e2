"""Worker processes that verify entry signatures (``sigschedule`` schedules work on them).

Ed25519 verification is what limits an audit (DESIGN 6). The crypto library
releases the GIL, so threads can verify in parallel, but every call still needs
the GIL for a moment before and after the C code: while the auditor's own thread
runs the points semantics, a verifying thread waits for it, up to the
interpreter's switch interval (5 ms by default) for each signature it finishes.
A process has a GIL of its own and never waits for the auditor.

``VerifyPool`` runs a few workers, each a ``python -m redlist.ledger.sigchild``
child talking over its stdin and stdout. ``submit`` cuts a list of
``(public key, body, signature)`` triples into jobs of at most ``JOB_SIZE`` and
puts them on one queue; each worker has a thread of the pool that takes the next
job as soon as the worker is about to need it, writes it as one length-prefixed
msgpack message and reads the answer (one byte per triple), and ``Pending.result``
waits for that answer. So the worker that finishes first takes the next job: a
worker whose core the caller's own thread shares falls behind without holding up
the other, which a fixed share of every list would do (ADR 0052). A plain child
process needs neither pickling nor a ``__main__`` guard in the program that uses
the pool, unlike ``concurrent.futures.ProcessPoolExecutor``.

Robustness:

* a worker that cannot be started, dies, or answers nonsense never decides an
  outcome: the jobs it was given are verified by the threads waiting for them,
  and the other workers take the rest;
* a worker that stopped is replaced by a new one (a node runs for months, and a
  worker the kernel killed for memory would otherwise leave its core's share of
  the signatures to the node's own threads for good). The first replacement waits
  ``_REPLACE_PAUSE_S``; while replacements keep stopping within ``_PROVEN_S`` of
  their hello, each waits twice as long as the last, up to ``_REPLACE_PAUSE_MAX_S``:
  a worker that cannot run here (a broken installation) or that dies on every job
  costs a start a minute, not a start a job. With no worker running (all of them
  between a stop and their replacement), ``submit`` gives every job back to its
  caller at once, and so does the thread of the last one to stop;
* a worker that hangs (stopped, stuck in a read or a write, half an answer written)
  is killed once a thread waiting for a verdict has seen it make no progress for
  ``_STALL_S`` seconds twice over, and is then a worker that died: one only slow
  (the whole command stopped with Ctrl-Z and continued) answers between two looks.
  One that has not said hello ``_STALL_S`` seconds after its start is killed too;
* bounded memory: a worker holds one job and has at most ``_AHEAD`` written to
  it; the callers bound how many they queue (``sigschedule``'s chunks in flight,
  a node's batches);
* ``close`` gives the jobs not yet written back to their callers and stops the
  threads; each ends its worker's input once it has read every answer, and the
  worker exits. A worker that still holds its thread after a short wait (it hangs)
  is killed, which frees the thread. The workers ignore SIGINT, so Ctrl-C in a
  terminal reaches only the program that started them.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack

from redlist.ledger.cores import available_cores
from redlist.ledger.ed25519rule import ENTRY_DOMAIN, verify_many
from redlist.ledger.sigchild import HELLO, LENGTH, NUMBER, OUTCOMES, VALID, read_message

#: The nicest a process can be (POSIX ``nice``): it then runs only when no other would.
MOST_NICE = 19
#: The interpreter's thread switch interval (seconds) that ``tune_interpreter`` sets.
VERIFY_SWITCH_INTERVAL_S = 0.0005
#: The garbage collector's thresholds that ``tune_interpreter`` sets.
GC_THRESHOLDS = (50_000, 20, 100)


#: (public key, body, signature), as ``crypto.verify_entry`` takes them.
Triple = tuple[bytes, bytes, bytes]

#: Seconds ``close`` waits for a worker to exit before killing it.
_EXIT_WAIT = 5.0
#: Triples in one job: ``VerifyPool.submit`` cuts a list into jobs of at most this
#: many, which the workers take from one queue. Small enough that a worker that
#: finishes first takes more of a chunk than one that shares its core, large enough
#: that a job's message costs little beside its signatures (256 take about 14 ms).
JOB_SIZE = 256
#: Jobs written to a worker before its first answer is read: the next one is in its
#: pipe when it finishes the last, so it never waits for its feeding thread.
_AHEAD = 2
#: The longest message a worker may send: its hello, or an answer to a full job. A
#: length above it means the worker is out of step; nothing more is read from it.
_ANSWER_LIMIT = max(len(HELLO), NUMBER.size + JOB_SIZE)
#: Seconds a worker whose answer ended (it closed its output, or sent a length no
#: answer has) is given to exit on its own: then it died, else the pool stops it.
_EXITING_S = 1.0
#: Seconds before a stopped worker is replaced (see the module docstring) ...
_REPLACE_PAUSE_S = 0.05
#: ... twice as long for each further one that stops within this many seconds of its
#: hello (a worker that ran this long starts the row again) ...
_PROVEN_S = 30.0
#: ... and never longer than this.
_REPLACE_PAUSE_MAX_S = 60.0
#: Seconds between two looks, by a thread waiting for a verdict, at the workers
#: their threads wait on: one whose thread still waits on the same read or write at
#: the next look is killed. A job takes about 14 ms; only a hung worker takes this.
_STALL_S = 10.0


@dataclass(frozen=True)
class Stopped:
    """A worker that stopped and was replaced: its exit ``status`` (negative: the
    signal that killed it; None: it never started) and whether the pool ended it
    (``by_pool``: it hung, stayed silent or answered out of step)."""

    status: int | None
    by_pool: bool


def replacement_pause(last: float | None, greeted_at: float | None, now: float) -> float:
    """Seconds to wait before replacing a worker that stopped at ``now``: ``last`` is the
    pause before it was started (None: it was not a replacement), ``greeted_at`` when it
    said hello (None: never). The first of a row waits ``_REPLACE_PAUSE_S``; one that
    stopped within ``_PROVEN_S`` of its hello, or before it, makes the next wait twice
    as long, up to ``_REPLACE_PAUSE_MAX_S``; one that ran longer starts a new row."""
    proven = greeted_at is not None and now - greeted_at >= _PROVEN_S
    if last is None or proven:
        return _REPLACE_PAUSE_S
    return min(2 * last, _REPLACE_PAUSE_MAX_S)


class Pending:
    """The verdicts on one job (a run of triples); ``result`` waits for them."""

    __slots__ = ("_done", "_outcomes", "_watch", "triples")

    def __init__(self, triples: Sequence[Triple], watch: Callable[[], None] | None = None) -> None:
        self.triples = triples
        self._done = threading.Event()
        self._outcomes: bytes | None = None
        self._watch = watch  # the pool's look for hung workers (``VerifyPool._end_hung``)

    def settle(self, outcomes: bytes | None) -> None:
        """Give the worker's outcomes, one byte per triple; None when there are none."""
        self._outcomes = outcomes
        self._done.set()

    def result(self) -> list[bool]:
        """Whether each triple of the job verified, in order: the worker's answer, or
        the calling thread's own verification when the worker gave none. While it
        waits it looks for hung workers every ``_STALL_S`` seconds: killed, a worker
        settles what it held, and the other workers take the rest."""
        while not self._done.wait(_STALL_S):
            if self._watch is not None:
                self._watch()
        outcomes = self._outcomes
        if outcomes is None or len(outcomes) != len(self.triples):
            return verify_here(self.triples)
        return [byte == VALID for byte in outcomes]


class _Worker:
    """One child process and the pool's thread that feeds it (``VerifyPool._feed``).

    Only that thread writes to and reads from the worker's pipes while it runs; its
    answers come in the order the jobs were written, numbered. ``waiting`` and
    ``progress`` say whether that thread is blocked on the worker and how many reads
    and writes it has finished, for ``VerifyPool._end_hung``.
    """

    def __init__(self, process: subprocess.Popen[bytes] | None) -> None:
        self.process = process
        self.sent = 0
        self.received = 0
        self.broken = process is None
        self.started = process is None
        self.waiting = process is not None  # for its hello
        self.progress = 0
        self.stalled: tuple[int, float] | None = None  # progress and when first seen
        self.greeted_at: float | None = None  # when it said hello (``time.monotonic``)
        self.ended_by_pool = False  # killed as hung or silent, or stopped out of step

    def await_hello(self, within: float) -> None:
        """Read the worker's hello; one that says none within ``within`` seconds is
        killed (its read then ends) and, like one that says something else, broken."""
        if self.started:
            return
        silent = threading.Timer(within, self.kill)
        silent.daemon = True
        silent.start()
        try:
            hello = self._read()
            if hello == HELLO:
                self.greeted_at = time.monotonic()
            else:
                self.broken = True
                if hello is not None:  # it said something else
                    self.ended_by_pool = True
        finally:
            silent.cancel()
        self.started = True

    def send(self, triples: Sequence[Triple]) -> bool:
        """Write one job; whether it went (a worker that is gone is broken; a job that
        cannot be encoded is not written, and its caller verifies it)."""
        process = self.process
        if self.broken or process is None or process.stdin is None:
            self.broken = True
            return False
        try:
            message = msgpack.packb(triples, use_bin_type=True)
        except (TypeError, ValueError, OverflowError):  # not bytes: no entry's signature
            return False
        self.waiting = True
        try:
            process.stdin.write(LENGTH.pack(len(message)) + message)
            process.stdin.flush()
        except (OSError, ValueError):
            self.broken = True
            return False
        finally:
            self.waiting = False
            self.progress += 1
        self.sent += 1
        return True

    def read_outcomes(self, count: int) -> bytes | None:
        """The ``count`` outcomes of the next answer; None unless it is exactly that.

        Anything else means the worker cannot be trusted to be in step any more: it
        is broken, and whatever it has not answered is verified by the callers.
        """
        answer = None if self.broken else self._read()
        if answer is None:
            self.broken = True
            return None
        if len(answer) < NUMBER.size or NUMBER.unpack_from(answer)[0] != self.received:
            self.broken = self.ended_by_pool = True
            return None
        self.received += 1
        outcomes = answer[NUMBER.size :]
        if len(outcomes) != count or outcomes.translate(None, OUTCOMES):
            self.broken = self.ended_by_pool = True
            return None
        return outcomes

    def _read(self) -> bytes | None:
        process = self.process
        if process is None or process.stdout is None:
            return None
        self.waiting = True
        try:
            return read_message(process.stdout, _ANSWER_LIMIT)
        except (OSError, ValueError):
            return None
        finally:
            self.waiting = False
            self.progress += 1

    def kill(self) -> None:
        """Kill the worker (it hangs): its thread's read or write then returns."""
        process = self.process
        if process is not None:
            self.ended_by_pool = True
            with contextlib.suppress(OSError):
                process.kill()

    def end_input(self) -> None:
        """Close the worker's stdin: it exits once it has answered what it was sent."""
        process = self.process
        if process is not None and process.stdin is not None:
            # A worker that is gone already leaves nothing to flush.
            with contextlib.suppress(OSError, ValueError):
                process.stdin.close()

    def reap(self, *, stuck: bool = False, wait_s: float = _EXIT_WAIT) -> None:
        """Wait for the worker to exit (its feeding thread ended its input), kill one
        that does not within ``wait_s`` seconds, then close its pipes. ``stuck``: its
        feeding thread is still blocked on it (a worker that hangs), so it is killed
        first: only the worker's end lets that thread's read or write return, and the
        pipes' locks with it."""
        process = self.process
        self.broken = True
        if process is None:
            return
        if stuck:
            with contextlib.suppress(OSError):
                process.kill()
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.close()
        self.process = None


#: What ``close`` puts on the queue for each feeding thread: stop taking jobs.
_STOP = None


class VerifyPool:
    """``processes`` worker processes verifying entry signatures; see the module docstring.

    The workers start at once and ready themselves while the caller goes on. With
    ``niceness``, each (a replacement too) runs that many steps nicer than the caller
    (``_lower_priority``; a node's, ADR 0055). Every method may be called from several
    threads at once. Use as a context manager, or call ``close``.
    """

    def __init__(self, processes: int, *, niceness: int = 0) -> None:
        if processes < 1:
            raise ValueError("a verify pool needs at least one process")
        self._niceness = niceness
        self._workers = [_Worker(_start_worker(niceness)) for _ in range(processes)]
        self._jobs: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._watch_lock = threading.Lock()
        self._closed = False
        self._closing = threading.Event()  # ends a pause before a replacement
        self._feeding = len(self._workers)  # threads still taking jobs
        self._replaced = 0
        #: Called (from a feeding thread) with each worker that stopped, once another
        #: has been started in its place.
        self.on_replace: Callable[[Stopped], None] | None = None
        self._threads = [
            threading.Thread(
                target=self._feed, args=(number,), name=f"redlist-feed-{number}", daemon=True
            )
            for number in range(len(self._workers))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, triples: Sequence[Triple]) -> list[Pending]:
        """Queue ``triples`` for the workers in jobs of at most ``JOB_SIZE``; one
        ``Pending`` per job, in order. Never waits."""
        jobs = [
            Pending(triples[begin : begin + JOB_SIZE], self._end_hung)
            for begin in range(0, len(triples), JOB_SIZE)
        ]
        with self._lock:
            if self._closed:
                raise ValueError("the verify pool is closed")
            if not self._feeding or not self.running():  # none to verify: the callers do
                for job in jobs:
                    job.settle(None)
                return jobs
            for job in jobs:
                self._jobs.put(job)
        return jobs

    def verify(self, triples: Sequence[Triple]) -> list[bool]:
        """Whether each triple verified, in order; blocks until all are known.

        After ``close`` (even one in another thread meanwhile) the calling thread
        verifies them itself.
        """
        try:
            jobs = self.submit(triples)
        except ValueError:  # closed
            return verify_here(triples)
        return [ok for pending in jobs for ok in pending.result()]

    @property
    def processes(self) -> int:
        return len(self._workers)

    @property
    def replaced(self) -> int:
        """How many workers were started in place of ones that stopped."""
        return self._replaced

    def running(self) -> int:
        """How many workers are in use now (started, or starting, and not stopped)."""
        with self._watch_lock:
            return sum(1 for worker in self._workers if not worker.broken)

    def started(self) -> bool:
        """Whether every worker has started (or failed to); never waits.

        Starting takes a fraction of a second; a caller with work to do meanwhile
        can do it elsewhere until this says the pool is ready.
        """
        return all(worker.started for worker in self._workers)

    def ready(self) -> bool:
        """Whether a worker can take jobs now (it said hello and has not stopped); never
        waits. One that never says hello does not keep the others from the work."""
        with self._watch_lock:
            return any(worker.started and not worker.broken for worker in self._workers)

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

    def close(self) -> None:
        """Stop the workers and wait for them to exit. Jobs not yet written are given
        back to their callers, who verify them; those written are answered first.

        Each feeding thread ends its worker's input once it has read every answer (it
        alone writes to it, so closing never waits for another thread's write), and
        the worker then exits; a worker still holding its thread after a short wait is
        killed. The wait is one for all the workers, not one each."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._closing.set()
            self._give_back()
        for _ in self._threads:
            self._jobs.put(_STOP)
        deadline = time.monotonic() + _EXIT_WAIT
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for worker, thread in zip(self._workers, self._threads, strict=True):
            stuck = thread.is_alive()
            worker.reap(stuck=stuck, wait_s=max(0.0, deadline - time.monotonic()))
            if stuck:  # its read or write returned when the worker was killed
                thread.join(_EXIT_WAIT)

    def _end_hung(self) -> None:
        """Kill each worker whose thread has waited on the same read or write since
        the last look at least ``_STALL_S`` seconds ago (``Pending.result`` looks)."""
        now = time.monotonic()
        with self._watch_lock:
            for worker in self._workers:
                if not worker.waiting or worker.process is None:
                    worker.stalled = None
                elif worker.stalled is None or worker.stalled[0] != worker.progress:
                    worker.stalled = (worker.progress, now)
                elif now - worker.stalled[1] >= _STALL_S:
                    worker.kill()

    def _give_back(self) -> None:
        """Settle every queued job with no outcomes (the lock is held)."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.settle(None)

    def _feed(self, number: int) -> None:
        """Worker ``number``'s thread: feed it (``_serve``) until the pool closes, and
        replace it each time it stops (see the module docstring)."""
        worker = self._workers[number]
        last_pause = None
        try:
            while not self._serve(worker):
                process = worker.process
                if process is not None and not worker.ended_by_pool:
                    try:  # its answer ended: it died, or it is exiting
                        process.wait(_EXITING_S)
                    except subprocess.TimeoutExpired:
                        worker.ended_by_pool = True  # alive: out of step, stopped here
                worker.reap(stuck=True, wait_s=_EXIT_WAIT)  # killed, then its pipes closed
                stopped = Stopped(
                    None if process is None else process.returncode, worker.ended_by_pool
                )
                self._give_back_if_none_runs()
                last_pause = replacement_pause(last_pause, worker.greeted_at, time.monotonic())
                if self._closing.wait(last_pause):
                    return
                replacement = self._replace(number, stopped)
                if replacement is None:
                    return
                worker = replacement
        finally:
            self._stopped_feeding()

    def _replace(self, number: int, stopped: Stopped) -> _Worker | None:
        """Start worker ``number`` again, in place of ``stopped`` (reported to
        ``on_replace``); None once the pool is closing."""
        worker = _Worker(_start_worker(self._niceness))  # a fork and an exec: not under the lock
        with self._lock:
            closed = self._closed
            if not closed:
                with self._watch_lock:
                    self._workers[number] = worker
                self._replaced += 1
        if closed:
            worker.end_input()
            worker.reap(stuck=True, wait_s=_EXIT_WAIT)
            return None
        report = self.on_replace
        if report is not None:
            with contextlib.suppress(Exception):  # a report must not stop the feeding
                report(stopped)
        return worker

    def _give_back_if_none_runs(self) -> None:
        """Give the queued jobs back to their callers when no worker is left to take
        them (each is between a stop and its replacement)."""
        with self._lock:
            if not self.running():
                self._give_back()

    def _serve(self, worker: _Worker) -> bool:
        """Take jobs from the queue as ``worker`` finishes them, writing up to
        ``_AHEAD`` ahead so that it never waits between two; the worker that finishes
        first takes the next job, so none idles while another has work. True when the
        pool stopped it (``close``), False when it broke (stopped, hung, out of step).
        """
        written: deque[Pending] = deque()
        stopping = False
        try:
            worker.await_hello(_STALL_S)
            while not worker.broken:
                if not stopping and len(written) < _AHEAD:
                    job: Pending | bool | None = False  # False: none waiting
                    if not written:
                        job = self._jobs.get()
                    else:
                        with contextlib.suppress(queue.Empty):
                            job = self._jobs.get_nowait()
                    if job is _STOP:
                        stopping = True
                    elif isinstance(job, Pending):
                        if worker.send(job.triples):
                            written.append(job)
                        else:
                            job.settle(None)
                        continue
                if not written:
                    return True  # stopping, with every answer read
                written[0].settle(worker.read_outcomes(len(written[0].triples)))
                written.popleft()
            return stopping
        finally:
            for job in written:
                job.settle(None)
            if stopping:
                worker.end_input()  # it exits once it has answered what it holds

    def _stopped_feeding(self) -> None:
        # The last thread to stop gives the queued jobs back: nobody else would.
        with self._lock:
            self._feeding -= 1
            if not self._feeding:
                self._give_back()


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


def verify_here(triples: Sequence[Triple]) -> list[bool]:
    """Verify ``triples`` in the calling thread."""
    return [outcome == VALID for outcome in verify_many(triples, ENTRY_DOMAIN)]


def _start_worker(niceness: int = 0) -> subprocess.Popen[bytes] | None:
    """A new worker process, or None when none can be started (the caller verifies);
    ``niceness`` steps nicer than this process (``_lower_priority``)."""
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
        process = subprocess.Popen(
            [sys.executable, "-m", "redlist.ledger.sigchild"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
        )
    except (OSError, ValueError):
        return None
    if niceness > 0:
        _lower_priority(process.pid, niceness)
    return process


def _lower_priority(pid: int, niceness: int) -> None:
    """Run process ``pid`` ``niceness`` steps nicer than this one (at most 19), where
    the system has priorities; elsewhere, or when the process has gone, it runs as it
    is. A process may always make its own child nicer."""
    with contextlib.suppress(AttributeError, OSError):
        own = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, pid, min(MOST_NICE, own + niceness))


__all__ = [
    "Pending",
    "Stopped",
    "Triple",
    "VerifyPool",
    "start_early",
    "take_early",
    "verify_here",
]
