"""Verifier full audit (DESIGN 6): entries/s as a share of the all-core verify limit.

A full bundle (genesis, staff keys, a rule, then awards to 5,000 residents) is
written to a temporary directory the way ``redlist-node export --full`` lays it
out, then audited exactly as ``redlist-verify bundle DIR --log-key KEY`` does
(``redlist.verifier.source.audit`` over a ``BundleSource``: reading the leaves
file, every structural check, every signature, the points semantics, the Merkle
root, the checkpoint). Each run is timed from opening the bundle to the result,
between two measurements of the Ed25519 verify limit (``_limits.py``); the ratio
is the median of the runs' ratios. One JSON object goes to stdout; progress to
stderr.

    python benchmarks/audit.py [--entries 100000] [--runs 3] [--workers N]

The default size lets the auditor verify on worker processes (it does from
``PROCESS_MIN_ENTRIES`` entries on); ``--entries 300 --runs 1`` is the test
suite's correctness run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _limits import core_count, paired_runs, prepare_process, summary
from ingest import ORIGIN, BenchTown

from redlist.ledger import bundle, merkle
from redlist.ledger.entry import ZERO_HASH, Leaf
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.sigschedule import PROCESS_MIN_ENTRIES
from redlist.verifier.source import BundleSource, audit

DESIGN_TARGET = 0.7
#: The node's clock moves on this much between two leaves (ms).
STEP_MS = 10


def write_bundle(directory: Path, town: BenchTown, awards: int) -> tuple[NoteSigner, int]:
    """A full bundle of the town's genesis, setup and ``awards`` awards; its signer and size."""
    signer = NoteSigner(ORIGIN, town.log_key)
    envelopes = [town.genesis(), *town.setup(), *town.awards(awards)]
    tree = merkle.CompactRange()
    prev = ZERO_HASH
    leaves: list[bytes] = []
    for seq, envelope in enumerate(envelopes):
        leaf = Leaf(seq, town.now_ms + seq * STEP_MS, prev, envelope).to_bytes()
        prev = merkle.leaf_hash(leaf)
        tree.append(prev)
        leaves.append(leaf)
    size = len(leaves)
    directory.mkdir(parents=True)
    manifest = bundle.Manifest(ORIGIN, 0, size)
    (directory / bundle.MANIFEST_FILE).write_bytes(bundle.encode_manifest(manifest))
    (directory / bundle.LEAVES_FILE).write_bytes(bundle.encode_leaves(leaves))
    checkpoint = sign_checkpoint(Checkpoint(ORIGIN, size, tree.root()), signer)
    (directory / bundle.CHECKPOINT_FILE).write_bytes(checkpoint.to_bytes())
    return signer, size


def audit_run(directory: Path, signer: NoteSigner, size: int, workers: int | None) -> float:
    """Audit the bundle once; entries/s. Exits when the audit does not say what it should."""
    started = time.perf_counter()
    result = audit(BundleSource(directory), signer.verifier(), workers=workers).result
    elapsed = time.perf_counter() - started
    if result.tree_size != size or not result.balances_recomputed or not result.accounts:
        raise SystemExit(f"the audit checked {result.tree_size} entries, not {size}")
    if result.signatures_checked != size:
        raise SystemExit(f"{result.signatures_checked} signatures checked, not {size}")
    return size / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="awards in the bundle")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--verify-count", type=int, default=20_000)
    args = parser.parse_args(argv)
    prepare_process()

    town = BenchTown()
    with tempfile.TemporaryDirectory(prefix="redlist-audit-") as scratch:
        directory = Path(scratch) / "bundle"
        print(f"writing a bundle of {args.entries:,} awards", file=sys.stderr)
        signer, size = write_bundle(directory, town, args.entries)
        results = paired_runs(
            lambda run: audit_run(directory, signer, size, args.workers),
            args.runs,
            args.verify_count,
            "audit",
        )
    output = {
        "benchmark": "audit",
        "entries": size,
        "worker_processes": (args.workers or core_count()) >= 2 and size >= PROCESS_MIN_ENTRIES,
        **summary(results, DESIGN_TARGET),
    }
    print(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
