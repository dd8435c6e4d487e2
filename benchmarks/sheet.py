"""A clerk's sheet through ``redlist submit``: rows/s of a first run and of a re-run.

Everything goes through the commands a town uses, as subprocesses: ``redlist keygen``,
``redlist-node init`` and ``serve`` on 127.0.0.1, ``redlist key add``, ``redlist rules
load``, then ``redlist submit --csv`` of a sheet of ``--rows`` dated rows (timed from
start to exit: reading, every check, signing, sending, proving each row recorded), and
the same sheet again (every row already recorded: looked up, proved, nothing sent).
Each run starts from a fresh log. In the same process the Ed25519 verify limit is
measured (``benchmarks/_limits.py``), and each rate is given as a share of it, so a run
on another machine (or of an older ``redlist``, with ``--bin``) compares by ratio. One
JSON object goes to stdout; progress to stderr.

    python benchmarks/sheet.py [--rows 20000] [--runs 3] [--bin DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from _limits import core_count, machine, verify_limit

#: The council members whose approval the catalogue needs.
COUNCIL = ("council-1", "council-2")
ORIGIN = "bench.redlist.example/log"
CATALOGUE = (
    "code,title,module,points,council\n"
    "V01,Cleaned the village pond,environment,5,no\n"
    "V02,Epidemic prevention duty,public service,10,no\n"
    "D01,Burned straw in the open,environment,-20,no\n"
)


def sheet(rows: int) -> str:
    """``rows`` dated awards for rows/4 residents, as a month's sheet has them."""
    day = (date.today() - timedelta(days=2)).isoformat()  # in the window in any time zone
    lines = ["account,rule,qty,date,note"]
    for row in range(rows):
        rule = ("V01", "V02", "D01", "V01")[row % 4]
        lines.append(f"bench-{row // 4:05d},{rule},{row % 3 + 1},{day},row {row}")
    return "\n".join(lines) + "\n"


class Town:
    """A fresh log served in a subprocess, with a grid key and a catalogue."""

    def __init__(self, root: Path, bin_dir: Path) -> None:
        self.root = root
        self.bin = bin_dir
        self.env = {**os.environ, "XDG_CONFIG_HOME": str(root / "config")}
        self.process: subprocess.Popen[str] | None = None
        self.address = ""

    def command(self, name: str, *argv: str) -> str:
        done = subprocess.run(
            [str(self.bin / name), *argv],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=3600,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{name} {argv[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def staff(self, *argv: str, signer: str, cosigners: tuple[str, ...] = ()) -> str:
        node = ("--node", self.address, "--log-key", str(self.root / "data" / "log.pub"))
        cosigning = [
            option for name in cosigners for option in ("--cosigner", str(self.root / name))
        ]
        return self.command(
            "redlist", *argv, *node, "--signer", str(self.root / signer), *cosigning
        )

    def __enter__(self) -> Town:
        for name in ("admin", "grid", *COUNCIL):
            self.command(
                "redlist", "keygen", "--out", str(self.root / f"{name}.pem"), "--name", name
            )
        data = str(self.root / "data")
        admin = str(self.root / "admin.pem")
        self.command(
            "redlist-node", "init", "--data", data, "--origin", ORIGIN, "--admin-key", admin
        )
        self.process = subprocess.Popen(
            [str(self.bin / "redlist-node"), "serve", "--data", data, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
        )
        line = self.process.stdout.readline() if self.process.stdout is not None else ""
        match = re.search(r" on (\S+)$", line.strip())
        if match is None:
            raise SystemExit(f"the node did not start: {line!r}")
        self.address = match[1]
        for name, role in (("grid", "grid"), *((member, "council") for member in COUNCIL)):
            pub = str(self.root / f"{name}.pem.pub")
            self.staff(
                "key", "add", "--pub", pub, "--name", name, "--roles", role, signer="admin.pem"
            )
        catalogue = self.root / "catalogue.csv"
        catalogue.write_text(CATALOGUE, encoding="utf-8")
        # The catalogue needs the council's approval (the genesis governance's default).
        council = tuple(f"{member}.pem" for member in COUNCIL)
        self.staff("rules", "load", "--csv", str(catalogue), signer="admin.pem", cosigners=council)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def submit(self, path: Path) -> tuple[float, str]:
        started = time.perf_counter()
        out = self.staff("submit", "--csv", str(path), signer="grid.pem")
        return time.perf_counter() - started, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--verify-count", type=int, default=20_000)
    parser.add_argument(
        "--bin", type=Path, default=Path(sys.executable).parent, help="where redlist is"
    )
    args = parser.parse_args(argv)
    cores = core_count()
    firsts: list[float] = []
    reruns: list[float] = []
    limits: list[float] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="redlist-sheet-") as scratch:
            root = Path(scratch)
            path = root / "month.csv"
            path.write_text(sheet(args.rows), encoding="utf-8")
            with Town(root, args.bin) as town:
                first, out = town.submit(path)
                if f"{args.rows} recorded now" not in out:
                    raise SystemExit(f"run {run}: the first run said {out!r}")
                again, out = town.submit(path)
                if "0 recorded now" not in out:
                    raise SystemExit(f"run {run}: the re-run said {out!r}")
        firsts.append(args.rows / first)
        reruns.append(args.rows / again)
        limits.append(verify_limit(args.verify_count, cores))
        print(
            f"run {run + 1}: {firsts[-1]:,.0f} rows/s, re-run {reruns[-1]:,.0f} rows/s; "
            f"verify limit {limits[-1]:,.0f}/s",
            file=sys.stderr,
        )
    first_rate, rerun_rate = statistics.median(firsts), statistics.median(reruns)
    limit = statistics.median(limits)
    print(
        json.dumps(
            {
                "benchmark": "sheet",
                "machine": machine(),
                "rows": args.rows,
                "runs": [round(rate, 1) for rate in firsts],
                "rows_per_second": round(first_rate, 1),
                "rerun_runs": [round(rate, 1) for rate in reruns],
                "rerun_rows_per_second": round(rerun_rate, 1),
                "verify_threads": cores,
                "verify_limit_per_second": round(limit, 1),
                "ratio": round(first_rate / limit, 3),
                "rerun_ratio": round(rerun_rate / limit, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
