"""A peer in the same run (issue 12): pymerkle's in-memory and SQLite trees against ours.

pymerkle (https://github.com/fmerkle/pymerkle, the ``bench`` extra) is the Python
Merkle-tree library people reach for; its trees hash like RFC 6962 (0x00 leaf and
0x01 node prefixes), so fed our leaf bytes they reach our root, which this checks.
On the same ``--entries`` leaves (a log grown here with ``Log.append``), in one process:

* **append**: entries/s. Ours is ``Log.append`` in batches of ``--batch``, the whole
  write path of a node (decoding, every signature, the points semantics, the leaf,
  the Merkle nodes, a signed checkpoint and a durable LMDB commit per batch); the
  signing of the awards is not timed. pymerkle's is ``append_entries`` of the leaf
  bytes (hashing and storing only: no signature, no rule, and for SQLite one
  transaction per 100,000 leaves). Ours does far more per entry, so a ratio near 1
  already means our Merkle and storage part costs much less than theirs.
* **inclusion** and **consistency** proofs/s, ``--proofs`` random ones, one thread: ours
  from the LMDB store (``Log.inclusion_proof``, ``Log.consistency_proof``, as the
  node's RPCs do), theirs from each tree (``prove_inclusion``, ``prove_consistency``).

Each ratio is ours / theirs (above 1: ours is faster). The verify limit is measured
before and after, as in every benchmark. One JSON object to stdout, progress to stderr.

    python benchmarks/peers.py [--entries 100000] [--proofs 5000]
    python benchmarks/peers.py --entries 600 --proofs 50        # the test suite's run
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _limits import core_count, grow_log, machine, prepare_process, verify_limit
from ingest import BenchTown, make_log
from pymerkle import InmemoryTree, SqliteTree
from pymerkle import __version__ as pymerkle_version

from redlist.ledger.log import Log

ROUNDS = 3


def timed(work: Callable[[], object], count: int) -> float:
    """``count`` / the seconds ``work`` takes."""
    started = time.perf_counter()
    work()
    return count / (time.perf_counter() - started)


def proof_rates(
    inclusion: Callable[[int, int], object],
    consistency: Callable[[int, int], object],
    size: int,
    count: int,
    rng: random.Random,
) -> tuple[float, float]:
    """Median over ``ROUNDS`` of inclusion and of consistency proofs per second (0-based
    seqs and sizes; a peer's adapter converts)."""
    inclusions, consistencies = [], []
    for _ in range(ROUNDS):
        seqs = [rng.randrange(size) for _ in range(count)]
        firsts = [rng.randrange(1, size) for _ in range(count)]
        inclusions.append(timed(lambda seqs=seqs: [inclusion(seq, size) for seq in seqs], count))
        consistencies.append(
            timed(lambda firsts=firsts: [consistency(f, size) for f in firsts], count)
        )
    return statistics.median(inclusions), statistics.median(consistencies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--proofs", type=int, default=5000, help="proofs of each kind per round")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=6962)
    parser.add_argument("--verify-count", type=int, default=20_000)
    args = parser.parse_args(argv)
    prepare_process()
    rng = random.Random(args.seed)
    town = BenchTown()
    limit_before = verify_limit(args.verify_count)
    started = time.perf_counter()
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="redlist-peers-") as scratch:
        data = Path(scratch) / "data"
        make_log(data, town, town.genesis(), town.setup())
        with Log.open(data) as log:
            first, seconds = log.size, 0.0
            for _size, elapsed, _cpu in grow_log(
                log, town.awards, args.entries, args.batch, town.now_ms
            ):
                seconds += elapsed
            size = log.size
            leaves = [leaf for _seq, leaf in log.leaves(0, size)]
            root = log.checkpoint().root
            ours = proof_rates(log.inclusion_proof, log.consistency_proof, size, args.proofs, rng)
            figures["redlist"] = {
                "append": (size - first) / seconds,
                "inclusion": ours[0],
                "consistency": ours[1],
            }
        print(f"redlist: {_line(figures['redlist'])}", file=sys.stderr)
        trees: dict[str, Any] = {
            "pymerkle_memory": InmemoryTree(),
            "pymerkle_sqlite": SqliteTree(str(Path(scratch) / "pymerkle.db")),
        }
        for name, tree in trees.items():
            append = timed(lambda tree=tree: tree.append_entries(leaves), size)
            if tree.get_root(size) != root:
                raise SystemExit(f"{name} reached another root than the log's on the same leaves")
            theirs = proof_rates(
                lambda seq, at, tree=tree: tree.prove_inclusion(seq + 1, at),
                lambda prior, at, tree=tree: tree.prove_consistency(prior, at),
                size,
                args.proofs,
                rng,
            )
            figures[name] = {"append": append, "inclusion": theirs[0], "consistency": theirs[1]}
            print(f"{name}: {_line(figures[name])}", file=sys.stderr)
        trees["pymerkle_sqlite"].close()
    limit = statistics.median([limit_before, verify_limit(args.verify_count)])
    ours_figures = figures["redlist"]
    result = {
        "benchmark": "peers",
        "machine": machine(),
        "peer": f"pymerkle {pymerkle_version}",
        "entries": size,
        "proofs_per_round": args.proofs,
        "per_second": {
            name: {kind: round(rate, 1) for kind, rate in values.items()}
            for name, values in figures.items()
        },
        "ratios": {
            name: {kind: round(ours_figures[kind] / rate, 2) for kind, rate in values.items()}
            for name, values in figures.items()
            if name != "redlist"
        },
        "same_root": True,
        "verify_threads": core_count(),
        "verify_limit_per_second": round(limit, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    return 0


def _line(values: dict[str, float]) -> str:
    return ", ".join(f"{kind} {rate:,.0f}/s" for kind, rate in values.items())


if __name__ == "__main__":
    sys.exit(main())
