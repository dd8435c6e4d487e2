"""DESIGN 7, "nothing acknowledged is ever lost": kill -9 a real node again and again.

Each round starts ``redlist-node serve`` on one data directory, streams batches of
signed awards at it from two threads (some batches sent again, as a client retrying
would), and SIGKILLs it 0-300 ms later, mid-commit or not. The data directory is
then checked against everything the node ever acknowledged (``crashkit.check_log``)
and the next round restarts the node on it. Some rounds kill the node while it is
still starting. Every few rounds, and at the end, the log is exported, audited by
``redlist-verify`` and checked in full by ``redlist-node check --full``. At the end
every batch ever sent is sent once more: a retry after a crash is always safe.

A second test kills ``redlist-node export`` at random moments: ``--out`` is then
either absent or a complete, sound bundle, and the next export succeeds.

The seed (``REDLIST_CRASH_SEED``, printed on failure) fixes every random choice:
accounts, batch sizes, retries, kill delays. Where a kill lands in the node's work
also depends on the machine, so a failure may take a few runs with its seed to
recur. Sizes come from ``REDLIST_CRASH_*`` variables (``crashkit.CrashSettings``);
``make test`` runs about ten rounds, ``make soak`` two hundred.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import grpc
import pytest
from tests.builders import Town, create_log, submit_request
from tests.faults.crashkit import (
    ORIGIN,
    Batch,
    BatchFactory,
    CrashSettings,
    Journal,
    LogView,
    NodeProcess,
    Submitter,
    check_bundle_dir,
    check_log,
    make_town_dir,
    run_command,
    seeded_random,
    spawn_export,
    staging_dirs,
    verify_offline,
)

from redlist.ledger import bundle
from redlist.ledger.log import Log
from redlist.v1 import ledger_pb2_grpc

SUBMITTERS = 2
#: Fresh batches each submitter gets per round (it retries old ones once they run out).
FRESH_BATCHES = 40
#: A kill while starting comes this many seconds after the spawn at most.
STARTUP_KILL_S = 0.3


@pytest.fixture(scope="module")
def settings() -> CrashSettings:
    return CrashSettings.from_environment()


class Failure:
    """Fails a test with the seed, the command that replays it and the node's last words."""

    def __init__(self, settings: CrashSettings, test: str) -> None:
        self.settings = settings
        self.test = test

    def unless(
        self, ok: bool, where: str, problems: list[str], node: NodeProcess | None = None
    ) -> None:
        if ok:
            return
        lines = [f"{where} (seed {self.settings.seed}):", *(f"  - {p}" for p in problems[:30])]
        if len(problems) > 30:
            lines.append(f"  ... and {len(problems) - 30} more")
        lines.append(f"replay with: {self.settings.reproduce(self.test)}")
        if node is not None:
            lines.append(f"node stderr:\n{node.stderr_tail()}")
        pytest.fail("\n".join(lines))


class CrashRun:
    """One town's data directory, killed round after round, and what was learnt."""

    def __init__(self, root: Path, settings: CrashSettings) -> None:
        self.root = root
        self.settings = settings
        self.fail = Failure(settings, "test_acknowledged_entries_survive_kill_9")
        self.rng = seeded_random(settings.seed)
        town = Town.from_seed(settings.seed.to_bytes(8, "big"), origin=ORIGIN)
        self.town_dir = make_town_dir(root, town)
        self.journal = Journal(self.town_dir.log_key)
        self.factory = BatchFactory(town, self.rng)
        self.view: LogView | None = None
        self.started = time.monotonic()
        self.rounds = self.startup_kills = self.verifies = self.in_doubt_stored = 0

    @property
    def size(self) -> int:
        """The log's size at the last check."""
        return self.town_dir.setup_size if self.view is None else self.view.size

    def another_round(self) -> bool:
        if self.rounds >= self.settings.rounds:
            return False
        spent = time.monotonic() - self.started
        return self.rounds < self.settings.min_rounds or spent < self.settings.seconds

    def spawn(self, name: str) -> NodeProcess:
        return NodeProcess.spawn(self.town_dir.data, self.root / "node-logs", name)

    def kill_while_starting(self) -> None:
        """SIGKILL a node before (or just as) it serves: the log must not change."""
        before = self.size
        with self.spawn(f"round-{self.rounds}-startup") as node:
            time.sleep(self.rng.uniform(0, STARTUP_KILL_S))
        self.startup_kills += 1
        where = f"round {self.rounds}, after a kill while starting"
        self.check(where, node)
        self.fail.unless(self.size == before, where, ["the log changed"], node)

    def kill_while_submitting(self) -> None:
        """Serve, stream batches from two threads, SIGKILL the node, check the log."""
        where = f"round {self.rounds}"
        with self.spawn(f"round-{self.rounds}") as node:
            serving = node.wait_serving()
            self.fail.unless(
                serving.entries == self.size,
                where,
                [f"the node restarted with {serving.entries} entries, not {self.size}"],
                node,
            )
            killed = threading.Event()
            history = list(self.journal.batches.values())
            submitters = [
                Submitter(
                    f"submitter-{number}",
                    serving.address,
                    self.factory.batches(FRESH_BATCHES),
                    history,
                    self.journal,
                    killed,
                    seeded_random(self.rng.getrandbits(64)),
                    self.settings.resubmit_chance,
                )
                for number in range(SUBMITTERS)
            ]
            delay = self.rng.uniform(0, self.settings.max_kill_ms / 1000)
            for submitter in submitters:
                submitter.start()
            time.sleep(delay)
            killed.set()
            node.kill()
            for submitter in submitters:
                submitter.join(timeout=60)
            hung = [submitter.name for submitter in submitters if submitter.is_alive()]
            self.fail.unless(not hung, where, [f"{hung} still waiting after the kill"], node)
        self.check(f"{where}, after kill -9 at {delay * 1000:.0f} ms", node)
        # A call cut off by the kill: its batch may have been committed all the same.
        stored = self.view.stored if self.view is not None else frozenset()
        self.in_doubt_stored += sum(number in stored for number in self.journal.take_in_doubt())

    def restart_and_retry_everything(self) -> int:
        """Restart once more, send every batch ever sent again, stop gracefully."""
        with self.spawn("final") as node:
            serving = node.wait_serving()
            self.fail.unless(serving.entries == self.size, "final restart", ["size"], node)
            batches = list(self.journal.batches.values())
            retry_everything(serving.address, batches, self.journal)
            code = node.stop()
            self.fail.unless(code == 0, "final stop", [f"SIGTERM: exit status {code}"], node)
        self.check("after retrying every batch", node)
        missing = self.view.batches_missing if self.view is not None else -1
        self.fail.unless(missing == 0, "after retrying", [f"{missing} batches missing"])
        return len(batches)

    def check(self, where: str, node: NodeProcess | None) -> None:
        journal = self.journal
        view, problems = check_log(self.town_dir.data, journal, self.town_dir.setup_size, self.view)
        problems += journal.take_problems()
        self.fail.unless(view is not None and not problems, where, problems, node)
        self.view = view

    def verify(self, where: str) -> None:
        """Export, audit with redlist-verify, and check the store in full."""
        out = self.root / "bundles" / f"verify-{self.verifies}"
        size, problems = verify_offline(self.town_dir.data, out, self.town_dir.log_key)
        if size != self.size:
            problems.append(f"the bundle holds {size} entries, the log {self.size}")
        self.fail.unless(not problems, where, problems)
        shutil.rmtree(out)
        self.verifies += 1


def test_acknowledged_entries_survive_kill_9(tmp_path: Path, settings: CrashSettings) -> None:
    run = CrashRun(tmp_path, settings)
    while run.another_round():
        run.rounds += 1
        if run.rng.random() < settings.startup_kill_chance:
            run.kill_while_starting()
        run.kill_while_submitting()
        if run.rounds % settings.verify_every == 0:
            run.verify(f"round {run.rounds}, full verification")
    tally, acked_in_rounds = replace(run.journal.tally), len(run.journal.acked)
    run.fail.unless(acked_in_rounds > 0, "the run", ["nothing was acknowledged before a kill"])

    retried = run.restart_and_retry_everything()
    run.verify("final full verification")

    summary = {
        "seed": settings.seed,
        "rounds": run.rounds,
        "startup_kills": run.startup_kills,
        "answers_in_rounds": tally.acks,
        "acknowledged_seqs_in_rounds": acked_in_rounds,
        "acknowledged_seqs_checked": len(run.journal.acked),
        "resubmissions_in_rounds": tally.resubmissions,
        "in_doubt_batches": tally.in_doubt,
        "in_doubt_found_stored": run.in_doubt_stored,
        "batches_retried_at_end": retried,
        "errors_after_kill": dict(run.journal.error_codes),
        "full_verifications": run.verifies,
        "log_size": run.size,
        "seconds": round(time.monotonic() - run.started, 1),
    }
    print("crash-summary " + json.dumps(summary, sort_keys=True))


def retry_everything(address: str, batches: list[Batch], journal: Journal) -> None:
    """Send every batch again, in order; the journal checks every answer."""
    with grpc.insecure_channel(address) as channel:
        stub = ledger_pb2_grpc.LedgerStub(channel)
        for batch in batches:
            journal.sending(batch, resubmission=True)
            response = stub.Submit(submit_request(batch.envelopes), timeout=60)
            journal.acknowledged(batch, response.seqs, response.checkpoint)


def test_a_killed_export_leaves_no_partial_bundle(tmp_path: Path, settings: CrashSettings) -> None:
    fail = Failure(settings, "test_a_killed_export_leaves_no_partial_bundle")
    rng = seeded_random(settings.seed)
    town = Town.from_seed(settings.seed.to_bytes(8, "big"), origin=ORIGIN)
    data = tmp_path / "data"
    with create_log(data, town, setup=True) as log:
        factory = BatchFactory(town, rng, max_size=500)
        for batch in factory.batches(24):
            log.append(batch.envelopes, now_ms=town.now_ms)
        log_key, size = log.verifier_key, log.size
    exports = tmp_path / "exports"
    exports.mkdir()

    # A clean export first: how long one takes, and how long its staging phase lasts.
    clean = exports / "clean"
    spawned = time.monotonic()
    process = spawn_export(data, clean)
    staged = wait_for(process, lambda: bool(staging_dirs(exports)))
    renamed = wait_for(process, clean.exists)
    code = process.wait(timeout=120)
    fail.unless(code == 0, "a clean export", [f"exit status {code}", read_stderr(process)])
    total = time.monotonic() - spawned
    staging = renamed - staged if staged is not None and renamed is not None else total
    fail.unless(not check_bundle_dir(clean, log_key, ORIGIN), "a clean export", ["incomplete"])

    outcomes = {"absent": 0, "complete": 0, "killed_while_staging": 0}
    for number in range(settings.export_kills):
        out = exports / f"bundle-{number}"
        before = set(staging_dirs(exports))
        process = spawn_export(data, out)
        if number % 2:  # aim inside the staging phase, after the interpreter has started
            wait_for(process, partial(staged_since, exports, before))
            time.sleep(rng.uniform(0, staging * 1.2))
        else:
            time.sleep(rng.uniform(0, total))
        process.kill()
        process.wait(timeout=30)
        where = f"export {number} killed"
        outcomes["killed_while_staging"] += staged_since(exports, before)
        if out.exists():
            outcomes["complete"] += 1
            problems = check_bundle_dir(out, log_key, ORIGIN)
            fail.unless(not problems, f"{where}, --out is not a complete bundle", problems)
            continue
        outcomes["absent"] += 1
        again = run_command("redlist-node", "export", "--data", data, "--out", out, "--full")
        problems = [again.stderr] if again.returncode else check_bundle_dir(out, log_key, ORIGIN)
        fail.unless(not problems, f"{where}, then exported again", problems)

    # Besides the bundles, only hidden staging directories may be left over.
    leftovers = staging_dirs(exports)
    names = {path.name for path in exports.iterdir()} - {path.name for path in leftovers}
    assert names == {"clean"} | {f"bundle-{n}" for n in range(settings.export_kills)}
    for leftover in leftovers:
        assert leftover.name.startswith(".bundle-") and leftover.name.endswith(".partial")
    audited = run_command(
        "redlist-verify", "bundle", exports / f"bundle-{settings.export_kills - 1}",
        "--log-key", log_key.encode(), "--json",
    )  # fmt: skip
    fail.unless(audited.returncode == 0, "auditing a re-export", [audited.stdout])
    assert json.loads(audited.stdout)["tree_size"] == size
    print("export-kill-summary " + json.dumps({**outcomes, "leftover_staging": len(leftovers)}))


def wait_for(
    process: subprocess.Popen[bytes], condition: Callable[[], bool], timeout: float = 60.0
) -> float | None:
    """Poll until ``condition`` holds; the ``time.monotonic()`` it held at, or None when
    the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        if process.poll() is not None:
            return None
        time.sleep(0.0005)
    raise AssertionError("the export neither reached the awaited state nor ended")


def staged_since(parent: Path, before: set[Path]) -> bool:
    """Whether an export started staging in ``parent`` since ``before`` was listed."""
    return bool(set(staging_dirs(parent)) - before)


def read_stderr(process: subprocess.Popen[bytes]) -> str:
    return process.stderr.read().decode("utf-8", "replace") if process.stderr else ""


# ---------------------------------------------------------------------------
# The checks themselves must be able to fail.


def test_the_log_check_catches_lost_acknowledgements_and_half_batches(tmp_path: Path) -> None:
    town = Town.from_seed(b"check the checker", origin=ORIGIN)
    with create_log(tmp_path / "data", town, setup=True) as log:
        setup_size = log.size
        verifier_key = log.verifier_key
        stored = Batch.of(0, [town.award("resident-01", "clean-pond") for _ in range(3)])
        result = log.append(stored.envelopes, now_ms=town.now_ms)
    journal = Journal(verifier_key)
    journal.sending(stored, resubmission=False)
    journal.acknowledged(stored, result.seqs, result.checkpoint.note)
    view, problems = check_log(tmp_path / "data", journal, setup_size, None)
    assert problems == [] and view is not None and view.stored == {0}

    # A batch of which only some envelopes are in the log is not atomic.
    half = Batch.of(1, [stored.envelopes[0], town.award("resident-02", "litter")])
    journal.sending(half, resubmission=False)
    # An acknowledgement for a seq beyond the log is a lost entry.
    lost = Batch.of(2, [town.award("resident-03", "clean-pond")])
    journal.sending(lost, resubmission=False)
    journal.acknowledged(lost, [setup_size + 3], result.checkpoint.note)
    _, problems = check_log(tmp_path / "data", journal, setup_size, None)
    text = "\n".join(problems + journal.take_problems())
    assert "batch 1 is half stored" in text
    assert "acknowledged seqs are missing" in text
    assert f"seq {setup_size + 3} acknowledged with a checkpoint of only" in text

    # An acknowledged seq that now holds another envelope.
    other = Journal(verifier_key)
    swapped = Batch.of(0, list(reversed(stored.envelopes)))
    other.sending(swapped, resubmission=False)
    other.acknowledged(swapped, result.seqs, result.checkpoint.note)
    _, problems = check_log(tmp_path / "data", other, setup_size, None)
    assert f"seq {setup_size} no longer holds the envelope acknowledged there" in problems


def test_the_bundle_check_refuses_partial_bundles(tmp_path: Path) -> None:
    town = Town.from_seed(b"partial bundles", origin=ORIGIN)
    with create_log(tmp_path / "data", town, setup=True) as log:
        log_key = log.verifier_key
    complete = tmp_path / "complete"
    exported = run_command(
        "redlist-node", "export", "--data", tmp_path / "data", "--out", complete, "--full"
    )
    assert exported.returncode == 0, exported.stderr
    assert check_bundle_dir(complete, log_key, ORIGIN) == []

    no_manifest = tmp_path / "no-manifest"
    shutil.copytree(complete, no_manifest)
    (no_manifest / bundle.MANIFEST_FILE).unlink()
    assert check_bundle_dir(no_manifest, log_key, ORIGIN)

    truncated = tmp_path / "truncated"
    shutil.copytree(complete, truncated)
    leaves = (truncated / bundle.LEAVES_FILE).read_bytes()
    (truncated / bundle.LEAVES_FILE).write_bytes(leaves[: len(leaves) // 2])
    assert check_bundle_dir(truncated, log_key, ORIGIN)

    with Log.open(tmp_path / "data") as log:
        log.append([town.award("resident-04", "clean-pond")], now_ms=town.now_ms)
        newer = log.checkpoint()
    stale = tmp_path / "stale"
    shutil.copytree(complete, stale)
    (stale / bundle.CHECKPOINT_FILE).write_bytes(newer.to_bytes())
    assert check_bundle_dir(stale, log_key, ORIGIN)
