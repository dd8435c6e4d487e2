"""The hardware limit every benchmark reports beside its own figure (DESIGN 6).

On this hardware the physical limit of a node is Ed25519 verification. It is
measured here on libsodium itself: ``crypto_sign_verify_detached``, called through
``ctypes`` straight from the libsodium that PyNaCl bundles (the very code the
ledger verifies with, minus every wrapper of ours and of PyNaCl's), on a 200-byte
message, one thread per core (a ``ctypes`` call releases the GIL, so threads scale
across cores), best of three passes. Benchmarks import ``verify_limit`` and
``core_count`` from here (``benchmarks/`` is on ``sys.path`` when a benchmark runs
as a script), so every figure is divided by the same limit.

Run alone it prints its own JSON object, like every benchmark::

    python benchmarks/_limits.py [--count 20000]

The other helpers keep the benchmarks alike: ``prepare_process`` sets what the
``redlist-node`` and ``redlist-verify`` commands set; ``paired_runs`` measures a
figure between two limit measurements, run after run, so a figure is divided by
the limit of the same moment (other work on the machine slows both); ``machine``
describes the machine and library versions for the JSON; and ``resident_kib``
reads a process's memory from /proc.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nacl
import nacl._sodium

from redlist.ledger import crypto, native, sigworkers
from redlist.ledger.log import Log

#: Signatures verified per measurement unless a benchmark asks for another count.
DEFAULT_VERIFY_COUNT = 20_000
#: The message every limit signature signs (DESIGN 6: a 200-byte message).
MESSAGE_SIZE = 200
#: Passes per measurement; the best one is the limit.
PASSES = 3


def core_count() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _libsodium_verify() -> Callable[[bytes, bytes, int, bytes], int]:
    """libsodium's ``crypto_sign_verify_detached(sig, m, mlen, pk)``, called directly.

    PyNaCl links libsodium into its extension module and exports its symbols, but
    binds only the combined ``crypto_sign_open``; ``ctypes`` reaches the detached one.
    """
    library = ctypes.CDLL(nacl._sodium.__file__)
    function = library.crypto_sign_verify_detached
    function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def verify_limit(count: int = DEFAULT_VERIFY_COUNT, threads: int | None = None) -> float:
    """Ed25519 verifications per second by libsodium on ``threads`` threads (default: one
    per core): ``crypto_sign_verify_detached`` of ``count`` signatures of distinct
    200-byte messages, the best of ``PASSES`` timed passes after one untimed warm-up.
    """
    threads = threads or core_count()
    verify = _libsodium_verify()
    key = crypto.SigningKey.from_seed(bytes(32))
    messages = [(b"%08d" % n).ljust(MESSAGE_SIZE, b"m") for n in range(count)]
    pairs = [(message, key.sign(message)) for message in messages]
    public = key.public
    chunks = [pairs[n::threads] for n in range(threads)]

    def run(chunk: list[tuple[bytes, bytes]]) -> bool:
        return all(verify(sig, msg, MESSAGE_SIZE, public) == 0 for msg, sig in chunk)

    best = float("inf")
    with ThreadPoolExecutor(max_workers=threads) as pool:
        if not all(pool.map(run, chunks)):  # the warm-up also proves the call is right
            raise SystemExit("a signature did not verify")
        for _ in range(PASSES):
            started = time.perf_counter()
            results = list(pool.map(run, chunks))
            best = min(best, time.perf_counter() - started)
    if not all(results):
        raise SystemExit("a signature did not verify")
    return count / best


def machine() -> dict[str, object]:
    """What a figure was measured on: cores, Python, and the libraries that set the pace."""
    versions: dict[str, str] = {"pynacl": nacl.__version__}
    for name in ("msgpack", "lmdb", "grpcio", "cryptography"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cores": core_count(),
        # Other work on the machine, over the last minute: figures taken at 10 on 2 cores
        # say more about the neighbours than about the code.
        "load_average": round(load[0], 2) if load is not None else None,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "processor": platform.machine(),
        "libraries": versions,
        # The core's modules that ran compiled (docs/adr/0057); empty: the sources ran.
        "native": native.compiled_modules(),
    }


def prepare_process() -> None:
    """Set the process-wide interpreter settings the node and verifier commands set
    (``sigworkers.tune_interpreter``: thread switch interval, garbage collector)."""
    sigworkers.tune_interpreter()


@dataclass(frozen=True)
class PairedRun:
    """One run: the figure, and the limit measured just before and just after it."""

    figure: float
    limit_before: float
    limit_after: float

    @property
    def limit(self) -> float:
        return (self.limit_before + self.limit_after) / 2

    @property
    def ratio(self) -> float:
        return self.figure / self.limit


def paired_runs(
    figure: Callable[[int], float], runs: int, verify_count: int, name: str
) -> list[PairedRun]:
    """Call ``figure(run)`` ``runs`` times, each between two ``verify_limit`` measurements."""
    results: list[PairedRun] = []
    for run in range(runs):
        before = verify_limit(verify_count)
        value = figure(run)
        after = verify_limit(verify_count)
        results.append(PairedRun(value, before, after))
        print(
            f"run {run + 1}/{runs}: {name} {value:,.0f}/s; verify limit {before:,.0f}/s and "
            f"{after:,.0f}/s; ratio {results[-1].ratio:.3f}",
            file=sys.stderr,
        )
    return results


def summary(results: list[PairedRun], target: float) -> dict[str, object]:
    """The JSON fields every paired benchmark reports: medians, the ratio, the target."""
    ratio = statistics.median(result.ratio for result in results)
    return {
        "runs": [round(result.figure, 1) for result in results],
        "run_ratios": [round(result.ratio, 3) for result in results],
        "entries_per_second": round(statistics.median(r.figure for r in results), 1),
        "verify_threads": core_count(),
        "verify_limit_per_second": round(statistics.median(r.limit for r in results), 1),
        "ratio": round(ratio, 3),
        "target_ratio": target,
        "meets_target": ratio >= target,
        "machine": machine(),
    }


def grow_log(
    log: Log,
    make_batch: Callable[[int], list[bytes]],
    until: int,
    batch: int,
    now_ms: int,
) -> Iterator[tuple[int, float, float]]:
    """Append batches of ``make_batch(count)`` envelopes until ``log`` holds ``until``
    entries; after each batch yield the log's size, the seconds ``Log.append`` took and
    the CPU seconds this process spent in it (all its threads, not its children).

    The envelopes are made (signed) outside the timed call, one batch at a time, so
    memory stays flat however long the log grows.
    """
    size = log.size
    while size < until:
        envelopes = make_batch(min(batch, until - size))
        started, cpu_started = time.perf_counter(), time.process_time()
        result = log.append(envelopes, now_ms=now_ms)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        size = result.seqs[-1] + 1
        yield size, elapsed, cpu


def resident_kib(pid: int | str = "self", field: str = "RssAnon") -> int | None:
    """A memory figure of process ``pid`` from /proc in KiB (None where there is none).

    ``RssAnon`` is the process's own memory. ``VmRSS`` also counts the pages of the
    LMDB file it has mapped and touched, which the kernel may drop at any time and
    which grow with what was read, not with what is kept.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


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
        "message_bytes": MESSAGE_SIZE,
        "passes": PASSES,
        "machine": machine(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
