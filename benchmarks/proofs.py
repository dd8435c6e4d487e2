"""Inclusion proofs from the store (DESIGN 6): proofs/s at 1M entries, and flat in log size.

A log is grown with ``Log.append`` (awards, signed one batch at a time) to each
size of ``--sizes`` in turn (default 2^10, 2^15 and 2^20 = 1,048,576 entries); at
each size ``--proofs`` inclusion proofs of random entries in the current tree are
asked of the store (``Log.inclusion_proof``: one read transaction and the stored
perfect subtrees on the audit path, as the node's ``GetInclusionProof`` does), timed
on one thread. Every tenth proof is checked against the signed root. The figure at
the largest size must reach 50,000 proofs/s (DESIGN 6; pymerkle's SQLite tree: about 300/s
on such data). "Flat in log size": a proof is log2(size) hashes, each one stored
read, so a proof of 2^20 entries reads twice the hashes of one of 2^10; the cost
per hash of the proof must stay flat (``flatness_per_hash``: the time per hash at
the smallest size over that at the largest, at least 0.5), while ``flatness`` is
the plain ratio of the rates. One JSON object goes to stdout; progress to stderr.

    python benchmarks/proofs.py [--sizes 1024,32768,1048576] [--proofs 20000]
    python benchmarks/proofs.py --sizes 64,512 --proofs 200     # the test suite's run
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _limits import core_count, grow_log, machine, prepare_process, verify_limit
from ingest import BenchTown, make_log

from redlist.ledger import merkle
from redlist.ledger.log import Log

TARGET_PROOFS_PER_SECOND = 50_000
#: Time per proof hash at the smallest size over that at the largest.
TARGET_FLATNESS_PER_HASH = 0.5
ROUNDS = 3


def proof_rate(log: Log, size: int, count: int, rng: random.Random) -> tuple[float, float]:
    """Inclusion proofs per second for ``count`` random leaves of the tree of ``size``,
    and the mean number of hashes in a proof."""
    seqs = [rng.randrange(size) for _ in range(count)]
    started = time.perf_counter()
    proofs = [log.inclusion_proof(seq, size) for seq in seqs]
    elapsed = time.perf_counter() - started
    signed = log.checkpoint_at(size)
    if signed is None:
        raise SystemExit(f"the log signed no checkpoint at tree size {size}")
    root = signed.root  # a SignedCheckpoint: verified with the log's key when it was read
    for seq, proof in list(zip(seqs, proofs, strict=True))[::10]:
        ((_, leaf),) = log.leaves(seq, seq + 1)  # read to its end: the snapshot closes
        merkle.verify_inclusion(merkle.leaf_hash(leaf), seq, size, proof, root)
    return count / elapsed, sum(len(proof) for proof in proofs) / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: sorted(int(part) for part in text.split(",")),
        default=[1 << 10, 1 << 15, 1 << 20],
        help="comma-separated log sizes to measure at",
    )
    parser.add_argument("--proofs", type=int, default=20_000, help="proofs per round")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=6962)
    parser.add_argument("--verify-count", type=int, default=20_000)
    args = parser.parse_args(argv)
    prepare_process()

    town = BenchTown()
    rng = random.Random(args.seed)
    rates: dict[int, float] = {}
    hashes: dict[int, float] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="redlist-proofs-") as scratch:
        data = Path(scratch) / "data"
        make_log(data, town, town.genesis(), town.setup())
        with Log.open(data) as log:
            for size in args.sizes:
                for _ in grow_log(log, town.awards, size, args.batch, town.now_ms):
                    pass
                rounds = [proof_rate(log, size, args.proofs, rng) for _ in range(ROUNDS)]
                rates[size] = statistics.median(rate for rate, _ in rounds)
                hashes[size] = statistics.mean(length for _, length in rounds)
                print(
                    f"{size:,} entries: {rates[size]:,.0f} proofs/s "
                    f"({time.perf_counter() - started:,.0f} s)",
                    file=sys.stderr,
                )
    largest, smallest = rates[args.sizes[-1]], rates[args.sizes[0]]
    per_hash = (largest * hashes[args.sizes[-1]]) / (smallest * hashes[args.sizes[0]])
    result = {
        "benchmark": "proofs",
        "machine": machine(),
        "sizes": args.sizes,
        "proofs_per_round": args.proofs,
        "proofs_per_second": {str(size): round(rate, 1) for size, rate in rates.items()},
        "proofs_per_second_at_largest": round(largest, 1),
        "target_proofs_per_second": TARGET_PROOFS_PER_SECOND,
        "hashes_per_proof": {str(size): round(length, 2) for size, length in hashes.items()},
        "flatness": round(largest / smallest, 3),
        "flatness_per_hash": round(per_hash, 3),
        "target_flatness_per_hash": TARGET_FLATNESS_PER_HASH,
        "meets_target": largest >= TARGET_PROOFS_PER_SECOND
        and per_hash >= TARGET_FLATNESS_PER_HASH,
        "verify_threads": core_count(),
        "verify_limit_per_second": round(verify_limit(args.verify_count), 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
