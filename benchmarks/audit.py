"""Verifier full audit (DESIGN 6): entries/s as a share of the all-core verify limit.

A full bundle (genesis, staff keys, a rule, then awards to ``--accounts`` residents,
5,000 by default) is written the way ``redlist-node export --full`` lays it out
(``_bundles.py``: kept under ``$REDLIST_BENCH_BUNDLES`` for the next run), then
audited by the real command, ``redlist-verify bundle DIR --log-key KEY --json``, in a
child process: reading the leaves file, every structural check, every signature, the
points semantics, the Merkle root, the checkpoint. Each run is timed from the
command's start to its exit, as an auditor waits for it (the interpreter's start, the
imports and the signature workers' start-up included), between two measurements of
the Ed25519 verify limit (``_limits.py``); the ratio is the median of the runs'
ratios. One JSON object goes to stdout; progress to stderr.

    python benchmarks/audit.py [--entries 100000] [--accounts 5000] [--runs 3] [--workers N]

The default size lets the auditor verify on worker processes (it does from
``PROCESS_MIN_ENTRIES`` entries on); ``--entries 300 --runs 1`` is the test
suite's correctness run.

``--memory`` measures memory instead (ADR 0030, ADR 0035): for each number of
residents of ``--accounts`` and each size of ``--sizes``, ``redlist-verify bundle DIR
--log-key FILE --json`` runs on the bundle of that many awards as a child process
whose own peak resident set is reported (``peak_rss_kib``: ``ru_maxrss`` of the
command, which holds the audit's state; ``largest_process_peak_rss_kib`` is the
largest of it and the signature workers it started), with its speed from start to
exit and that speed's ratio to the verify limit measured just before and after.
Per group, ``bytes_per_entry`` is the growth between the two largest sizes that hold
every resident, divided by the entries added: what the audit keeps per entry beyond
the per-account state. With two numbers of residents, ``bytes_per_account`` is the
difference between the two at the first size that holds them all, per resident::

    python benchmarks/audit.py --memory                        # a smoke run
    python benchmarks/audit.py --memory --large                # issue 15: 100k, 1M, 10M
    REDLIST_BENCH_LARGE=1 python benchmarks/audit.py --memory  # the same

``--large`` audits 100k, 1M and 10M entries for 25 and for 500,000 residents: the
10M bundles are written once (some minutes each on every core, 2.7 GB of disk each),
the smaller ones cut from them; each 10M audit takes about ten minutes on a quiet
2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _bundles
from _limits import core_count, paired_runs, prepare_process, summary, verify_limit
from ingest import BenchTown

from redlist.ledger.note.keys import NoteSigner
from redlist.ledger.sigschedule import PROCESS_MIN_ENTRIES

DESIGN_TARGET = 0.7
#: ``--memory --large``: the sizes and residents of issue 15 (a county's four years).
LARGE_SIZES = "100000,1000000,10000000"
LARGE_ACCOUNTS = "25,500000"


def write_bundle(
    directory: Path, town: BenchTown, awards: int, accounts: int = 5000
) -> tuple[NoteSigner, int]:
    """A full bundle of the town's genesis, setup and ``awards`` awards to ``accounts``
    residents, not kept (``_bundles.write_bundle``); its signer and size."""
    size = _bundles.write_bundle(directory, town, awards, accounts)
    return _bundles.log_signer(town), size


def audit_run(generated: _bundles.GeneratedBundle, workers: int | None) -> float:
    """Run ``redlist-verify bundle DIR --log-key FILE --json`` once, as an auditor does,
    and return entries/s from the command's start to its exit (its interpreter, its
    imports and its signature workers' start-up included). Exits when the report does
    not say what it should."""
    command = [
        str(Path(sys.executable).with_name("redlist-verify")),
        "bundle",
        str(generated.directory),
        "--log-key",
        str(generated.key_file),
        "--json",
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(
            f"redlist-verify bundle exited with {finished.returncode}: "
            f"{finished.stderr.decode(errors='replace')[-2000:]}"
        )
    result = json.loads(finished.stdout)
    if (
        result.get("tree_size") != generated.size
        or not result.get("balances_recomputed")
        or not result.get("accounts")
    ):
        raise SystemExit(
            f"the audit checked {result.get('tree_size')} entries, not {generated.size}"
        )
    return generated.size / elapsed


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


def measured_run(
    generated: _bundles.GeneratedBundle, scratch: Path, verify_count: int
) -> dict[str, float]:
    """Run ``redlist-verify bundle DIR --log-key FILE --json`` on the bundle as a child
    process: its own peak RSS, the largest of it and its signature workers (KiB), and
    its speed (entries/s, from start to exit) between two measurements of the limit."""
    report, errors = scratch / "report.json", scratch / "stderr.txt"
    command = ["bundle", str(generated.directory), "--log-key", str(generated.key_file)]
    before = verify_limit(verify_count)
    started = time.perf_counter()
    with open(report, "wb") as stdout, open(errors, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", _MEASURED, *command, "--json"], stdout=stdout, stderr=stderr
        )
        _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    after = verify_limit(verify_count)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"redlist-verify bundle exited with {process.returncode}")
    if json.loads(report.read_bytes())["tree_size"] != generated.size:
        raise SystemExit(f"redlist-verify did not check the {generated.size} entries")
    last = errors.read_text().splitlines()[-1]
    rate = generated.size / elapsed
    return {
        "entries": generated.size,
        "peak_rss_kib": int(last.removeprefix("peak_rss_kib=")),
        "largest_process_peak_rss_kib": int(usage.ru_maxrss),
        "entries_per_second": round(rate, 1),
        "ratio": round(rate / ((before + after) / 2), 3),
    }


def memory(sizes: list[int], accounts: list[int], verify_count: int) -> dict[str, object]:
    """Peak RSS of ``redlist-verify bundle`` at each size for each number of residents;
    bytes per entry between the two largest sizes that hold every resident."""
    if sorted(set(sizes)) != sizes or not accounts:
        raise SystemExit("--sizes: increasing sizes; --accounts: at least one number")
    groups: list[dict[str, object]] = []
    peaks: dict[tuple[int, int], int] = {}
    with tempfile.TemporaryDirectory(prefix="redlist-audit-") as scratch:
        for residents in accounts:
            runs = []
            for awards in sizes:
                generated = _bundles.generated_bundle(awards, residents)
                print(f"auditing {generated.directory} with redlist-verify bundle", file=sys.stderr)
                run = measured_run(generated, Path(scratch), verify_count)
                print(f"  {json.dumps(run)}", file=sys.stderr)
                runs.append(run)
                peaks[(awards, residents)] = int(run["peak_rss_kib"])
            full = [run for run in runs if run["entries"] >= residents + _bundles.HEAD_ENTRIES]
            group: dict[str, object] = {"accounts": residents, "runs": runs}
            if len(full) >= 2:
                first, last = full[-2], full[-1]
                growth = (int(last["peak_rss_kib"]) - int(first["peak_rss_kib"])) * 1024
                group["bytes_per_entry"] = round(growth / (last["entries"] - first["entries"]), 1)
                group["bytes_per_entry_between"] = [int(first["entries"]), int(last["entries"])]
            groups.append(group)
    output: dict[str, object] = {
        "benchmark": "audit-memory",
        "verify_threads": core_count(),
        "groups": groups,
    }
    few, many = min(accounts), max(accounts)
    common = [awards for awards in sizes if awards + _bundles.HEAD_ENTRIES >= many]
    if few != many and common:
        # Per resident: two runs of the same entries, to few and to many residents.
        awards = common[0]
        extra = (peaks[(awards, many)] - peaks[(awards, few)]) * 1024
        output["bytes_per_account"] = round(extra / (many - few), 1)
        output["bytes_per_account_at"] = awards + _bundles.HEAD_ENTRIES
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="awards in the bundle")
    parser.add_argument("--accounts", default=None, help="residents (--memory: comma-separated)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--verify-count", type=int, default=20_000)
    parser.add_argument("--memory", action="store_true", help="measure peak RSS instead")
    parser.add_argument(
        "--sizes", default=None, help="--memory: awards per bundle, comma-separated"
    )
    parser.add_argument(
        "--large",
        action="store_true",
        default=os.environ.get("REDLIST_BENCH_LARGE") == "1",
        help=f"--memory: sizes {LARGE_SIZES}, residents {LARGE_ACCOUNTS} "
        "(also with REDLIST_BENCH_LARGE=1)",
    )
    args = parser.parse_args(argv)
    prepare_process()
    if args.memory:
        sizes = args.sizes or (LARGE_SIZES if args.large else "2000,12000")
        accounts = args.accounts or (LARGE_ACCOUNTS if args.large else "1000")
        print(
            json.dumps(
                memory(
                    [int(size) for size in sizes.split(",")],
                    [int(count) for count in accounts.split(",")],
                    args.verify_count,
                )
            )
        )
        return 0

    generated = _bundles.generated_bundle(args.entries, int(args.accounts or 5000))
    results = paired_runs(
        lambda run: audit_run(generated, args.workers),
        args.runs,
        args.verify_count,
        "audit",
    )
    output = {
        "benchmark": "audit",
        "entries": generated.size,
        "worker_processes": (args.workers or core_count()) >= 2
        and generated.size >= PROCESS_MIN_ENTRIES,
        **summary(results, DESIGN_TARGET),
    }
    print(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
