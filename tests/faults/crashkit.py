"""Crash-test kit: a real node in a subprocess, submitters that keep score, and the checks.

DESIGN 7 promises that nothing acknowledged is ever lost: kill -9 a node at any
moment, restart it, and every seq ``Submit`` ever returned is still there, holding
the same envelope, and the log verifies. ``test_crash.py`` runs that experiment in
rounds; this module holds its parts:

* :class:`CrashSettings`: how long to run and the seed, from ``REDLIST_CRASH_*``
  environment variables (``make soak`` raises them);
* :func:`make_town_dir`: a data directory made the way a town makes one
  (``redlist-node init``), with the staff keys and rules registered;
* :class:`NodeProcess`: ``redlist-node serve`` in a subprocess, killed with SIGKILL;
* :class:`Journal` and :class:`Submitter`: threads streaming batches of signed
  awards over gRPC, recording every batch sent and every answer received;
* :func:`check_log`: what the data directory holds after a kill, compared with the
  journal (acknowledged seqs present byte for byte, batches all or nothing, no
  duplicates, hash chain, Merkle root, signed checkpoint);
* :func:`verify_offline`: ``export_full`` and the auditor's CLI over the result;
* :func:`check_bundle_dir`: whether a directory is a complete, sound bundle (for
  exports killed half way).

Checks return lists of problems (empty when all is well) rather than raising, so
one failure report lists everything that went wrong in a round, with the seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from tests.builders import Town, submit_request

from redlist.ledger import bundle, keyfile, merkle
from redlist.ledger.entry import ZERO_HASH, Leaf
from redlist.ledger.errors import RedlistError
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import open_checkpoint
from redlist.ledger.note.keys import VerifierKey
from redlist.node.export import export_full
from redlist.v1 import ledger_pb2_grpc
from redlist.verifier import cli as verifier_cli

BIN = Path(sys.executable).parent
ORIGIN = "crash.example/redlist"
#: Accounts the awards go to; few, so balances move a lot.
ACCOUNTS = tuple(f"resident-{number:02d}" for number in range(24))
#: Rules the awards use: bonuses, deductions and one that needs the council quorum.
RULES = ("clean-pond", "epidemic-duty", "litter", "burn-straw", "mediate-dispute")
#: Longest a single Submit may take before the test calls the node hung.
SUBMIT_TIMEOUT_S = 20.0
#: Longest a node may take to print its address after being started.
START_TIMEOUT_S = 60.0

_SERVING = re.compile(r"^serving log (\S+) \((\d+) entries\) on (\S+)$", re.MULTILINE)


# ---------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class CrashSettings:
    """How long and how hard to push; ``from_environment`` lists the variables that set it."""

    seed: int
    rounds: int
    seconds: float
    min_rounds: int
    max_kill_ms: float
    verify_every: int
    startup_kill_chance: float
    resubmit_chance: float
    export_kills: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> CrashSettings:
        """Settings from ``REDLIST_CRASH_*`` variables, bounded defaults for ``make test``.

        * ``REDLIST_CRASH_SEED``: the seed (default: a fresh random one, printed);
        * ``REDLIST_CRASH_ROUNDS``: kill -9 rounds (default 10);
        * ``REDLIST_CRASH_SECONDS``: no new round starts after this many seconds
          (default 30), though at least 3 rounds always run;
        * ``REDLIST_CRASH_KILL_MS``: the kill comes 0 to this many ms after the
          submitters start (default 300);
        * ``REDLIST_CRASH_VERIFY_EVERY``: export and run the verifier every N rounds
          (default 5) and after the last;
        * ``REDLIST_CRASH_EXPORT_KILLS``: exports killed half way (default 6).
        """
        seed_text = environ.get("REDLIST_CRASH_SEED", "").strip()
        seed = (
            _whole(seed_text, "REDLIST_CRASH_SEED")
            if seed_text
            else random.SystemRandom().randrange(1 << 32)
        )
        if not 0 <= seed < 1 << 64:
            raise ValueError(f"REDLIST_CRASH_SEED must be between 0 and 2**64 - 1, not {seed}")
        return cls(
            seed=seed,
            rounds=_env_int(environ, "REDLIST_CRASH_ROUNDS", 10, minimum=1),
            seconds=float(_env_int(environ, "REDLIST_CRASH_SECONDS", 30, minimum=1)),
            min_rounds=3,
            max_kill_ms=float(_env_int(environ, "REDLIST_CRASH_KILL_MS", 300, minimum=0)),
            verify_every=_env_int(environ, "REDLIST_CRASH_VERIFY_EVERY", 5, minimum=1),
            startup_kill_chance=0.15,
            resubmit_chance=0.15,
            export_kills=_env_int(environ, "REDLIST_CRASH_EXPORT_KILLS", 6, minimum=1),
        )

    def reproduce(self, test: str) -> str:
        """The command that replays this run's random choices (kill timing aside)."""
        variables = (
            f"REDLIST_CRASH_SEED={self.seed} REDLIST_CRASH_ROUNDS={self.rounds} "
            f"REDLIST_CRASH_SECONDS={self.seconds:g} REDLIST_CRASH_KILL_MS={self.max_kill_ms:g} "
            f"REDLIST_CRASH_VERIFY_EVERY={self.verify_every} "
            f"REDLIST_CRASH_EXPORT_KILLS={self.export_kills}"
        )
        return f"{variables} .venv/bin/pytest 'tests/faults/test_crash.py::{test}'"


def seeded_random(seed: int) -> random.Random:
    """A generator for the run's schedule (sizes, delays, retries): replayable, not secret."""
    return random.Random(seed)  # noqa: S311


def _env_int(environ: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    text = environ.get(name, "").strip()
    value = _whole(text, name) if text else default
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")
    return value


def _whole(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {text!r}") from None


# ---------------------------------------------------------------------------
# The town's data directory and the node process


@dataclass(frozen=True)
class TownDir:
    """A data directory ready to serve: genesis, staff keys and rules stored."""

    data: Path
    log_key: VerifierKey
    setup_size: int


def run_command(*argv: str | Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run one of the installed console scripts (``redlist-node ...``) to completion."""
    program, *rest = argv
    return subprocess.run(
        [BIN / program, *rest], capture_output=True, text=True, timeout=timeout, check=False
    )


def make_town_dir(root: Path, town: Town) -> TownDir:
    """``redlist-node init`` a log for ``town`` under ``root``, then register its staff.

    The admin key file holds ``town.admin``, so ``town.setup()`` (signed by that
    admin) registers the grid, council and cashier keys and the standard rules.
    """
    admin_file = root / "admin.pem"
    keyfile.write_key_files(admin_file, town.admin, "crash-test admin")
    data = root / "data"
    done = run_command(
        "redlist-node", "init", "--data", data, "--origin", town.origin,
        "--admin-key", admin_file, "--genesis-at", str(town.now_ms),
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"redlist-node init failed ({done.returncode}): {done.stderr}")
    with Log.open(data) as log:
        log.append(town.setup(), now_ms=town.now_ms)
        return TownDir(data, log.verifier_key, log.size)


@dataclass(frozen=True)
class Serving:
    """What a node printed once it served: its address and its log's size at start."""

    address: str
    entries: int


class NodeProcess:
    """``redlist-node serve --listen 127.0.0.1:0`` in a subprocess, to be killed.

    Its stdout and stderr go to files under ``logs`` (named after ``name``), so a
    failure report can quote what the node said. Use it as a context manager: the
    process is killed on the way out whatever happened.
    """

    def __init__(self, process: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> None:
        self.process = process
        self.stdout = stdout
        self.stderr = stderr

    @classmethod
    def spawn(cls, data: Path, logs: Path, name: str, *options: str | Path) -> NodeProcess:
        """Start ``redlist-node serve`` on ``data``, with ``options`` after the usual ones."""
        logs.mkdir(parents=True, exist_ok=True)
        stdout, stderr = logs / f"{name}.out", logs / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [
                    BIN / "redlist-node", "serve", "--data", data,
                    "--listen", "127.0.0.1:0", "--log-level", "warning", *options,
                ],
                stdout=out,
                stderr=err,
            )  # fmt: skip
        return cls(process, stdout, stderr)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()

    def wait_serving(self, timeout: float = START_TIMEOUT_S) -> Serving:
        """Wait for the "serving log ..." line; fail with the node's stderr if it dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _SERVING.search(self.stdout.read_text(encoding="utf-8", errors="replace"))
            if match:
                return Serving(address=match[3], entries=int(match[2]))
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the node exited with status {self.process.returncode} before serving:\n"
                    f"{self.stderr_tail()}"
                )
            time.sleep(0.005)
        raise AssertionError(f"the node did not serve within {timeout} s:\n{self.stderr_tail()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the node (a graceful stop) and return its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the node (if still running) and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            text = self.stderr.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no stderr)"
        return "\n".join(text.splitlines()[-lines:]) or "(stderr empty)"


# ---------------------------------------------------------------------------
# Batches, the journal and the submitters


@dataclass(frozen=True)
class Batch:
    """One Submit request: its number in the run and its pre-signed envelopes."""

    number: int
    envelopes: tuple[bytes, ...]
    digests: tuple[bytes, ...]

    @classmethod
    def of(cls, number: int, envelopes: Sequence[bytes]) -> Batch:
        return cls(number, tuple(envelopes), tuple(_digest(envelope) for envelope in envelopes))


class BatchFactory:
    """New batches of signed awards with unique entry ids (the town's id counter)."""

    def __init__(self, town: Town, rng: random.Random, max_size: int = 40) -> None:
        self._town = town
        self._rng = rng
        self._max_size = max_size
        self._next_number = 0

    def batches(self, count: int) -> list[Batch]:
        made = []
        for _ in range(count):
            size = self._rng.randint(1, self._max_size)
            envelopes = [
                self._town.award(
                    self._rng.choice(ACCOUNTS),
                    self._rng.choice(RULES),
                    self._rng.randint(1, 3),
                    note=f"crash batch {self._next_number}",
                )
                for _ in range(size)
            ]
            made.append(Batch.of(self._next_number, envelopes))
            self._next_number += 1
        return made


@dataclass
class Tally:
    """Counts for the run's summary."""

    sends: int = 0
    resubmissions: int = 0
    acks: int = 0
    in_doubt: int = 0


class Journal:
    """Every batch sent and every answer received, across all rounds. Thread-safe.

    An answer is checked as it arrives: the seqs match the batch, the checkpoint
    is signed by the log key and covers them, a batch answered twice gets the same
    seqs, a seq is never given to two envelopes nor an envelope two seqs, and two
    acknowledged checkpoints of one size have one root.
    """

    def __init__(self, log_key: VerifierKey) -> None:
        self._log_key = log_key
        self._lock = threading.Lock()
        self.batches: dict[int, Batch] = {}
        self.answers: dict[int, tuple[int, ...]] = {}
        self.acked: dict[int, bytes] = {}  # seq -> envelope
        self._seq_of: dict[bytes, int] = {}  # envelope digest -> seq
        self.roots: dict[int, bytes] = {}  # size -> root, from acknowledged checkpoints
        self.error_codes: Counter[str] = Counter()
        self.tally = Tally()
        self._in_doubt: list[int] = []
        self._problems: list[str] = []

    def sending(self, batch: Batch, *, resubmission: bool) -> None:
        with self._lock:
            self.batches.setdefault(batch.number, batch)
            self.tally.sends += 1
            self.tally.resubmissions += resubmission

    def acknowledged(self, batch: Batch, seqs: Sequence[int], checkpoint_text: str) -> None:
        seqs = tuple(seqs)
        problems = []
        try:
            checkpoint = open_checkpoint(checkpoint_text, self._log_key)
        except RedlistError as error:
            problems.append(f"batch {batch.number}: its checkpoint does not verify: {error}")
            checkpoint = None
        if len(seqs) != len(batch.envelopes):
            problems.append(
                f"batch {batch.number}: {len(batch.envelopes)} envelopes answered with "
                f"{len(seqs)} seqs"
            )
        elif checkpoint is not None and seqs and max(seqs) >= checkpoint.size:
            problems.append(
                f"batch {batch.number}: seq {max(seqs)} acknowledged with a checkpoint of "
                f"only {checkpoint.size} entries"
            )
        with self._lock:
            self.tally.acks += 1
            earlier = self.answers.setdefault(batch.number, seqs)
            if earlier != seqs:
                problems.append(
                    f"batch {batch.number}: answered {seqs} after being answered {earlier}"
                )
            for seq, envelope, digest in zip(seqs, batch.envelopes, batch.digests, strict=False):
                known = self.acked.setdefault(seq, envelope)
                if known != envelope:
                    problems.append(f"seq {seq} acknowledged for two different envelopes")
                placed = self._seq_of.setdefault(digest, seq)
                if placed != seq:
                    problems.append(f"one envelope acknowledged at seq {placed} and at seq {seq}")
            if checkpoint is not None:
                root = self.roots.setdefault(checkpoint.size, checkpoint.root)
                if root != checkpoint.root:
                    problems.append(
                        f"two acknowledged checkpoints of size {checkpoint.size} differ: "
                        f"{root.hex()} and {checkpoint.root.hex()}"
                    )
            self._problems.extend(problems)

    def failed(self, batch: Batch, error: grpc.RpcError, *, after_kill: bool) -> None:
        code = _status_name(error)
        with self._lock:
            self.error_codes[code] += 1
            if after_kill:
                self.tally.in_doubt += 1
                self._in_doubt.append(batch.number)
            else:
                details = error.details() if isinstance(error, grpc.Call) else str(error)
                self._problems.append(
                    f"batch {batch.number} failed before any kill: {code}: {details}"
                )

    def take_in_doubt(self) -> list[int]:
        """The batches whose call failed after a kill, since the last time asked."""
        with self._lock:
            numbers, self._in_doubt = self._in_doubt, []
            return numbers

    def problem(self, text: str) -> None:
        with self._lock:
            self._problems.append(text)

    def take_problems(self) -> list[str]:
        with self._lock:
            problems, self._problems = self._problems, []
            return problems


class Submitter(threading.Thread):
    """Streams batches to one node until a call fails (the node was killed).

    It sends its ``fresh`` batches in order, and with probability ``resubmit_chance``
    picks one from ``history`` instead (earlier rounds' batches, acknowledged or
    in doubt, and its own from this round) and sends it again, exactly as before:
    a retry, which must get the batch's first seqs back if it was stored.
    """

    def __init__(
        self,
        name: str,
        address: str,
        fresh: Sequence[Batch],
        history: Sequence[Batch],
        journal: Journal,
        killed: threading.Event,
        rng: random.Random,
        resubmit_chance: float,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._address = address
        self._fresh = list(fresh)
        self._history = list(history)
        self._journal = journal
        self._killed = killed
        self._rng = rng
        self._resubmit_chance = resubmit_chance

    def run(self) -> None:
        try:
            with grpc.insecure_channel(self._address) as channel:
                stub = ledger_pb2_grpc.LedgerStub(channel)
                self._stream(stub)
        except Exception as error:  # reported, so the test fails instead of hanging
            self._journal.problem(f"{self.name} crashed: {error!r}")

    def _stream(self, stub: ledger_pb2_grpc.LedgerStub) -> None:
        while True:
            choice = self._next()
            if choice is None:
                return
            batch, resubmission = choice
            self._journal.sending(batch, resubmission=resubmission)
            request = submit_request(batch.envelopes)
            try:
                response = stub.Submit(request, timeout=SUBMIT_TIMEOUT_S)
            except grpc.RpcError as error:
                self._journal.failed(batch, error, after_kill=self._killed.is_set())
                return
            self._journal.acknowledged(batch, response.seqs, response.checkpoint)
            if not resubmission:
                self._history.append(batch)

    def _next(self) -> tuple[Batch, bool] | None:
        resubmit = bool(self._history) and (
            not self._fresh or self._rng.random() < self._resubmit_chance
        )
        if resubmit:
            return self._rng.choice(self._history), True
        if self._fresh:
            return self._fresh.pop(0), False
        return None


def _status_name(error: grpc.RpcError) -> str:
    if isinstance(error, grpc.Call):
        return str(error.code().name)
    return type(error).__name__


# ---------------------------------------------------------------------------
# Checking what survived


@dataclass(frozen=True)
class LogView:
    """What one check of the data directory found."""

    size: int
    root: bytes
    stored: frozenset[int]  # the batches stored whole, by number
    batches_missing: int
    acked_checked: int


def check_log(
    data: Path, journal: Journal, setup_size: int, before: LogView | None
) -> tuple[LogView | None, list[str]]:
    """Compare the stored log with the journal; return what was seen and every problem.

    Reads the whole log: every leaf's seq, hash chain link and time; every
    acknowledged seq holds the acknowledged envelope byte for byte; no envelope is
    stored twice; every entry after the setup comes from a batch that was sent;
    every batch sent is stored whole or not at all; the Merkle root of the leaves
    equals the root of the latest checkpoint, which the log key signs, and the root
    of every acknowledged checkpoint (and of the previous check) at its size.
    """
    problems: list[str] = []
    try:
        log = Log.open(data, readonly=True)
    except RedlistError as error:
        return None, [f"the data directory cannot be opened: {error.diagnostics()}"]
    with log:
        try:
            checkpoint = log.checkpoint()
        except RedlistError as error:
            return None, [f"the latest checkpoint does not verify: {error.diagnostics()}"]
        wanted = dict(journal.roots)
        if before is not None:
            wanted[before.size] = before.root
        sent = {digest for batch in journal.batches.values() for digest in batch.digests}
        stored: dict[bytes, int] = {}
        tree = merkle.CompactRange()
        prev, last_time = ZERO_HASH, 0
        for seq, raw in log.leaves(0, log.size):
            leaf = Leaf.from_bytes(raw)
            if leaf.seq != seq:
                problems.append(f"the leaf at position {seq} names seq {leaf.seq}")
            if leaf.prev != prev:
                problems.append(f"seq {seq}: the hash chain is broken")
            if leaf.time < last_time:
                problems.append(f"seq {seq}: the node's time went back")
            digest = _digest(leaf.envelope)
            if digest in stored:
                problems.append(f"seq {seq} repeats the envelope of seq {stored[digest]}")
            stored.setdefault(digest, seq)
            if seq >= setup_size and digest not in sent:
                problems.append(f"seq {seq} holds an envelope that was never sent")
            acked = journal.acked.get(seq)
            if acked is not None and acked != leaf.envelope:
                problems.append(f"seq {seq} no longer holds the envelope acknowledged there")
            prev, last_time = merkle.leaf_hash(raw), leaf.time
            tree.append(prev)
            root = wanted.get(tree.end)
            if root is not None and tree.root() != root:
                problems.append(
                    f"the log at size {tree.end} no longer has the root that was acknowledged "
                    "or seen before the kill"
                )
    size = tree.end
    if (checkpoint.size, checkpoint.root) != (size, tree.root()):
        problems.append(
            f"the latest checkpoint (size {checkpoint.size}) does not match the {size} "
            "stored leaves"
        )
    lost = sorted(seq for seq in journal.acked if seq >= size)
    if lost:
        problems.append(
            f"{len(lost)} acknowledged seqs are missing (the log has {size} entries): "
            f"{_short_list(lost)}"
        )
    if before is not None and size < before.size:
        problems.append(f"the log shrank from {before.size} to {size} entries")
    stored_batches: set[int] = set()
    missing_batches = 0
    for batch in journal.batches.values():
        present = sum(digest in stored for digest in batch.digests)
        if present == len(batch.digests):
            stored_batches.add(batch.number)
        elif present == 0:
            missing_batches += 1
        else:
            problems.append(
                f"batch {batch.number} is half stored: {present} of {len(batch.digests)} "
                "envelopes (a batch is atomic)"
            )
        if batch.number in journal.answers and present != len(batch.digests):
            problems.append(f"batch {batch.number} was acknowledged but is not stored whole")
    view = LogView(
        size, tree.root(), frozenset(stored_batches), missing_batches, len(journal.acked)
    )
    return view, problems


def verify_offline(data: Path, out: Path, log_key: VerifierKey) -> tuple[int, list[str]]:
    """Export a full bundle of ``data`` to ``out`` and run ``redlist-verify bundle`` on it.

    Also runs ``redlist-node check --full`` (the store against itself: indexes,
    balances, every Merkle node). Returns the bundle's tree size and any problems.
    """
    with Log.open(data, readonly=True) as log:
        result = export_full(log, out)
    printed, said = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(said):
        code = verifier_cli.main(["bundle", str(out), "--log-key", log_key.encode(), "--json"])
    problems = []
    if code != 0:
        problems.append(f"redlist-verify exited {code}: {printed.getvalue()}{said.getvalue()}")
    else:
        report: dict[str, Any] = json.loads(printed.getvalue())
        if not report.get("ok") or report.get("tree_size") != result.manifest.end:
            problems.append(f"redlist-verify reported {report}")
    checked = run_command("redlist-node", "check", "--data", data, "--full")
    if checked.returncode != 0:
        problems.append(
            f"redlist-node check --full exited {checked.returncode}: "
            f"{checked.stdout}{checked.stderr}"
        )
    return result.manifest.end, problems


# ---------------------------------------------------------------------------
# Bundles left behind by killed exports


def check_bundle_dir(out: Path, log_key: VerifierKey, origin: str) -> list[str]:
    """Problems that keep ``out`` from being a complete, sound full bundle (none: it is).

    Exactly the files an export writes; the manifest decodes; the checkpoint is
    signed by the log key at the manifest's end; the leaves file holds exactly that
    many leaves, each naming its seq, whose Merkle root is the checkpoint's root.
    """
    expected = {bundle.MANIFEST_FILE, bundle.CHECKPOINT_FILE, bundle.LEAVES_FILE}
    found = {path.name for path in out.iterdir()}
    if found != expected:
        return [f"{out} holds {sorted(found)}, not exactly {sorted(expected)}"]
    try:
        manifest = bundle.decode_manifest((out / bundle.MANIFEST_FILE).read_bytes())
        checkpoint = open_checkpoint((out / bundle.CHECKPOINT_FILE).read_bytes(), log_key)
        leaves = bundle.decode_leaves((out / bundle.LEAVES_FILE).read_bytes())
    except RedlistError as error:
        return [f"{out} is not a sound bundle: {error.diagnostics()}"]
    problems = []
    if (manifest.origin, manifest.start) != (origin, 0) or manifest.end != checkpoint.size:
        problems.append(f"{out}: manifest {manifest} does not match checkpoint {checkpoint}")
    if len(leaves) != manifest.end:
        problems.append(f"{out}: {len(leaves)} leaves, the manifest says {manifest.end}")
    tree = merkle.CompactRange()
    for seq, raw in enumerate(leaves):
        if Leaf.from_bytes(raw).seq != seq:
            problems.append(f"{out}: leaf {seq} names another seq")
            break
        tree.append(merkle.leaf_hash(raw))
    if tree.root() != checkpoint.root:
        problems.append(f"{out}: the leaves do not have the checkpoint's root")
    return problems


def staging_dirs(parent: Path) -> list[Path]:
    """The hidden staging directories exports left in ``parent`` (``.NAME.*.partial``)."""
    return sorted(path for path in parent.iterdir() if path.name.startswith(".") and path.is_dir())


def spawn_export(data: Path, out: Path) -> subprocess.Popen[bytes]:
    """``redlist-node export --full`` in a subprocess (output discarded)."""
    return subprocess.Popen(
        [BIN / "redlist-node", "export", "--data", data, "--out", out, "--full"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


# ---------------------------------------------------------------------------
# Small helpers


def _digest(envelope: bytes) -> bytes:
    return hashlib.sha256(envelope).digest()


def _short_list(values: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(value) for value in values[:limit])
    return shown + (f" ... ({len(values) - limit} more)" if len(values) > limit else "")
