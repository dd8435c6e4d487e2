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

``--memory`` measures memory instead (ADR 0030): for each size of ``--sizes`` a
bundle of that many awards to ``--accounts`` residents is written, and
``redlist-verify bundle DIR --log-key FILE`` runs on it as a child process whose
own peak resident set is reported (``peak_rss_kib``: ``ru_maxrss`` of the command,
which holds the audit's state; ``largest_process_peak_rss_kib`` is the largest of
it and the signature workers it started). ``bytes_per_entry`` is the
growth between the smallest and the largest size divided by the entries added:
what the audit keeps per entry beyond the per-account state (every size is at
least ``--accounts``, so all residents exist in each bundle)::

    python benchmarks/audit.py --memory                                 # CI smoke
    python benchmarks/audit.py --memory --sizes 100000,300000 --accounts 25
    python benchmarks/audit.py --memory --sizes 1000000,10000000 --accounts 500000

Signing is the slow part of writing a bundle (about 25 µs an award on one core,
done on every core): 10M entries take some minutes and ~2 GB of disk in the
temporary directory (``TMPDIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _limits import core_count, paired_runs, prepare_process, summary
from ingest import EXTRA_SETUP_SIGNATURES, ORIGIN, BenchTown

from redlist.ledger import bundle, merkle
from redlist.ledger.entry import ZERO_HASH, Leaf
from redlist.ledger.note.checkpoint import Checkpoint, sign_checkpoint
from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.sigschedule import PROCESS_MIN_ENTRIES
from redlist.verifier.source import BundleSource, audit

DESIGN_TARGET = 0.7
#: The node's clock moves on this much between two leaves (ms).
STEP_MS = 10


#: Awards signed per task when a bundle is written on several processes.
_SIGN_CHUNK = 20_000


def _sign_awards(now_ms: int, first: int, count: int, accounts: int) -> list[bytes]:
    # A worker's own town: the keys are the same (from fixed seeds), the clock is set.
    town = BenchTown()
    town.now_ms = now_ms
    town.skip_ids(first)
    return town.awards(count, accounts, first=first)


def write_bundle(
    directory: Path, town: BenchTown, awards: int, accounts: int = 5000
) -> tuple[NoteSigner, int]:
    """A full bundle of the town's genesis, setup and ``awards`` awards to ``accounts``
    residents; its signer and size. Large bundles are signed on every core."""
    signer = NoteSigner(ORIGIN, town.log_key)
    head = [town.genesis(), *town.setup()]
    tree = merkle.CompactRange()
    directory.mkdir(parents=True)
    prev = ZERO_HASH
    seq = 0
    with open(directory / bundle.LEAVES_FILE, "wb") as leaves_file:

        def write(envelopes: list[bytes]) -> None:
            nonlocal prev, seq
            leaves = []
            for envelope in envelopes:
                leaf = Leaf(seq, town.now_ms + seq * STEP_MS, prev, envelope).to_bytes()
                prev = merkle.leaf_hash(leaf)
                tree.append(prev)
                leaves.append(leaf)
                seq += 1
            leaves_file.write(bundle.encode_leaves(leaves))

        write(head)
        starts = range(len(head), len(head) + awards, _SIGN_CHUNK)
        counts = [min(_SIGN_CHUNK, len(head) + awards - start) for start in starts]
        if awards <= _SIGN_CHUNK or core_count() < 2:
            for start, count in zip(starts, counts, strict=True):
                write(_sign_awards(town.now_ms, start, count, accounts))
        else:
            with ProcessPoolExecutor(core_count()) as pool:
                towns = [town.now_ms] * len(counts)
                accounts_each = [accounts] * len(counts)
                for envelopes in pool.map(_sign_awards, towns, starts, counts, accounts_each):
                    write(envelopes)
    size = seq
    manifest = bundle.Manifest(ORIGIN, 0, size)
    (directory / bundle.MANIFEST_FILE).write_bytes(bundle.encode_manifest(manifest))
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
    # One signature an entry, and the council's two more on the rule (governance).
    expected = size + EXTRA_SETUP_SIGNATURES
    if result.signatures_checked != expected:
        raise SystemExit(f"{result.signatures_checked} signatures checked, not {expected}")
    return size / elapsed


#: ``redlist-verify`` run by the benchmark: the command's own peak RSS goes to stderr.
_MEASURED = (
    "import resource, sys\n"
    "from redlist.verifier.cli import main\n"
    "status = main(sys.argv[1:])\n"
    "sys.stdout.flush()\n"
    "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "sys.stderr.write(f'peak_rss_kib={peak}\\n')\n"
    "sys.exit(status)\n"
)


def peak_rss_kib(directory: Path, signer: NoteSigner, size: int) -> tuple[int, int]:
    """Run ``redlist-verify bundle`` on the bundle as a child process: its own peak RSS
    and the largest of it and its signature workers (KiB)."""
    key_file = directory.parent / "log.vkey"
    key_file.write_text(signer.verifier().encode() + "\n")
    report, errors = directory.parent / "report.json", directory.parent / "stderr.txt"
    command = ["bundle", str(directory), "--log-key", str(key_file), "--json"]
    with open(report, "wb") as stdout, open(errors, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", _MEASURED, *command], stdout=stdout, stderr=stderr
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"redlist-verify bundle exited with {process.returncode}")
    if json.loads(report.read_bytes())["tree_size"] != size:
        raise SystemExit(f"redlist-verify did not check the {size} entries of the bundle")
    last = errors.read_text().splitlines()[-1]
    return int(last.removeprefix("peak_rss_kib=")), int(usage.ru_maxrss)


def memory(sizes: list[int], accounts: int) -> dict[str, object]:
    """Peak RSS of ``redlist-verify bundle`` at each size; bytes per entry between them."""
    if len(sizes) < 2 or sorted(sizes) != sizes or sizes[0] < accounts:
        raise SystemExit("--sizes: at least two increasing sizes, each at least --accounts")
    runs = []
    for awards in sizes:
        with tempfile.TemporaryDirectory(prefix="redlist-audit-") as scratch:
            directory = Path(scratch) / "bundle"
            print(f"writing a bundle of {awards:,} awards to {accounts:,}", file=sys.stderr)
            signer, size = write_bundle(directory, BenchTown(), awards, accounts)
            print("auditing it with redlist-verify bundle", file=sys.stderr)
            own, largest = peak_rss_kib(directory, signer, size)
            runs.append(
                {"entries": size, "peak_rss_kib": own, "largest_process_peak_rss_kib": largest}
            )
    first, last = runs[0], runs[-1]
    growth = (int(last["peak_rss_kib"]) - int(first["peak_rss_kib"])) * 1024
    return {
        "benchmark": "audit-memory",
        "accounts": accounts,
        "runs": runs,
        "bytes_per_entry": round(growth / (int(last["entries"]) - int(first["entries"])), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="awards in the bundle")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--verify-count", type=int, default=20_000)
    parser.add_argument("--memory", action="store_true", help="measure peak RSS instead")
    parser.add_argument(
        "--sizes", default="2000,12000", help="--memory: awards per bundle, comma-separated"
    )
    parser.add_argument("--accounts", type=int, default=1000, help="--memory: residents")
    args = parser.parse_args(argv)
    prepare_process()
    if args.memory:
        sizes = [int(size) for size in args.sizes.split(",")]
        print(json.dumps(memory(sizes, args.accounts)))
        return 0

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
