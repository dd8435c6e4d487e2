"""Each benchmark runs end to end on a tiny workload and reports consistent figures.

These are correctness runs with timing off: nothing here asserts a speed (that is
for ``make bench`` on a quiet machine, README "Performance"); each test checks
that the script ran the work it describes and that its JSON adds up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, *arguments: str, bundles: Path | None = None) -> dict[str, Any]:
    """Run a benchmark; ``bundles`` is where the audit benchmark keeps its bundles."""
    env = dict(os.environ)
    if bundles is not None:
        env["REDLIST_BENCH_BUNDLES"] = str(bundles)
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) == 1, completed.stdout  # one JSON object, progress on stderr
    result: dict[str, Any] = json.loads(lines[0])
    return result


def test_the_limit_alone_prints_its_figures() -> None:
    result = run("_limits.py", "--count", "200")
    assert result["benchmark"] == "verify-limit"
    assert result["verify_limit_per_second"] > 0
    assert result["verify_per_core_per_second"] > 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_audit_benchmark_audits_the_whole_bundle(workers: str, tmp_path: Path) -> None:
    result = run(
        *("audit.py", "--entries", "300", "--runs", "2", "--verify-count", "200"),
        *("--workers", workers),
        bundles=tmp_path,
    )
    assert result["benchmark"] == "audit"
    assert result["entries"] == 305  # genesis, three keys, rule and the awards
    assert result["worker_processes"] is False  # too few entries to start processes
    assert len(result["runs"]) == len(result["run_ratios"]) == 2
    assert all(rate > 0 for rate in result["runs"])
    ratios = sorted(result["run_ratios"])
    assert ratios[0] <= result["ratio"] <= ratios[-1]
    assert result["meets_target"] == (result["ratio"] >= result["target_ratio"] == 0.7)


def test_the_audit_benchmark_measures_the_verifiers_memory(tmp_path: Path) -> None:
    arguments = ("--memory", "--sizes", "40,200,600", "--accounts", "5,100")
    result = run("audit.py", *arguments, "--verify-count", "200", bundles=tmp_path)
    assert result["benchmark"] == "audit-memory"
    few, many = result["groups"]
    assert (few["accounts"], many["accounts"]) == (5, 100)
    for group in (few, many):
        assert [run["entries"] for run in group["runs"]] == [45, 205, 605]
        assert all(run["peak_rss_kib"] > 10_000 for run in group["runs"])
        assert all(run["entries_per_second"] > 0 and run["ratio"] > 0 for run in group["runs"])
        assert isinstance(group["bytes_per_entry"], float)
        assert group["bytes_per_entry_between"] == [205, 605]
    # Per resident: the first size that holds all 100 residents, to 5 and to 100.
    assert result["bytes_per_account_at"] == 205
    assert isinstance(result["bytes_per_account"], float)
    # The bundles are kept for the next run, one directory each.
    kept = {path.name for path in tmp_path.iterdir()}
    assert kept == {f"v2-awards-{n}-accounts-{a}" for a in (5, 100) for n in (40, 200, 600)}


def test_a_bundle_cut_from_a_larger_one_is_its_start_and_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setenv("REDLIST_BENCH_BUNDLES", str(tmp_path))
    import _bundles
    import audit as audit_benchmark
    from ingest import BenchTown

    large = _bundles.generated_bundle(50, 7)
    cut = _bundles.generated_bundle(20, 7)
    assert (large.size, cut.size) == (55, 25)
    assert cut.directory.parent.name == "v2-awards-20-accounts-7"
    leaves = (cut.directory / "leaves").read_bytes()
    assert (large.directory / "leaves").read_bytes().startswith(leaves)
    signer = _bundles.log_signer(BenchTown())
    assert cut.key_file.read_text().strip() == signer.verifier().encode()
    assert audit_benchmark.audit_run(cut, 1) > 0
    assert not [path for path in tmp_path.iterdir() if path.name.startswith("partial-")]


def test_the_audit_benchmark_refuses_a_wrong_result(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import audit as audit_benchmark
        from _bundles import GeneratedBundle
        from ingest import BenchTown
    finally:
        sys.path.remove(str(BENCHMARKS))
    directory = tmp_path / "bundle"
    signer, size = audit_benchmark.write_bundle(directory, BenchTown(), 5)
    (tmp_path / "log.vkey").write_text(signer.verifier().encode() + "\n")
    assert audit_benchmark.audit_run(GeneratedBundle(directory, size), 1) > 0
    with pytest.raises(SystemExit, match="not 11"):
        audit_benchmark.audit_run(GeneratedBundle(directory, size + 1), 1)


def test_the_append_benchmark_grows_the_log_and_compares_windows() -> None:
    result = run(
        "append.py",
        *("--entries", "1500", "--early", "300", "--window", "200", "--batch", "50"),
        *("--plateau", "600", "--samples", "3"),
        *("--verify-count", "200"),
    )
    assert result["benchmark"] == "append"
    assert result["entries"] == 1500
    windows = result["windows"]
    assert len(windows) == 7  # (1500 - 5 set-up entries) // 200
    assert result["early_entries_per_second"] in windows
    assert result["late_entries_per_second"] in windows
    flatness = result["late_entries_per_second"] / result["early_entries_per_second"]
    assert abs(result["flatness"] - flatness) < 0.002
    # The windows end at 205, 405, 605, ...: the plateau is the median of those after 600.
    assert result["plateau_entries_per_second"] == sorted(windows[2:5])[1]
    plateau = result["late_entries_per_second"] / result["plateau_entries_per_second"]
    assert abs(result["flatness_from_plateau"] - plateau) < 0.002
    assert result["anonymous_kib_late"] is None or result["anonymous_kib_late"] > 0
    assert result["data_bytes"] > 1500 * 100
    assert result["window_ends"] == [205 + 200 * n for n in range(7)]  # for the plot
    assert result["samples"] == 3
    assert result["late_entries_per_second"] == sorted(windows[-3:])[1]
    assert len(result["window_cpu_us_per_entry"]) == 7
    assert all(cpu > 0 for cpu in result["window_cpu_us_per_entry"])


def test_the_append_benchmark_refuses_too_few_entries() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "append.py"), "--entries", "100"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "--entries must be at least" in completed.stderr


def test_the_proofs_benchmark_measures_each_size() -> None:
    result = run("proofs.py", "--sizes", "512,64", "--proofs", "100", "--verify-count", "200")
    assert result["benchmark"] == "proofs"
    assert result["sizes"] == [64, 512]
    rates = result["proofs_per_second"]
    assert set(rates) == {"64", "512"}
    # Without the rate size (2^20) among the sizes, the target is held at the largest.
    assert result["rate_size"] == 512
    assert result["proofs_per_second_at_rate_size"] == rates["512"]
    assert abs(result["flatness"] - rates["512"] / rates["64"]) < 0.002
    hashes = result["hashes_per_proof"]
    assert 0 < hashes["64"] <= 6 < hashes["512"] <= 9  # log2 of the size, at most
    per_hash = (rates["512"] * hashes["512"]) / (rates["64"] * hashes["64"])
    assert abs(result["per_hash_from_smallest"] - per_hash) < 0.002
    cost = result["us_per_hash"]
    assert abs(cost["64"] / cost["512"] - per_hash) < 0.01
    assert result["flatness_per_hash"] is None  # nothing measured beyond the rate size


def test_the_proofs_benchmark_measures_flatness_beyond_the_rate_size() -> None:
    result = run(
        "proofs.py",
        *("--sizes", "64,512", "--rate-size", "64", "--proofs", "100", "--verify-count", "200"),
    )
    assert result["rate_size"] == 64
    assert result["proofs_per_second_at_rate_size"] == result["proofs_per_second"]["64"]
    # Measured again in alternating rounds: near the ratio of the costs measured first.
    again = result["flatness_us_per_hash"]
    assert set(again) == {"64", "512"}
    assert abs(result["flatness_per_hash"] - again["64"] / again["512"]) < 0.01
    assert result["meets_target"] == (
        result["proofs_per_second_at_rate_size"] >= result["target_proofs_per_second"]
        and result["flatness_per_hash"] >= result["target_flatness_per_hash"]
    )


def test_the_replicate_benchmark_mirrors_the_log_and_measures_its_lag() -> None:
    result = run(
        "replicate.py",
        *("--entries", "200", "--batch", "50", "--steady-batches", "4", "--steady-batch", "10"),
        *("--verify-count", "200"),
    )
    assert result["benchmark"] == "replicate"
    assert result["entries"] == 205  # genesis, three keys, rule and the awards
    ratio = result["catch_up_entries_per_second"] / result["ingest_entries_per_second"]
    assert abs(result["catch_up_to_ingest"] - ratio) < 0.002
    assert result["meets_target"] == (result["catch_up_to_ingest"] >= 0.8)
    limit = result["verify_limit_per_second"]
    assert abs(result["catch_up_ratio"] - result["catch_up_entries_per_second"] / limit) < 0.002
    assert 0 <= result["lag_ms_median"] <= result["lag_ms_max"]
    assert 0 <= result["lag_entries_median"] <= result["lag_entries_max"]


def test_the_sheet_benchmark_submits_the_sheet_and_its_rerun_records_nothing() -> None:
    result = run("sheet.py", "--rows", "60", "--runs", "1", "--verify-count", "200")
    assert result["benchmark"] == "sheet"
    assert result["rows"] == 60
    assert len(result["runs"]) == len(result["rerun_runs"]) == 1
    assert result["rows_per_second"] > 0 and result["rerun_rows_per_second"] > 0
    assert result["ratio"] == round(
        result["rows_per_second"] / result["verify_limit_per_second"], 3
    )


def test_the_bundle_writer_alone_prints_the_bundle_it_keeps(tmp_path: Path) -> None:
    result = run("_bundles.py", "--awards", "50", "--accounts", "5", bundles=tmp_path)
    assert result["benchmark"] == "bundle" and result["entries"] == 55
    assert Path(result["directory"]) == tmp_path / "v2-awards-50-accounts-5" / "bundle"
    assert (Path(result["directory"]) / "checkpoint").is_file()
