"""``scripts/bench_report.py``: the table and the plot ``make bench`` writes from the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_report.py"
BEGIN = "<!-- bench:begin (written by make bench: scripts/bench_report.py) -->"
END = "<!-- bench:end -->"

MACHINE = {
    "cores": 2,
    "python": "3.11.7",
    "platform": "Linux",
    "processor": "x86_64",
    "libraries": {"pynacl": "1.6.2"},
}
RESULTS: list[dict[str, Any]] = [
    {
        "benchmark": "verify-limit",
        "verify_threads": 2,
        "verify_limit_per_second": 45500.0,
        "verify_per_core_per_second": 23000.0,
        "message_bytes": 200,
        "passes": 3,
        "machine": MACHINE,
    },
    {
        "benchmark": "audit",
        "entries": 100003,
        "entries_per_second": 30000.0,
        "verify_limit_per_second": 45000.0,
        "ratio": 0.667,
        "target_ratio": 0.7,
        "meets_target": False,
        "machine": MACHINE,
    },
    {
        "benchmark": "append",
        "entries": 40000,
        "batch": 1000,
        "early_at": 10000,
        "early_entries_per_second": 15000.0,
        "late_entries_per_second": 13000.0,
        "windows": [15000.0, 14000.0, 13000.0],
        "window_ends": [10003, 20003, 30003],
        "window_cpu_us_per_entry": [50.0, 51.0, 52.0],
        "flatness": 0.867,
        "target_flatness": 0.8,
        "meets_target": True,
        "verify_limit_per_second": 44000.0,
        "machine": MACHINE,
    },
    {"benchmark": "something-new", "machine": MACHINE},
]


def jsonl(results: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(result) + "\n" for result in results)


def _rows(doc: Path) -> list[str]:
    return [line for line in doc.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]


def report(
    tmp_path: Path, document: str, given: list[dict[str, Any]] = RESULTS, *options: str
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    results = tmp_path / "bench.jsonl"
    results.write_text(jsonl(given))
    doc, plot = tmp_path / "performance.md", tmp_path / "append.png"
    doc.write_text(document, encoding="utf-8")
    completed = subprocess.run(
        [
            *(sys.executable, str(SCRIPT), str(results)),
            *("--doc", str(doc), "--plot", str(plot), *options),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return completed, doc, plot


def test_the_table_replaces_the_generated_section_only(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")  # the bench extra, which make install installs
    before = f"# Performance\n\nBy hand.\n\n{BEGIN}\nan old table\n{END}\n\nAlso by hand.\n"
    completed, doc, plot = report(tmp_path, before)
    assert completed.returncode == 0, completed.stderr
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Performance\n\nBy hand.\n\n" + BEGIN + "\n| figure |")
    assert text.endswith(END + "\n\nAlso by hand.\n")
    assert "an old table" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 5  # the header, three known benchmarks, one unknown
    assert "45,500/s (23,000/s on one thread)" in rows[1]
    assert "| 30,000/s | 45,000/s | 0.67 | ≥ 0.70 | **no** |" in rows[2]
    assert "append at 40,000 entries vs at 10,000" in rows[3]
    assert "| 0.87 | ≥ 0.80 | yes |" in rows[3]
    assert "13,000/s vs 15,000/s; CPU 51 vs 51 µs an entry" in rows[3]
    assert "something-new (no row format)" in rows[4]
    assert "on 2 cores (x86_64, Linux), Python 3.11.7; pynacl 1.6.2." in text
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("natives", "says", "marked"),
    [
        ([["codec", "points"]] * 3, "; the core compiled by mypyc (ADR 0057).", 0),
        ([[]] * 3, "; the core run from its sources.", 0),
        (
            [["codec"], [], None],
            "; the core compiled by mypyc (ADR 0057), but in the rows marked "
            "core from its sources.",
            2,
        ),
    ],
)
def test_the_table_says_which_copy_of_the_core_ran(
    tmp_path: Path, natives: list[list[str] | None], says: str, marked: int
) -> None:
    """A result without ``native`` was measured before the core was compiled."""
    pytest.importorskip("matplotlib")
    given = [
        {**result, "machine": {**MACHINE, **({} if native is None else {"native": native})}}
        for result, native in zip(RESULTS[:3], natives, strict=True)
    ]
    completed, doc, _ = report(tmp_path, f"{BEGIN}\n{END}\n", given)
    assert completed.returncode == 0, completed.stderr
    text = doc.read_text(encoding="utf-8")
    assert "pynacl 1.6.2" + says in text
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert sum("(core from its sources)" in row for row in rows) == marked
    assert "(core from its sources)" not in rows[0]


def test_a_result_that_makes_no_row_marks_nothing(tmp_path: Path) -> None:
    """The bundle written before the audits has no row and no ``native``: the table's
    rows, all compiled, are said to be compiled, with no rows marked."""
    pytest.importorskip("matplotlib")
    compiled = {**MACHINE, "native": ["codec"]}
    given = [
        *({**result, "machine": compiled} for result in RESULTS[:3]),
        {"benchmark": "bundle", "entries": 10_005, "machine": MACHINE},
    ]
    completed, doc, _ = report(tmp_path, f"{BEGIN}\n{END}\n", given)
    assert completed.returncode == 0, completed.stderr
    text = doc.read_text(encoding="utf-8")
    assert "pynacl 1.6.2; the core compiled by mypyc (ADR 0057)." in text
    assert "core from its sources" not in text


def test_a_document_without_the_markers_is_left_alone(tmp_path: Path) -> None:
    completed, doc, plot = report(tmp_path, "# Performance\n")
    assert completed.returncode != 0
    assert "no generated section" in completed.stderr
    assert doc.read_text(encoding="utf-8") == "# Performance\n"
    assert not plot.exists()


def test_a_benchmark_run_twice_has_a_row_each_and_the_bundle_writer_none(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    append = next(result for result in RESULTS if result["benchmark"] == "append")
    longer = {**append, "entries": 10_000_000, "late_entries_per_second": 7000.0}
    extra = [longer, {"benchmark": "bundle", "entries": 10005, "seconds": 0.4}]
    completed, doc, _ = report(tmp_path, f"{BEGIN}\n{END}\n", [*RESULTS, *extra])
    assert completed.returncode == 0, completed.stderr
    rows = _rows(doc)
    appends = [row for row in rows if "append at" in row]
    assert [("40,000" in row, "10,000,000" in row) for row in appends] == [
        (True, False),
        (False, True),
    ]
    assert not any(row.startswith("| bundle") for row in rows)


def test_the_appends_cpu_comes_from_the_windows_its_rates_do(tmp_path: Path) -> None:
    """A result names how many windows each end's figures take (``samples``; 3 before
    the flag): the CPU figures take as many."""
    pytest.importorskip("matplotlib")
    append = next(result for result in RESULTS if result["benchmark"] == "append")
    one = {**append, "samples": 1, "window_cpu_us_per_entry": [40.0, 51.0, 90.0]}
    completed, doc, _ = report(tmp_path, f"{BEGIN}\n{END}\n", [one])
    assert completed.returncode == 0, completed.stderr
    assert "CPU 90 vs 40 µs an entry" in _rows(doc)[1]


def test_the_ingest_row_gives_the_cpu_an_entry_where_it_was_measured(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    ingest = {
        "benchmark": "ingest",
        "entries": 20000,
        "clients": 2,
        "batch": 500,
        "entries_per_second": 12000.0,
        "verify_limit_per_second": 36000.0,
        "ratio": 0.333,
        "target_ratio": 0.5,
        "meets_target": False,
        "machine": MACHINE,
    }
    measured = {**ingest, "node_cpu_us_per_entry": 117.4, "client_cpu_us_per_entry": 1.74}
    completed, doc, _ = report(tmp_path, f"{BEGIN}\n{END}\n", [RESULTS[0], measured, ingest])
    assert completed.returncode == 0, completed.stderr
    rows = [line for line in doc.read_text(encoding="utf-8").splitlines() if "ingest" in line]
    assert "| 12,000/s; CPU 117 µs an entry (node and workers), 1.7 (clients) |" in rows[0]
    assert "| 12,000/s |" in rows[1]  # an older run's JSON, without them


def test_a_row_this_run_did_not_measure_again_is_kept_with_its_day(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    append = next(result for result in RESULTS if result["benchmark"] == "append")
    at_10m = {**append, "entries": 10_000_000, "measured_at": "2026-11-30 09:00 UTC"}
    old_audit = {**RESULTS[1], "ratio": 0.5, "measured_at": "2026-11-30 09:00 UTC"}
    kept = tmp_path / "kept.jsonl"
    kept.write_text(jsonl([old_audit, at_10m]))
    completed, doc, plot = report(tmp_path, f"{BEGIN}\n{END}\n", RESULTS, "--keep", str(kept))
    assert completed.returncode == 0, completed.stderr
    rows = _rows(doc)
    audits = [row for row in rows if "30,000/s" in row]
    assert len(audits) == 1  # the new audit took the kept one's place
    assert "| 0.67 |" in audits[0] and "measured 2026" not in audits[0]
    appends = [row for row in rows if "append at" in row]
    assert "append at 40,000 entries" in appends[0] and "(measured" not in appends[0]
    assert "append at 10,000,000 entries" in appends[1]
    assert "13,000/s vs 15,000/s; CPU 51 vs 51 µs an entry (measured 2026-11-30)" in appends[1]
    assert "by an earlier run this one did not repeat" in doc.read_text(encoding="utf-8")
    written = [json.loads(line) for line in kept.read_text().splitlines()]
    # In the kept order, the new audit in the old one's place; the new ones stamped.
    assert [(r["benchmark"], r.get("entries")) for r in written] == [
        ("audit", 100003),
        ("append", 10_000_000),
        ("verify-limit", None),
        ("append", 40000),
        ("something-new", None),
    ]
    assert written[0]["ratio"] == 0.667
    assert written[1]["measured_at"] == "2026-11-30 09:00 UTC"
    assert all(r["measured_at"].endswith(" UTC") for r in written)
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")  # of the longest log


def test_kept_results_that_are_not_json_are_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    kept = tmp_path / "kept.jsonl"
    kept.write_text(jsonl(RESULTS[:1]) + "{not json\n")
    completed, doc, plot = report(tmp_path, f"{BEGIN}\nold\n{END}\n", RESULTS, "--keep", str(kept))
    assert completed.returncode != 0
    assert "kept.jsonl, line 2: not a JSON object" in completed.stderr
    assert doc.read_text(encoding="utf-8") == f"{BEGIN}\nold\n{END}\n"
    assert kept.read_text().endswith("{not json\n")
    assert not plot.exists()
