"""DESIGN 7 for the entry-id index's runs: kill -9 a writer in the middle of its merges.

With the production shape a run is made once every 16,384 entries, which the node
crash test (``test_crash.py``) never reaches. Here a writer process appends small
batches to a log made with a tiny index shape (runs of 4 ids, merged 2 at a time up
to runs of 32), so nearly every batch makes a run and many merge runs of every tier,
and is SIGKILLed at a random moment, again and again. After each kill the log must
open (tail check), hold every seq the writer reported as committed, find every
entry's id at its seq, and pass the full check.

The seed is ``REDLIST_CRASH_SEED`` when set (printed on failure).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from redlist.ledger import codec
from redlist.ledger.entry import Leaf, decode_body
from redlist.ledger.fullcheck import check_full
from redlist.ledger.log import Log
from redlist.ledger.store import ENV_DIR_NAME, LmdbStore

ROUNDS = 8
REPO = Path(__file__).resolve().parents[2]

WRITER = r"""
import random, sys
from pathlib import Path
from tests.builders import Town, create_log, id_index_shape
from redlist.ledger.idruns import IndexShape
from redlist.ledger.log import Log

data, seed = Path(sys.argv[1]), int(sys.argv[2])
town = Town.from_seed(b"id index crash")
if not data.exists():
    with id_index_shape(IndexShape(level0_max=4, fanout=2, top_tier=3)):
        create_log(data, town, setup=True).close()
rng = random.Random(seed)
with Log.open(data) as log:
    print("open", log.size, flush=True)
    sent = []
    while True:
        batch = [
            town.award(f"resident-{rng.randrange(30)}", "clean-pond", entry_id=rng.randbytes(16))
            for _ in range(rng.randint(1, 9))
        ]
        if sent:
            batch.append(rng.choice(sent))  # a resubmission: looked up through the runs
        seqs = log.append(batch, now_ms=town.now_ms).seqs
        sent.extend(batch)
        print("committed", max(seqs) + 1, flush=True)
"""


def _seed() -> int:
    text = os.environ.get("REDLIST_CRASH_SEED", "").strip()
    return int(text) if text else random.SystemRandom().randrange(1 << 32)


def test_a_writer_killed_during_runs_and_merges_leaves_a_sound_index(tmp_path: Path) -> None:
    seed = _seed()
    rng = random.Random(seed)  # noqa: S311 - the schedule, replayable
    data = tmp_path / "data"
    committed = 0
    for round_ in range(ROUNDS):
        out = tmp_path / f"writer-{round_}.out"
        with out.open("wb") as stdout:
            writer = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(data), str(rng.randrange(1 << 32))],
                cwd=REPO,
                stdout=stdout,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 60
            while b"open" not in out.read_bytes():  # past the open's own checks
                assert writer.poll() is None, out.read_text()
                assert time.monotonic() < deadline, f"seed {seed}: the writer never opened"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.05, 0.6))
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        sizes = [  # whole lines only: the kill may cut the last one short
            int(line.split()[1])
            for line in out.read_text().splitlines(keepends=True)
            if line.startswith("committed ") and line.endswith("\n")
        ]
        committed = max([committed, *sizes])
        with Log.open(data) as log:  # the tail check of a writable open
            size = log.size
            assert size >= committed, f"seed {seed}: committed {committed}, log holds {size}"
            ids = [_entry_id(leaf) for _, leaf in log.leaves(0, size)]
            for seq, entry_id in enumerate(ids):
                found = log.entry(entry_id)
                assert found is not None and found[0] == seq, f"seed {seed}: entry {seq}"
        store = LmdbStore.open(data / ENV_DIR_NAME, readonly=True)
        try:
            with store.read() as reader:
                report = check_full(reader)
        finally:
            store.close()
        assert report.ok, f"seed {seed}, round {round_}: {report.summary()}"
    assert committed > 40, f"seed {seed}: too few entries to make runs ({committed})"


def _entry_id(leaf: bytes) -> bytes:
    return decode_body(codec.decode(Leaf.from_bytes(leaf).envelope)[0]).id
