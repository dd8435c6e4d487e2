"""benchmarks/load.py as a correctness test: a short run with no errors and no lost acks.

Timing is off: nothing here depends on how fast the machine is. Under ``make soak``
(``REDLIST_SOAK=1``) the run lasts two minutes at full size instead. The run must
finish, every kind of call must have been made and checked, every acknowledged
entry must be in the log afterwards, and the JSON must carry every figure the
documentation quotes. The check for lost acknowledgements is itself tested on a
log whose contents are known.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
LOAD = BENCHMARKS / "load.py"
KINDS = ("submit", "checkpoint", "leaves", "inclusion", "account")
SOAK = os.environ.get("REDLIST_SOAK") == "1"


@pytest.fixture(scope="module")
def quick_run() -> dict[str, Any]:
    mode = ["--seconds", "120"] if SOAK else ["--quick"]
    completed = subprocess.run(
        [sys.executable, str(LOAD), *mode],
        capture_output=True,
        text=True,
        timeout=600 if SOAK else 180,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout)
    print(f"load-summary {completed.stdout.strip()}")
    return result


def test_the_quick_run_has_no_errors_and_no_lost_acks(quick_run: dict[str, Any]) -> None:
    assert quick_run["benchmark"] == "load"
    assert quick_run["ok"] is True
    assert quick_run["errors"] == 0
    assert quick_run["first_errors"] == []
    assert quick_run["lost_acks"] == 0


def test_every_kind_of_call_was_made_and_timed(quick_run: dict[str, Any]) -> None:
    for kind in KINDS:
        assert quick_run["requests"][kind] > 0, kind
        latency = quick_run["latency_ms"][kind]
        assert 0 <= latency["p50"] <= latency["p99"], kind


def test_the_figures_agree_with_each_other(quick_run: dict[str, Any]) -> None:
    sizes = quick_run["log_size"]
    assert quick_run["entries_acked"] == sizes["end"] - sizes["start"]
    assert quick_run["entries_acked"] == quick_run["requests"]["submit"] * quick_run["batch"]
    assert sizes["start"] <= sizes["middle"] <= sizes["end"]
    rate = quick_run["entries_acked"] / quick_run["seconds"]
    assert quick_run["entries_per_second"] == pytest.approx(rate, rel=0.01)  # seconds are rounded
    assert quick_run["verify_limit_per_second"] > 0
    expected_ratio = quick_run["entries_per_second"] / quick_run["verify_limit_per_second"]
    assert abs(quick_run["ingest_ratio"] - expected_ratio) < 0.002
    for point in ("start", "middle", "end"):
        assert quick_run["node_rss_mib"][point] > 0
        assert 0 < quick_run["node_rss_anon_mib"][point] <= quick_run["node_rss_mib"][point]


@pytest.fixture
def load_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import load  # type: ignore[import-not-found, unused-ignore]

    module: ModuleType = load
    return module


def test_lost_acks_finds_a_missing_or_different_entry(
    load_module: ModuleType, tmp_path: Path
) -> None:
    import ingest  # type: ignore[import-not-found, unused-ignore]

    town = ingest.BenchTown()
    genesis, setup = town.genesis(), town.setup()
    data = tmp_path / "data"
    size = ingest.make_log(data, town, genesis, setup)
    digests = {seq: hashlib.sha256(raw).digest() for seq, raw in enumerate([genesis, *setup])}
    assert load_module.lost_acks(data, digests) == (0, size)
    assert load_module.lost_acks(data, {**digests, size: bytes(32)}) == (1, size)
    assert load_module.lost_acks(data, {**digests, 1: digests[2]}) == (1, size)
