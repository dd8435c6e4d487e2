"""Inclusion proofs from the store (DESIGN 6): proofs/s at 1M entries, and flat up to 10M.

A log is grown with ``Log.append`` (awards, signed one batch at a time) to each
size of ``--sizes`` in turn (default 2^10, 2^15 and 2^20 = 1,048,576 entries, and
10,000,000 when ``REDLIST_BENCH_10M=1``); at each size ``--proofs`` inclusion proofs
of random entries in the current tree are asked of the store (``Log.inclusion_proof``:
one read transaction, the kept top of the tree and the stored perfect subtrees below
it, as the node's ``GetInclusionProof`` does), timed on one thread, the median of
three rounds. Every tenth proof is checked against the signed root. The figure at
2^20 entries must reach 50,000 proofs/s (DESIGN 6; pymerkle's SQLite tree: about
300/s on such data).

"The cost per proof hash flat up to 10M entries" (DESIGN 6): a proof is log2(size)
hashes. The node keeps the highest ``nodecache.LEVELS`` levels of the tree between
proofs, so a tree of up to 2^14 entries is answered from memory alone, while a
proof at 2^20 reads its seven lowest levels from the store, and one at 10M its ten
lowest: the cost per hash rises from the small trees to the first ones the store
answers in part, and then stays flat, bounded by the cost of a stored read. So the
flatness is measured where the store is read, from 2^20 to the largest size:
``flatness_per_hash`` is the time per hash at 2^20 over that at the largest size,
at least 0.5, both measured on the grown log in alternating rounds (so a change of
the machine's load between them moves both alike). It is given only when the largest
size is beyond 2^20 (the 10M run). ``per_hash_from_smallest`` is the same ratio from
the smallest size, a tree wholly in memory, for information. ``flatness`` is the
plain ratio of the rates at the smallest and largest sizes. One JSON object goes to
stdout; progress to stderr.

    python benchmarks/proofs.py [--sizes 1024,32768,1048576] [--proofs 20000]
    REDLIST_BENCH_10M=1 python benchmarks/proofs.py      # to 10M entries (half an hour)
    python benchmarks/proofs.py --sizes 64,512 --proofs 200     # the test suite's run
"""

from __future__ import annotations

import argparse
import json
import os
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
#: The size DESIGN 6's proofs/s is measured at ("1M entries").
RATE_SIZE = 1 << 20
#: Time per proof hash at ``RATE_SIZE`` over that at the largest size.
TARGET_FLATNESS_PER_HASH = 0.5
ROUNDS = 3
#: The default sizes: to 1M, or to DESIGN 6's 10M when REDLIST_BENCH_10M=1.
DEFAULT_SIZES = [1 << 10, 1 << 15, RATE_SIZE] + (
    [10_000_000] if os.environ.get("REDLIST_BENCH_10M") == "1" else []
)


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
        default=DEFAULT_SIZES,
        help="comma-separated log sizes to measure at",
    )
    parser.add_argument("--proofs", type=int, default=20_000, help="proofs per round")
    parser.add_argument(
        "--rate-size",
        type=int,
        default=RATE_SIZE,
        help="the size the proofs/s target holds at, and the flatness is measured from",
    )
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
            largest = args.sizes[-1]
            flat: float | None = None
            alternating: dict[str, float] = {}
            if args.rate_size in rates and largest > args.rate_size:
                # Both sizes again, in alternating rounds on the grown log.
                costs: dict[int, list[float]] = {args.rate_size: [], largest: []}
                for _ in range(ROUNDS):
                    for size in costs:
                        rate, length = proof_rate(log, size, args.proofs, rng)
                        costs[size].append(1 / (rate * length))
                alternating = {str(size): statistics.median(costs[size]) * 1e6 for size in costs}
                flat = alternating[str(args.rate_size)] / alternating[str(largest)]
    per_hash_s = {size: 1 / (rates[size] * hashes[size]) for size in args.sizes}
    largest, smallest = args.sizes[-1], args.sizes[0]
    rate_size = args.rate_size if args.rate_size in rates else largest
    result = {
        "benchmark": "proofs",
        "machine": machine(),
        "sizes": args.sizes,
        "proofs_per_round": args.proofs,
        "proofs_per_second": {str(size): round(rate, 1) for size, rate in rates.items()},
        "rate_size": rate_size,
        "proofs_per_second_at_rate_size": round(rates[rate_size], 1),
        "target_proofs_per_second": TARGET_PROOFS_PER_SECOND,
        "hashes_per_proof": {str(size): round(length, 2) for size, length in hashes.items()},
        "us_per_hash": {str(size): round(cost * 1e6, 3) for size, cost in per_hash_s.items()},
        "flatness": round(rates[largest] / rates[smallest], 3),
        "per_hash_from_smallest": round(per_hash_s[smallest] / per_hash_s[largest], 3),
        "flatness_per_hash": None if flat is None else round(flat, 3),
        # The costs the flatness is the ratio of (the alternating rounds), µs a hash.
        "flatness_us_per_hash": {size: round(cost, 3) for size, cost in alternating.items()},
        "target_flatness_per_hash": TARGET_FLATNESS_PER_HASH,
        "meets_target": rates[rate_size] >= TARGET_PROOFS_PER_SECOND
        and (flat is None or flat >= TARGET_FLATNESS_PER_HASH),
        "verify_threads": core_count(),
        "verify_limit_per_second": round(verify_limit(args.verify_count), 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
