"""Worker processes verify signatures, and never decide an outcome wrongly."""

from __future__ import annotations

import io
import itertools
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.waiting import eventually

from redlist.ledger import codec, sigchild
from redlist.ledger import sigworkers as workers
from redlist.ledger.crypto import SigningKey, sign_entry
from redlist.ledger.sigschedule import SignatureScheduler
from redlist.ledger.sigworkers import Triple, VerifyPool

KEY = SigningKey.from_seed(bytes(32))


def triples(count: int, forged: frozenset[int] | set[int] = frozenset()) -> list[Triple]:
    """``count`` entry signatures; those at ``forged`` are over another body."""
    made: list[Triple] = []
    for number in range(count):
        body = b"body %d" % number
        signed = b"other" if number in forged else body
        made.append((KEY.public, body, sign_entry(KEY, signed)))
    return made


def expected(count: int, forged: set[int]) -> list[bool]:
    return [number not in forged for number in range(count)]


def outcomes(pool: VerifyPool, batch: list[Triple]) -> list[bool]:
    return [ok for pending in pool.submit(batch) for ok in pending.result()]


def test_a_pool_verifies_in_order_across_workers_and_messages() -> None:
    forged = {0, 5, 17, 42}
    with VerifyPool(2) as pool:
        assert pool.processes == 2
        first = pool.submit(triples(50, forged))  # two messages in flight per worker
        second = pool.submit(triples(7, {6}))
        assert [ok for pending in second for ok in pending.result()] == expected(7, {6})
        assert [ok for pending in first for ok in pending.result()] == expected(50, forged)
        assert outcomes(pool, []) == []
        assert outcomes(pool, triples(1)) == [True]


def test_malformed_triples_do_not_verify() -> None:
    good = triples(1)[0]
    batch = [good, (good[0][:31], good[1], good[2]), (good[0], good[1], good[2][:63])]
    with VerifyPool(1) as pool:
        assert outcomes(pool, batch) == [True, False, False]


def test_a_worker_that_dies_mid_job_leaves_its_jobs_to_the_caller_and_is_replaced() -> None:
    forged = {1, 3}
    stopped: list[workers.Stopped] = []
    with VerifyPool(2) as pool:
        pool.on_replace = stopped.append
        assert outcomes(pool, triples(4)) == [True] * 4  # both workers are up
        first = pool._workers[0]
        process = first.process
        assert process is not None
        process.kill()
        process.wait()
        assert outcomes(pool, triples(10, forged)) == expected(10, forged)
        # Its next job tells its thread it is gone: put jobs on both workers until
        # its place is taken.
        assert eventually(
            lambda: outcomes(pool, triples(2 * workers.JOB_SIZE)) is not None and pool.replaced == 1
        )
        assert stopped == [workers.Stopped(-signal.SIGKILL, by_pool=False)]
        assert eventually(lambda: pool.running() == 2)
        second = pool._workers[0]
        assert second is not first
        assert second.process is not None and second.process.pid != process.pid
        assert pool.wait_started()
        # The new worker takes jobs like the others (not its callers in its stead).
        assert eventually(
            lambda: (
                outcomes(pool, triples(4 * workers.JOB_SIZE, {700}))
                == expected(4 * workers.JOB_SIZE, {700})
                and second.received >= 1
            )
        )


def test_a_worker_killed_while_idle_is_replaced_and_its_place_used_again() -> None:
    # A long-running node: the kernel kills a worker for memory between two batches.
    with VerifyPool(1) as pool:
        assert outcomes(pool, triples(2)) == [True, True]
        first = pool._workers[0].process
        assert first is not None
        first.kill()
        first.wait()
        # The first job after the death meets the closed pipe: its caller verifies it.
        assert outcomes(pool, triples(5, {4})) == expected(5, {4})
        assert eventually(lambda: pool.replaced == 1 and pool.running() == 1)
        assert pool.wait_started()
        second = pool._workers[0]
        assert outcomes(pool, triples(7, {0})) == expected(7, {0})
        assert second.received >= 1  # answered by the new worker, not by the caller
        assert second.process is not None and second.process.pid != first.pid


def test_a_worker_that_cannot_run_here_is_retried_ever_less_often_and_callers_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each replacement dies before its hello (a broken installation): it is started
    # again after pauses that double up to a ceiling, and meanwhile every job is given
    # back to its caller at once.
    _misbehaving_workers(tmp_path, monkeypatch, "raise SystemExit(3)\n")
    monkeypatch.setattr(workers, "_REPLACE_PAUSE_S", 0.02)
    monkeypatch.setattr(workers, "_REPLACE_PAUSE_MAX_S", 0.16)
    times: list[float] = []
    stopped: list[workers.Stopped] = []

    def replaced(worker: workers.Stopped) -> None:
        times.append(time.monotonic())
        stopped.append(worker)

    with VerifyPool(1) as pool:
        pool.on_replace = replaced
        assert eventually(lambda: len(times) >= 6)
        assert _results_within(pool.submit(triples(4, {2})), 5.0) == expected(4, {2})
        time.sleep(1.0)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # Each pause is a least wait (a start and an exit come on top): 0.04, 0.08, then 0.16.
    least = [0.04, 0.08, 0.16, 0.16, 0.16]
    assert all(gap >= 0.9 * wait for gap, wait in zip(gaps[:5], least, strict=True))
    assert len(times) <= 6 + 1.0 / 0.16 + 3  # the ceiling holds
    assert set(stopped) == {workers.Stopped(3, by_pool=False)}
    assert not pool.running()


def test_replacements_wait_twice_as_long_while_they_keep_stopping_soon() -> None:
    first, ceiling, proven = (
        workers._REPLACE_PAUSE_S,
        workers._REPLACE_PAUSE_MAX_S,
        workers._PROVEN_S,
    )
    pause = workers.replacement_pause
    assert pause(None, 100.0, 100.5) == first  # the first of a row
    assert pause(first, None, 100.0) == 2 * first  # it never said hello
    assert pause(2 * first, 100.0, 100.0 + proven / 2) == 4 * first  # it stopped soon
    assert pause(ceiling, 100.0, 101.0) == ceiling  # never longer than the ceiling
    assert pause(ceiling, 100.0, 100.0 + proven) == first  # it ran a good while: a new row
    waits = [first]
    while waits[-1] < ceiling:
        waits.append(pause(waits[-1], None, 0.0))
    assert waits[-1] == ceiling and len(waits) < 20  # a minute, after a few tries


def test_a_worker_that_ran_a_while_is_replaced_at_once_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers, "_PROVEN_S", 0.0)  # every worker has run long enough
    with VerifyPool(1) as pool:
        for number in range(4):
            assert pool.wait_started()
            assert eventually(lambda: pool._workers[0].greeted_at is not None)
            process = pool._workers[0].process
            assert process is not None
            process.kill()
            process.wait()
            outcomes(pool, triples(2))  # its thread finds it gone
            assert eventually(lambda count=number + 1: pool.replaced == count)


def test_a_worker_silent_after_its_start_is_killed_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _misbehaving_workers(tmp_path, monkeypatch, "import time\ntime.sleep(600)\n")
    monkeypatch.setattr(workers, "_STALL_S", 0.3)
    stopped: list[workers.Stopped] = []
    with VerifyPool(1) as pool:
        pool.on_replace = stopped.append
        first = pool._workers[0].process
        assert first is not None
        assert first.wait(10) == -signal.SIGKILL  # no job needed to find it silent
        assert eventually(lambda: len(stopped) >= 1)
        assert stopped[0] == workers.Stopped(-signal.SIGKILL, by_pool=True)


def test_closing_a_pool_waiting_to_replace_a_worker_does_not_wait_for_the_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _misbehaving_workers(tmp_path, monkeypatch, "raise SystemExit(3)\n")
    monkeypatch.setattr(workers, "_REPLACE_PAUSE_S", 60.0)
    pool = VerifyPool(1)
    try:
        assert eventually(lambda: pool._workers[0].process is None)  # reaped: pausing
        assert pool.running() == 0
    finally:
        started = time.monotonic()
        pool.close()
    assert time.monotonic() - started < 5.0
    assert pool.replaced == 0


def test_a_worker_that_answers_nonsense_is_not_believed() -> None:
    stopped: list[workers.Stopped] = []
    with VerifyPool(1) as pool:
        pool.on_replace = stopped.append
        worker = pool._workers[0]
        assert outcomes(pool, triples(2)) == [True, True]
        worker.received += 5  # the next answer then carries an unexpected number
        pending = pool.submit(triples(3, {0, 1, 2}))
        assert pending[0].result() == [False, False, False]
        assert worker.broken
        # Still running, but out of step: the pool stopped it, and says so.
        assert eventually(lambda: len(stopped) >= 1), stopped
        assert stopped == [workers.Stopped(-signal.SIGKILL, by_pool=True)]


def test_workers_that_cannot_start_leave_the_work_to_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with VerifyPool(2) as pool:
        assert pool.started()
        assert outcomes(pool, triples(6, {2})) == expected(6, {2})


def test_close_stops_the_workers_and_can_be_repeated() -> None:
    pool = VerifyPool(2)
    processes = [worker.process for worker in pool._workers]
    assert outcomes(pool, triples(3)) == [True] * 3
    pool.close()
    pool.close()
    for process in processes:
        assert process is not None
        assert process.returncode is not None
    with pytest.raises(ValueError, match="closed"):
        pool.submit(triples(1))


def test_the_worker_loop_answers_each_message() -> None:
    batches = [triples(3, {1}), triples(2)]
    requests = b"".join(
        struct.pack(">I", len(message)) + message
        for message in (codec.encode([list(t) for t in batch]) for batch in batches)
    )
    answers = io.BytesIO()
    sigchild.serve(io.BytesIO(requests), answers)
    stream = io.BytesIO(answers.getvalue())
    assert sigchild.read_message(stream) == sigchild.HELLO
    assert sigchild.read_message(stream) == struct.pack(">I", 0) + b"\x01\x00\x01"
    assert sigchild.read_message(stream) == struct.pack(">I", 1) + b"\x01\x01"
    assert sigchild.read_message(stream) is None


def test_verify_may_be_called_from_several_threads() -> None:
    batches = [(triples(30, {n, n + 7}), expected(30, {n, n + 7})) for n in range(6)]
    answers: dict[int, list[bool]] = {}
    with VerifyPool(2) as pool:

        def verify(number: int) -> None:
            answers[number] = pool.verify(batches[number][0])

        threads = [threading.Thread(target=verify, args=(n,)) for n in range(len(batches))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == {n: wanted for n, (_, wanted) in enumerate(batches)}
    assert pool.verify(triples(3, {1})) == [True, False, True]  # closed: done right here


def test_workers_started_early_are_taken_by_the_next_scheduler_of_their_size() -> None:
    from redlist.ledger.sigschedule import SignatureScheduler

    assert workers.start_early(2)
    early = workers._early
    assert early is not None
    with SignatureScheduler(2, processes=True) as scheduler:
        assert scheduler._pool is early  # taken, not a second pool started
        assert workers.take_early(2) is None  # and only once
        assert scheduler.verify(triples(40, {3})) == expected(40, {3})


def test_workers_started_early_of_another_size_are_stopped() -> None:
    assert workers.start_early(2)
    early = workers._early
    assert early is not None
    processes = [worker.process for worker in early._workers]
    assert workers.take_early(3) is None
    for process in processes:
        assert process is not None
        assert process.returncode is not None


def test_one_core_starts_no_workers_early() -> None:
    assert not workers.start_early(1)
    assert workers.take_early(1) is None


def _stopped(pool: VerifyPool, number: int) -> subprocess.Popen[bytes]:
    process = pool._workers[number].process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    return process


def test_a_worker_that_falls_behind_does_not_hold_up_the_other() -> None:
    forged = {3, 300, 1000}
    batch = triples(6 * workers.JOB_SIZE, forged)
    with VerifyPool(2) as pool:
        assert pool.wait_started()
        slow = _stopped(pool, 0)  # as if the auditor's thread had its core
        try:
            jobs = pool.submit(batch)
            assert len(jobs) == 6
            # The stopped worker holds at most the jobs written ahead to it; the other
            # takes every other job from the queue, one after another.
            deadline = time.monotonic() + 60
            while sum(job._done.is_set() for job in jobs) < len(jobs) - workers._AHEAD:
                assert time.monotonic() < deadline, "the running worker did not take the rest"
                time.sleep(0.01)
        finally:
            slow.send_signal(signal.SIGCONT)
        assert [ok for job in jobs for ok in job.result()] == expected(len(batch), forged)


def test_close_gives_the_jobs_not_yet_written_back_to_their_callers() -> None:
    pool = VerifyPool(1)
    assert pool.wait_started()
    stopped = _stopped(pool, 0)
    jobs = pool.submit(triples(5 * workers.JOB_SIZE, {7}))
    deadline = time.monotonic() + 60
    while pool._workers[0].sent < workers._AHEAD:  # the feeding thread writes ahead
        assert time.monotonic() < deadline
        time.sleep(0.005)
    closing = threading.Thread(target=pool.close)
    closing.start()
    try:
        # Three jobs were never written: given back, the caller verifies them itself.
        for job in jobs[workers._AHEAD :]:
            assert job.result() == [True] * workers.JOB_SIZE
    finally:
        stopped.send_signal(signal.SIGCONT)
    closing.join()
    assert jobs[0]._outcomes is not None  # written before the close: answered by the worker
    assert jobs[0].result() == expected(workers.JOB_SIZE, {7})
    assert stopped.returncode is not None


def test_closing_a_pool_whose_worker_hangs_ends_and_leaves_the_work_to_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers, "_EXIT_WAIT", 0.5)
    pool = VerifyPool(1)
    assert pool.wait_started()
    hung = _stopped(pool, 0)  # never continued: only a kill ends it
    (job,) = pool.submit(triples(3, {1}))
    closing = threading.Thread(target=pool.close)
    closing.start()
    closing.join(60)
    assert not closing.is_alive(), "close waited for a worker that never answers"
    assert hung.returncode is not None
    assert not any(thread.is_alive() for thread in pool._threads)  # none left behind
    assert job.result() == [True, False, True]  # verified by the caller instead


def test_closing_a_pool_whose_thread_is_stuck_writing_to_a_hung_worker_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers, "_EXIT_WAIT", 0.5)
    pool = VerifyPool(1)
    assert pool.wait_started()
    hung = _stopped(pool, 0)
    # Jobs larger than the pipe holds: the feeding thread blocks in its write.
    big = [(KEY.public, bytes(400), sign_entry(KEY, bytes(400)))] * (3 * workers.JOB_SIZE)
    jobs = pool.submit(big)
    time.sleep(0.2)
    closing = threading.Thread(target=pool.close)
    closing.start()
    closing.join(60)
    assert not closing.is_alive(), "close waited for a write to a worker that never reads"
    assert hung.returncode is not None
    assert not any(thread.is_alive() for thread in pool._threads)
    assert all(job.result() == [True] * workers.JOB_SIZE for job in jobs)


# Workers that misbehave in ways a real one only does when something is badly wrong
# (a bug, a debugger, a machine out of memory): the pool starts this program instead.
_SAYS_HELLO = """
import struct, sys, time
out = sys.stdout.buffer
out.write(struct.pack(">I", 16) + b"redlist-verify/1")
out.flush()
"""
_READS_A_JOB = """
header = sys.stdin.buffer.read(4)
sys.stdin.buffer.read(struct.unpack(">I", header)[0])
"""


def _misbehaving_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, program: str) -> None:
    script = tmp_path / "worker"
    script.write_text(f"#!{sys.executable}\n{program}")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(script))
    monkeypatch.setattr(workers, "_EXIT_WAIT", 0.5)


def _results_within(jobs: list[workers.Pending], seconds: float) -> list[bool] | None:
    """The jobs' verdicts, or None when they do not come within ``seconds``."""
    answers: list[bool] = []
    waiting = threading.Thread(
        target=lambda: answers.extend(ok for job in jobs for ok in job.result()), daemon=True
    )
    waiting.start()
    waiting.join(seconds)
    return None if waiting.is_alive() else answers


def test_an_answer_longer_than_any_answer_is_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A length of a mebibyte where an answer holds at most 260 bytes: the worker is
    # out of step, and its job is verified by the caller at once.
    _misbehaving_workers(
        tmp_path,
        monkeypatch,
        _SAYS_HELLO + _READS_A_JOB + 'out.write(struct.pack(">I", 1 << 20) + bytes(8))\n'
        "out.flush()\ntime.sleep(600)\n",
    )
    with VerifyPool(1) as pool:
        assert pool.wait_started()
        jobs = pool.submit(triples(3, {2}))
        assert _results_within(jobs, 5.0) == expected(3, {2})


@pytest.mark.parametrize(
    "program",
    [
        pytest.param("import time\ntime.sleep(600)\n", id="never-says-hello"),
        pytest.param(_SAYS_HELLO + "time.sleep(600)\n", id="never-reads"),
        pytest.param(
            _SAYS_HELLO + _READS_A_JOB + 'out.write(struct.pack(">I", 7) + bytes(5))\n'
            "out.flush()\ntime.sleep(600)\n",
            id="half-an-answer",
        ),
    ],
)
def test_a_worker_that_hangs_mid_audit_is_killed_and_its_jobs_verified_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, program: str
) -> None:
    _misbehaving_workers(tmp_path, monkeypatch, program)
    monkeypatch.setattr(workers, "_STALL_S", 0.2)
    with VerifyPool(1) as pool:
        process = pool._workers[0].process
        assert process is not None
        jobs = pool.submit(triples(3 * workers.JOB_SIZE, {5, 600}))
        assert _results_within(jobs, 20.0) == expected(3 * workers.JOB_SIZE, {5, 600})
        assert process.wait(10) == -signal.SIGKILL


def test_a_worker_stopped_mid_audit_is_killed_and_the_other_takes_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Long enough that the running worker, on a busy machine, never looks hung.
    monkeypatch.setattr(workers, "_STALL_S", 1.0)
    forged = {1, 700, 1500}
    batch = triples(8 * workers.JOB_SIZE, forged)
    with VerifyPool(2) as pool:
        assert pool.wait_started()
        stopped = _stopped(pool, 0)  # SIGSTOP, never continued
        try:
            assert _results_within(pool.submit(batch), 30.0) == expected(len(batch), forged)
            assert stopped.wait(10) == -signal.SIGKILL
            assert not pool._workers[1].broken  # the running worker is left alone
            assert outcomes(pool, triples(5, {4})) == expected(5, {4})
        finally:
            stopped.send_signal(signal.SIGCONT)


def test_a_worker_that_is_only_slow_is_not_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    # As when the whole command was stopped (Ctrl-Z) and continued: a worker that
    # answers once it runs again has made progress, and is kept.
    monkeypatch.setattr(workers, "_STALL_S", 1.0)
    with VerifyPool(1) as pool:
        assert pool.wait_started()
        slow = _stopped(pool, 0)
        jobs = pool.submit(triples(2 * workers.JOB_SIZE, {9}))
        threading.Timer(1.3, slow.send_signal, (signal.SIGCONT,)).start()
        assert _results_within(jobs, 30.0) == expected(2 * workers.JOB_SIZE, {9})
        assert slow.poll() is None and not pool._workers[0].broken


def test_a_job_that_cannot_be_written_is_verified_by_its_caller() -> None:
    # Not an entry signature's types (a programming error upstream): the job is
    # refused in the calling thread like any malformed triple, never left unanswered.
    good = triples(1)[0]
    odd: list[Triple] = [(good[0], good[1], object())] * 3  # type: ignore[list-item]
    with VerifyPool(1) as pool:
        assert pool.wait_started()
        assert _results_within(pool.submit(odd), 10.0) == [False, False, False]
        assert outcomes(pool, [good] * 4) == [True] * 4  # the worker is still in use


def test_closing_a_pool_whose_workers_all_hang_waits_once_not_once_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A node stopping with every worker hung: one short wait for all of them.
    monkeypatch.setattr(workers, "_EXIT_WAIT", 2.0)
    pool = VerifyPool(3)
    assert pool.wait_started()
    hung = [_stopped(pool, number) for number in range(3)]
    jobs = pool.submit(triples(6 * workers.JOB_SIZE))  # each holds some: threads stuck
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 3.5  # 6 s or more when waited for one by one
    assert all(process.returncode is not None for process in hung)
    assert all(job.result() == [True] * workers.JOB_SIZE for job in jobs)


def test_a_worker_that_answers_the_wrong_count_is_not_used_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Numbered right, one outcome short: out of step like any other nonsense.
    _misbehaving_workers(
        tmp_path,
        monkeypatch,
        _SAYS_HELLO
        + "number = 0\nwhile True:\n"
        + "".join("    " + line + "\n" for line in _READS_A_JOB.strip().splitlines())
        + '    answer = struct.pack(">I", number) + b"\\x01"\n'
        + '    out.write(struct.pack(">I", len(answer)) + answer)\n'
        + "    out.flush()\n    number += 1\n",
    )
    with VerifyPool(1) as pool:
        assert pool.wait_started()
        first = pool._workers[0]
        assert _results_within(pool.submit(triples(3, {0})), 10.0) == expected(3, {0})
        assert first.broken
        assert eventually(lambda: first.process is None)  # stopped, and replaced


def test_a_worker_that_never_says_hello_leaves_the_work_to_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first worker to run hangs before its hello; the other is a real worker.
    # The scheduler uses the pool as soon as one worker is ready, not when all are.
    real = sys.executable
    marker = tmp_path / "first-started"
    _misbehaving_workers(
        tmp_path,
        monkeypatch,
        "import os, sys, time\n"
        f"try:\n    os.close(os.open({str(marker)!r}, os.O_CREAT | os.O_EXCL))\n"
        "except FileExistsError:\n"
        f"    os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n"
        "time.sleep(600)\n",
    )
    forged = {2, 400}
    with SignatureScheduler(2, processes=True) as scheduler:
        pool = scheduler._pool
        assert pool is not None
        assert eventually(pool.ready)
        assert not pool.started()  # the first one is still silent
        batch = triples(3 * workers.JOB_SIZE, forged)
        assert scheduler.verify(batch) == expected(len(batch), forged)
        # Either may have been first to run: the one that said hello did the work.
        (silent,) = [worker for worker in pool._workers if not worker.started]
        (talking,) = [worker for worker in pool._workers if worker.started]
        assert talking.received >= 1 and silent.received == 0
        assert scheduler._threads is None  # nothing was verified on threads


def test_with_no_worker_left_the_scheduler_verifies_on_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not in the thread that asks for the verdicts, one signature after another.
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    monkeypatch.setattr(workers, "_REPLACE_PAUSE_S", 0.01)
    with SignatureScheduler(2, processes=True) as scheduler:
        pool = scheduler._pool
        assert pool is not None
        assert eventually(lambda: pool.running() == 0)  # every place between two tries
        assert not pool.ready()
        batch = triples(40, {7})
        assert scheduler.verify(batch) == expected(40, {7})
        assert scheduler._threads is not None
