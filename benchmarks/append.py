"""Append cost flat in log size (DESIGN 6): throughput at the end of a long log vs at 10k.

A log is grown from its genesis to ``--entries`` awards with ``Log.append`` (the
node's write path: decode, signatures on all cores, points semantics, leaf, Merkle
nodes, signed checkpoint, durable LMDB commit) in batches of ``--batch``, as a busy
node's grouped commits are. The awards are signed one batch at a time, outside the
timed calls. Throughput is taken over windows of ``--window`` entries: "early" is
the median of ``--samples`` (10) windows from entry ``--early`` (10,000) on, "late"
the median of as many last ones; the figure is late / early, which DESIGN 6 wants within 20% of 1.
The same is reported from ``--plateau`` (100,000) on: up to store format 3 the tables
with random keys (the entry ids, the accounts' entries) grew past the pages one batch
touches by then, and each commit wrote about one page per such table and entry from
there on; format 4 keeps both in keys that grow with seq or in bounded tables (ADRs
0043, 0044), so what a commit writes no longer grows with the log.
DESIGN 6 names 10M entries; a CI-friendly default is 1M (``make bench``), 10M when
the environment sets ``REDLIST_BENCH_10M=1`` (about half an hour), and the size is a flag. The
Ed25519 verify limit is measured before and after, for scale.
The process's own (anonymous) memory and its mapped LMDB pages are reported early
and late too. With ``--processes`` the signatures are verified on worker processes,
as ``redlist-node serve`` does, so the CPU this process spends in ``Log.append``
(``cpu_us_per_entry``, every thread of it, none of the workers) is the node's writer's
own work. One JSON object goes to stdout; progress to stderr.

    python benchmarks/append.py [--entries 1000000] [--batch 1000] [--window 10000]
    python benchmarks/append.py --entries 3000 --early 500 --window 250 --samples 3
    python benchmarks/append.py --entries 20000 --early 5000 --window 2500 --processes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _limits import core_count, grow_log, machine, prepare_process, resident_kib, verify_limit
from ingest import BenchTown, make_log

from redlist.ledger.log import Log
from redlist.ledger.sigschedule import SignatureScheduler

DESIGN_TARGET = 0.8
#: Windows taken for the early and for the late throughput: 10 of 10,000 entries,
#: the first and the last 100,000 (with 3, one slow window among them, a merge or a
#: busy moment of the host, moves their median: 0.80 against 0.90 for one 10M run).
SAMPLE_WINDOWS = 10
#: The default size: 1M, or DESIGN 6's 10M when REDLIST_BENCH_10M=1.
DEFAULT_ENTRIES = 10_000_000 if os.environ.get("REDLIST_BENCH_10M") == "1" else 1_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=DEFAULT_ENTRIES)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--early", type=int, default=10_000)
    parser.add_argument("--plateau", type=int, default=100_000)
    parser.add_argument("--verify-count", type=int, default=20_000)
    parser.add_argument(
        "--samples",
        type=int,
        default=SAMPLE_WINDOWS,
        help="windows taken at each end, for the early and for the late throughput",
    )
    parser.add_argument(
        "--processes", action="store_true", help="verify on worker processes, as the node does"
    )
    args = parser.parse_args(argv)
    needed = args.early + 2 * args.samples * args.window
    if args.entries < needed:
        parser.error(f"--entries must be at least {needed} for these windows")
    prepare_process()

    town = BenchTown()
    limits = [verify_limit(args.verify_count)]
    rates: list[tuple[int, float]] = []  # (log size at the window's end, entries/s)
    cpu_seconds = 0.0  # this process's CPU inside Log.append
    window_cpus: list[float] = []  # its CPU µs per entry in each window
    memory: dict[str, int | None] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="redlist-append-") as scratch:
        data = Path(scratch) / "data"
        make_log(data, town, town.genesis(), town.setup())
        with Log.open(data) as log, SignatureScheduler(processes=args.processes) as scheduler:
            if args.processes:
                scheduler.wait_started()
                log.verify_signatures_with(scheduler)
            window_start, window_seconds, window_cpu = log.size, 0.0, 0.0
            first_size = log.size
            for size, seconds, cpu in grow_log(
                log, town.awards, args.entries, args.batch, town.now_ms
            ):
                cpu_seconds += cpu
                window_seconds += seconds
                window_cpu += cpu
                if size - window_start >= args.window:
                    rates.append((size, (size - window_start) / window_seconds))
                    window_cpus.append(window_cpu / (size - window_start) * 1e6)
                    window_start, window_seconds, window_cpu = size, 0.0, 0.0
                    if len(rates) % 10 == 0 or size >= args.entries:
                        print(
                            f"{size:,} entries: {rates[-1][1]:,.0f}/s "
                            f"({time.perf_counter() - started:,.0f} s)",
                            file=sys.stderr,
                        )
                if "early" not in memory and size >= args.early:
                    memory["early"] = resident_kib()
                    memory["early_file"] = resident_kib(field="RssFile")
            memory["late"] = resident_kib()
            memory["late_file"] = resident_kib(field="RssFile")
            final_size = log.size
        data_bytes = sum(path.stat().st_size for path in data.rglob("*") if path.is_file())
    limits.append(verify_limit(args.verify_count))

    early = [rate for size, rate in rates if size > args.early][: args.samples]
    late = [rate for _size, rate in rates][-args.samples :]
    plateau = [rate for size, rate in rates if size > args.plateau][: args.samples] or late
    early_rate, late_rate = statistics.median(early), statistics.median(late)
    plateau_rate = statistics.median(plateau)
    limit = statistics.median(limits)
    result = {
        "benchmark": "append",
        "machine": machine(),
        "entries": final_size,
        "batch": args.batch,
        "window": args.window,
        "samples": args.samples,
        "early_at": args.early,
        "early_entries_per_second": round(early_rate, 1),
        "late_entries_per_second": round(late_rate, 1),
        "windows": [round(rate, 1) for _size, rate in rates],
        "window_ends": [size for size, _rate in rates],
        "window_cpu_us_per_entry": [round(cpu, 1) for cpu in window_cpus],
        "flatness": round(late_rate / early_rate, 3),
        "target_flatness": DESIGN_TARGET,
        "meets_target": late_rate / early_rate >= DESIGN_TARGET,
        "plateau_at": args.plateau,
        "plateau_entries_per_second": round(plateau_rate, 1),
        "flatness_from_plateau": round(late_rate / plateau_rate, 3),
        "verify_threads": core_count(),
        "verify_limit_per_second": round(limit, 1),
        "late_ratio_to_limit": round(late_rate / limit, 3),
        "anonymous_kib_early": memory.get("early"),
        "anonymous_kib_late": memory.get("late"),
        "mapped_file_kib_early": memory.get("early_file"),
        "mapped_file_kib_late": memory.get("late_file"),
        "data_bytes": data_bytes,
        "verify_processes": args.processes,
        "cpu_us_per_entry": round(cpu_seconds / (final_size - first_size) * 1e6, 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
