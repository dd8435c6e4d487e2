"""Power cuts: a real node, and a witness it asks, lose nothing they acknowledged.

SIGKILL (``test_crash.py``) never loses the page cache, so it cannot show that what
``Submit`` acknowledged was on the disk. Here the data directories live on the
power-cut file system (``powercutfs.py``): writes reach the backing directory only
when synced, and a cut drops the rest, sometimes tearing the last write.

Each round mounts the file system over the same backing directory and starts, on it,
a witness (``serve --witness-key ... --witness-for``) and the town's node asking it
(``--ask-witness``, every commit). Two threads stream batches of signed awards at the
node (some resent, as a retrying client would, ``crashkit.Submitter``), and a third
polls the node's checkpoint and keeps the largest size the witness cosigned. After a
random delay the power is cut, and at the same instant both nodes get SIGKILL; the
file system is unmounted, mounted again (an empty page cache), and checked:

* the log against everything ever acknowledged (``crashkit.check_log``: every
  acknowledged seq holds its envelope byte for byte, batches all or nothing, the hash
  chain, the Merkle root, the signed checkpoint, never shrinking);
* the witness's state: its head for the town's log is at least every size it
  cosigned, and the witness starts again (its journal guard, ADR 0021, does not take
  the cut for a rollback);
* every few rounds and at the end, ``redlist-verify`` on an export and
  ``redlist-node check --full``.

A second test cuts the power under ``redlist-node export`` writing to the mount:
``--out`` is then absent, or a complete bundle that verifies; never part of one.

``REDLIST_POWERCUT_ROUNDS`` (default 3), ``REDLIST_POWERCUT_SEED``,
``REDLIST_POWERCUT_KILL_MS`` (default 400) and ``REDLIST_POWERCUT_EXPORT_CUTS``
(default 3) size the run; ``make soak`` runs 200 rounds. The seed is printed on
failure; where a cut lands also depends on the machine.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from tests.builders import Town, create_log
from tests.faults.crashkit import (
    BIN,
    ORIGIN,
    BatchFactory,
    Journal,
    LogView,
    NodeProcess,
    Submitter,
    TownDir,
    check_bundle_dir,
    check_log,
    make_town_dir,
    seeded_random,
    staging_dirs,
    verify_offline,
)
from tests.faults.powercut import PowerCutMount, require_fuse

from redlist.ledger import keyfile
from redlist.ledger.crypto import SigningKey
from redlist.ledger.errors import RedlistError
from redlist.ledger.log import Log
from redlist.ledger.note.checkpoint import SignedCheckpoint
from redlist.ledger.note.cosignature import verify_cosignature
from redlist.ledger.note.keys import NoteSigner, VerifierKey
from redlist.ledger.witnessstore import WitnessStore
from redlist.v1 import ledger_pb2, ledger_pb2_grpc

SUBMITTERS = 2
FRESH_BATCHES = 30
WITNESS_NAME = "powercut-witness"
_MIRRORING = re.compile(r"^mirroring log \S+ \(\d+ entries\) from \S+ on (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class PowerCutSettings:
    seed: int
    rounds: int
    max_cut_ms: int
    verify_every: int
    export_cuts: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> PowerCutSettings:
        def number(name: str, default: int) -> int:
            text = environ.get(name, "").strip()
            return int(text) if text else default

        seed_text = environ.get("REDLIST_POWERCUT_SEED", "").strip()
        return cls(
            seed=int(seed_text) if seed_text else random.SystemRandom().randrange(1 << 32),
            rounds=max(1, number("REDLIST_POWERCUT_ROUNDS", 3)),
            max_cut_ms=max(0, number("REDLIST_POWERCUT_KILL_MS", 400)),
            verify_every=max(1, number("REDLIST_POWERCUT_VERIFY_EVERY", 5)),
            export_cuts=max(1, number("REDLIST_POWERCUT_EXPORT_CUTS", 3)),
        )

    def replay(self, test: str) -> str:
        return (
            f"REDLIST_POWERCUT_SEED={self.seed} REDLIST_POWERCUT_ROUNDS={self.rounds} "
            f"REDLIST_POWERCUT_KILL_MS={self.max_cut_ms} "
            f"REDLIST_POWERCUT_EXPORT_CUTS={self.export_cuts} "
            f".venv/bin/pytest 'tests/faults/test_powercut.py::{test}'"
        )


@pytest.fixture(scope="module")
def settings() -> PowerCutSettings:
    require_fuse()
    return PowerCutSettings.from_environment()


def fail_unless(ok: bool, settings: PowerCutSettings, test: str, where: str, problems: list[str]):
    if not ok:
        lines = [f"{where} (seed {settings.seed}):", *(f"  - {p}" for p in problems[:30])]
        pytest.fail("\n".join([*lines, f"replay with: {settings.replay(test)}"]))


class CosignatureWatch(threading.Thread):
    """Polls a node's checkpoint; keeps the largest size served, and the largest the
    witness cosigned (``witness`` None: served sizes only, as for a mirror)."""

    def __init__(self, address: str, log_key: VerifierKey, witness: VerifierKey | None) -> None:
        super().__init__(name=f"checkpoint-watch-{address}", daemon=True)
        self._address = address
        self._log_key = log_key
        self._witness = witness
        self.stopped = threading.Event()
        self.largest = 0
        self.served = 0
        self.problems: list[str] = []

    def run(self) -> None:
        with grpc.insecure_channel(self._address) as channel:
            stub = ledger_pb2_grpc.LedgerStub(channel)
            while not self.stopped.is_set():
                try:
                    note = stub.GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=5)
                except grpc.RpcError:
                    return  # the power is gone
                try:
                    signed = SignedCheckpoint(note.checkpoint, self._log_key)
                    self.served = max(self.served, signed.size)
                    witness = self._witness
                    if witness is not None and any(
                        line.is_by(witness) for line in signed.signatures
                    ):
                        verify_cosignature(signed, witness)
                        self.largest = max(self.largest, signed.size)
                except RedlistError as error:
                    self.problems.append(f"a served checkpoint: {error.diagnostics()}")
                time.sleep(0.01)


class PowerCutRun:
    """The town's node and its witness on one backing directory, cut round after round."""

    def __init__(self, root: Path, settings: PowerCutSettings) -> None:
        self.root = root
        self.settings = settings
        self.rng = seeded_random(settings.seed)
        town = Town.from_seed(settings.seed.to_bytes(8, "big"), origin=ORIGIN)
        (root / "made").mkdir()
        made = make_town_dir(root / "made", town)
        self.backing = root / "backing"
        shutil.copytree(made.data, self.backing / "data")
        self.town_dir = TownDir(Path("data"), made.log_key, made.setup_size)
        with create_log(self.backing / "witness", Town.generate("witness.example/log")):
            pass
        key = SigningKey.generate()
        self.witness_key_file = root / "witness.pem"
        keyfile.write_key_files(self.witness_key_file, key, WITNESS_NAME)
        self.witness_vkey = NoteSigner(WITNESS_NAME, key).cosignature_verifier()
        self.journal = Journal(made.log_key)
        self.factory = BatchFactory(town, self.rng)
        self.view: LogView | None = None
        self.cosigned = 0  # the largest size the witness ever cosigned
        self.mirror_served = 0  # the largest size the mirror ever served
        self.mirror_sizes: list[int] = []
        self.rounds = self.verifies = self.torn = 0
        self.dropped_bytes = self.torn_bytes = 0
        self.witness_sizes: list[int] = []
        self.logs = root / "logs"

    def mount(self, name: str) -> PowerCutMount:
        return PowerCutMount(self.backing, self.root / "mnt", self.logs, name)

    def fail(self, where: str, problems: list[str]) -> None:
        fail_unless(
            not problems,
            self.settings,
            "test_power_cuts_lose_nothing_acknowledged",
            where,
            problems,
        )

    def round(self) -> None:
        self.rounds += 1
        where = f"round {self.rounds}"
        with self.mount(f"fs-{self.rounds}") as mount:
            data, witness_data = mount.mount / "data", mount.mount / "witness"
            witness = NodeProcess.spawn(
                witness_data, self.logs, f"witness-{self.rounds}",
                "--witness-key", self.witness_key_file,
                "--witness-for", self.journal_log_key(),
            )  # fmt: skip
            with witness:
                witness_address = witness.wait_serving().address
                node = NodeProcess.spawn(
                    data, self.logs, f"node-{self.rounds}",
                    "--ask-witness", witness_address, self.witness_vkey.encode(),
                    "--cosign-interval", "0",
                )  # fmt: skip
                with node:
                    serving = node.wait_serving()
                    expected = self.size
                    if serving.entries != expected:
                        self.fail(where, [f"restarted with {serving.entries}, not {expected}"])
                    with self.spawn_mirror(mount.mount / "mirror", serving.address) as mirror:
                        mirror_address = self.wait_mirroring(mirror)
                        processes = [node, witness, mirror]
                        self.load_and_cut(mount, serving.address, mirror_address, processes, where)
        self.check(where)

    def spawn_mirror(self, data: Path, upstream: str) -> NodeProcess:
        """``redlist-node mirror`` of the town's log into ``data`` (created on first use)."""
        name = f"mirror-{self.rounds}"
        stdout, stderr = self.logs / f"{name}.out", self.logs / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [BIN / "redlist-node", "mirror", "--data", data, "--from", upstream,
                 "--log-key", self.journal_log_key(), "--listen", "127.0.0.1:0",
                 "--log-level", "warning"],
                stdout=out,
                stderr=err,
            )  # fmt: skip
        return NodeProcess(process, stdout, stderr)

    def wait_mirroring(self, mirror: NodeProcess) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            match = _MIRRORING.search(mirror.stdout.read_text(errors="replace"))
            if match:
                return match[1]
            if mirror.process.poll() is not None:
                self.fail("starting the mirror", [mirror.stderr_tail()])
            time.sleep(0.01)
        self.fail("starting the mirror", ["it did not serve within 60 s", mirror.stderr_tail()])
        raise AssertionError  # not reached

    def journal_log_key(self) -> str:
        return self.town_dir.log_key.encode()

    @property
    def size(self) -> int:
        return self.town_dir.setup_size if self.view is None else self.view.size

    def load_and_cut(
        self,
        mount: PowerCutMount,
        address: str,
        mirror_address: str,
        processes: list[NodeProcess],
        where: str,
    ) -> None:
        killed = threading.Event()
        history = list(self.journal.batches.values())
        submitters = [
            Submitter(
                f"submitter-{number}",
                address,
                self.factory.batches(FRESH_BATCHES),
                history,
                self.journal,
                killed,
                seeded_random(self.rng.getrandbits(64)),
                0.15,
            )
            for number in range(SUBMITTERS)
        ]
        watch = CosignatureWatch(address, self.town_dir.log_key, self.witness_vkey)
        mirror_watch = CosignatureWatch(mirror_address, self.town_dir.log_key, None)
        delay = self.rng.uniform(0, self.settings.max_cut_ms / 1000)
        tear = self.rng.random() < 0.5
        for thread in (*submitters, watch, mirror_watch):
            thread.start()
        time.sleep(delay)
        killed.set()
        cut = mount.cut(tear=tear, seed=self.rng.getrandbits(32))
        for process in processes:
            process.kill()
        watch.stopped.set()
        mirror_watch.stopped.set()
        for thread in (*submitters, watch, mirror_watch):
            thread.join(timeout=60)
        self.torn += cut["torn_bytes"] > 0
        self.dropped_bytes += cut["dropped_bytes"]
        self.torn_bytes += cut["torn_bytes"]
        self.cosigned = max(self.cosigned, watch.largest)
        self.mirror_served = max(self.mirror_served, mirror_watch.served)
        threads = (*submitters, watch, mirror_watch)
        hung = [thread.name for thread in threads if thread.is_alive()]
        problems = hung + watch.problems + mirror_watch.problems
        self.fail(f"{where}, cut at {delay * 1000:.0f} ms", problems)

    def check(self, where: str) -> None:
        with self.mount(f"fs-{self.rounds}-check") as mount:
            data = mount.mount / "data"
            view, problems = check_log(data, self.journal, self.town_dir.setup_size, self.view)
            problems += self.journal.take_problems()
            store = None
            try:
                store = WitnessStore.open(mount.mount / "witness")
                head = store.head(self.town_dir.log_key)
                witnessed = 0 if head is None else head.size
            except RedlistError as error:
                problems.append(f"the witness's state cannot be opened: {error.diagnostics()}")
                witnessed = -1
            finally:
                if store is not None:
                    store.close()
            if witnessed < self.cosigned:
                problems.append(
                    f"the witness cosigned size {self.cosigned} but its state holds {witnessed}"
                )
            self.witness_sizes.append(witnessed)
            problems += self.check_mirror(mount.mount)
            self.fail(f"{where}, after the cut", problems)
            self.view = view
            if self.rounds % self.settings.verify_every == 0:
                self.verify(data, where)

    def check_mirror(self, mounted: Path) -> list[str]:
        """The mirror's copy: a signed prefix of the town's log, never behind what it served."""
        if not (mounted / "mirror").exists():
            return []  # the cut came before the mirror created its directory
        try:
            with Log.open(mounted / "mirror", readonly=True) as copy:
                copied = copy.checkpoint()
            with Log.open(mounted / "data", readonly=True) as log:
                original = log.checkpoint_at(copied.size)
        except RedlistError as error:
            return [f"the mirror's copy cannot be read: {error.diagnostics()}"]
        self.mirror_sizes.append(copied.size)
        problems = []
        if copied.size < self.mirror_served:
            problems.append(
                f"the mirror served size {self.mirror_served} but holds {copied.size} entries"
            )
        if original is None or original.root != copied.root:
            problems.append(f"the mirror's copy at size {copied.size} is not the town's log")
        return problems

    def verify(self, data: Path, where: str) -> None:
        out = self.root / "bundles" / f"verify-{self.verifies}"
        size, problems = verify_offline(data, out, self.town_dir.log_key)
        if size != self.size:
            problems.append(f"the bundle holds {size} entries, the log {self.size}")
        self.fail(f"{where}, full verification", problems)
        shutil.rmtree(out)
        self.verifies += 1


def test_power_cuts_lose_nothing_acknowledged(tmp_path: Path, settings: PowerCutSettings) -> None:
    started = time.monotonic()
    run = PowerCutRun(tmp_path, settings)
    while run.rounds < settings.rounds:
        run.round()
    with run.mount("fs-final") as mount:
        run.verify(mount.mount / "data", "the end")
    acked = len(run.journal.acked)
    run.fail("the run", [] if acked else ["nothing was acknowledged before a cut"])
    summary = {
        "seed": settings.seed,
        "rounds": run.rounds,
        "acknowledged_seqs": acked,
        "answers": run.journal.tally.acks,
        "in_doubt_batches": run.journal.tally.in_doubt,
        "lost": 0,
        "log_size": run.size,
        "cuts_with_torn_write": run.torn,
        "unsynced_bytes_dropped": run.dropped_bytes,
        "largest_size_cosigned": run.cosigned,
        "witness_state_size_at_end": run.witness_sizes[-1],
        "largest_size_mirror_served": run.mirror_served,
        "mirror_size_at_end": run.mirror_sizes[-1] if run.mirror_sizes else 0,
        "full_verifications": run.verifies,
        "seconds": round(time.monotonic() - started, 1),
    }
    print("powercut-summary " + json.dumps(summary, sort_keys=True))


def test_an_export_cut_off_is_absent_or_complete(
    tmp_path: Path, settings: PowerCutSettings
) -> None:
    test = "test_an_export_cut_off_is_absent_or_complete"
    rng = seeded_random(settings.seed)
    town = Town.from_seed(settings.seed.to_bytes(8, "big"), origin=ORIGIN)
    backing = tmp_path / "backing"
    with create_log(backing / "data", town, setup=True) as log:
        for batch in BatchFactory(town, rng, max_size=500).batches(24):
            log.append(batch.envelopes, now_ms=town.now_ms)
        log_key = log.verifier_key
    outcomes = {"absent": 0, "complete": 0}
    for number in range(settings.export_cuts):
        with PowerCutMount(backing, tmp_path / "mnt", tmp_path / "logs", f"fs-{number}") as mount:
            out = mount.mount / "exports" / f"bundle-{number}"
            out.parent.mkdir(exist_ok=True)
            process = subprocess.Popen(
                [BIN / "redlist-node", "export", "--data", mount.mount / "data", "--out", out,
                 "--full"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            # Most cuts aim at the phase where the bundle is written (a staging
            # directory exists), some anywhere from the start.
            if number % 3:
                deadline = time.monotonic() + 60
                while not staging_dirs(out.parent) and process.poll() is None:
                    assert time.monotonic() < deadline, "the export never started writing"
                    time.sleep(0.001)
                time.sleep(rng.uniform(0, 0.4))
            else:
                time.sleep(rng.uniform(0, 1.5))
            mount.cut(tear=rng.random() < 0.5, seed=rng.getrandbits(32))
            process.kill()
            process.wait(timeout=30)
        with PowerCutMount(backing, tmp_path / "mnt", tmp_path / "logs", f"fs-{number}-check") as m:
            out = m.mount / "exports" / f"bundle-{number}"
            if not out.exists():
                outcomes["absent"] += 1
                continue
            outcomes["complete"] += 1
            problems = check_bundle_dir(out, log_key, ORIGIN)
            fail_unless(not problems, settings, test, f"export {number} after a cut", problems)
            audited = subprocess.run(
                [BIN / "redlist-verify", "bundle", out, "--log-key", log_key.encode(), "--json"],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            fail_unless(
                audited.returncode == 0, settings, test, f"export {number}", [audited.stdout]
            )
            leftovers = staging_dirs(out.parent)
            assert all(path.name.endswith(".partial") for path in leftovers)
    print("powercut-export-summary " + json.dumps(outcomes, sort_keys=True))
