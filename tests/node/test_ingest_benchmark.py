"""benchmarks/ingest.py runs end to end on a tiny workload and prints one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "ingest.py"


def test_the_ingest_benchmark_prints_its_figures() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            "--entries",
            "300",
            "--batch",
            "50",
            "--runs",
            "1",
            "--verify-count",
            "200",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(completed.stdout)
    assert result["benchmark"] == "ingest"
    assert result["entries"] == 300
    assert len(result["runs"]) == 1
    assert result["entries_per_second"] > 0
    assert result["verify_limit_per_second"] > 0
    expected = result["entries_per_second"] / result["verify_limit_per_second"]
    assert abs(result["ratio"] - expected) < 0.002
    # The CPU an entry cost: the node with its workers (at least the signature each
    # entry carries, verified somewhere), and the clients.
    assert result["node_cpu_us_per_entry"] > 0
    assert result["client_cpu_us_per_entry"] > 0
