"""The hardware limit every benchmark reports beside its own figure (DESIGN 6).

On this hardware the physical limit of a node is Ed25519 verification. It is
measured here with the library the ledger itself verifies with
(``redlist.ledger.crypto``), on as many threads as the process may run on; the
library releases the GIL, so threads scale across cores. Benchmarks import
``verify_limit`` and ``core_count`` from here (``benchmarks/`` is on ``sys.path``
when a benchmark runs as a script), so every figure is divided by the same limit.

Run alone it prints its own JSON object, like every benchmark::

    python benchmarks/_limits.py [--count 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from redlist.ledger import crypto

#: Signatures verified per measurement unless a benchmark asks for another count.
DEFAULT_VERIFY_COUNT = 20_000


def core_count() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def verify_limit(count: int = DEFAULT_VERIFY_COUNT, threads: int | None = None) -> float:
    """Ed25519 entry signatures verified per second on ``threads`` threads (default: all cores).

    The signatures are made beforehand; one untimed pass warms the threads and
    caches, then a second pass over the same ``count`` signatures is timed.
    """
    threads = threads or core_count()
    key = crypto.SigningKey.from_seed(bytes(32))
    bodies = [b"body %d" % n for n in range(count)]
    triples = [(key.public, body, crypto.sign_entry(key, body)) for body in bodies]
    chunks = [triples[n::threads] for n in range(threads)]

    def verify(chunk: list[tuple[bytes, bytes, bytes]]) -> bool:
        return all(crypto.verify_entry(public, body, sig) for public, body, sig in chunk)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(verify, chunks))  # warm-up
        started = time.perf_counter()
        results = list(pool.map(verify, chunks))
        elapsed = time.perf_counter() - started
    if not all(results):
        raise SystemExit("a signature did not verify")
    return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=DEFAULT_VERIFY_COUNT)
    args = parser.parse_args(argv)
    cores = core_count()
    limit = verify_limit(args.count, cores)
    single = verify_limit(args.count, 1)
    result = {
        "benchmark": "verify-limit",
        "signatures": args.count,
        "verify_threads": cores,
        "verify_limit_per_second": round(limit, 1),
        "verify_per_core_per_second": round(single, 1),
        "scaling": round(limit / single, 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
