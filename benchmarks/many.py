"""Many logs at once (issue 12): ``redlist-verify bundles`` on a county's bundles.

One bundle of ``--awards`` awards (plus genesis and setup) is written as
``benchmarks/audit.py`` writes its bundle, and copied ``--logs`` times into a county
directory; the whole ``redlist-verify bundles COUNTY --log-key KEY --json`` process is
then timed, start to exit, ``--runs`` times, each run between two measurements of the
verify limit. The figure is the entries of all the logs over the seconds the command
took; its ratio to the limit is comparable with the single audit's (``audit.py``),
which it should approach as the logs keep every core busy, one process per log.
One JSON object goes to stdout; progress to stderr.

    python benchmarks/many.py [--logs 8] [--awards 20000] [--runs 3]
    python benchmarks/many.py --logs 3 --awards 200 --runs 1 --verify-count 200   # tests
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _limits import paired_runs, prepare_process, summary
from audit import write_bundle
from ingest import BenchTown

from redlist.ledger.note.keys import NoteSigner


def county_run(county: Path, signer: NoteSigner, logs: int, size: int) -> float:
    """Entries per second of one ``redlist-verify bundles`` process over the county."""
    command = [sys.executable, "-m", "redlist.verifier.cli", "bundles", str(county)]
    command += ["--log-key", signer.verifier().encode(), "--json"]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(
            f"redlist-verify bundles exited {completed.returncode}: {completed.stderr}"
        )
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    if len(lines) != logs or not all(line["ok"] and line["tree_size"] == size for line in lines):
        raise SystemExit(f"the audits did not verify {logs} logs of {size} entries")
    return logs * size / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--logs", type=int, default=8)
    parser.add_argument("--awards", type=int, default=20_000, help="awards in each log")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--verify-count", type=int, default=20_000)
    args = parser.parse_args(argv)
    prepare_process()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="redlist-many-") as scratch:
        county = Path(scratch) / "county"
        signer, size = write_bundle(county / "town-000", BenchTown(), args.awards)
        for number in range(1, args.logs):
            shutil.copytree(county / "town-000", county / f"town-{number:03d}")
        print(f"{args.logs} bundles of {size:,} entries written", file=sys.stderr)
        results = paired_runs(
            lambda _run: county_run(county, signer, args.logs, size),
            args.runs,
            args.verify_count,
            "redlist-verify bundles",
        )
    result = {
        "benchmark": "many",
        "logs": args.logs,
        "entries_per_log": size,
        "entries": args.logs * size,
        **summary(results, 0.0),
        "seconds": round(time.perf_counter() - started, 1),
    }
    for key in ("target_ratio", "meets_target"):  # no target of its own (DESIGN 6 has none)
        result.pop(key)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
