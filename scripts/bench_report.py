"""Write docs/performance.md's table and plot from the benchmarks' JSON (``make bench``).

Usage: python scripts/bench_report.py RESULTS.jsonl [--keep KEPT.jsonl] [--doc FILE ...]
                                      [--plot FILE]

RESULTS holds one JSON object a line, as each of ``benchmarks/*.py`` prints. The table
replaces what lies between the two marker lines of each document (docs/performance.md
and README.md unless ``--doc`` names others; everything else in them is written by
hand); the plot shows the append benchmark's cost per entry against the
log's size, on log-scaled axes, with the bound DESIGN 6 sets (throughput within 20% of
that at 10k entries, so a cost at most 1.25 times it). Needs matplotlib (the ``bench``
extra). A benchmark missing from RESULTS has no row; an unknown one is listed by name.

With ``--keep`` (``make bench`` gives docs/performance.jsonl), the table is written from
the results kept there as well: a new result takes the place of the kept one of the same
benchmark and scale (``identity``: the append and proofs benchmarks at 1M and at 10M
are two), and a kept one the run did not repeat keeps its row, which then says the day
it was measured. The merged results are written back, so a long run (the 10M rows, half
an hour each) is not lost to the next ``make bench``. Each new result is stamped with
the time of the report (``measured_at``) before it is kept.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- bench:begin (written by make bench: scripts/bench_report.py) -->"
END = "<!-- bench:end -->"
#: How a result's ``measured_at`` is written (UTC, to the minute).
TIME_FORMAT = "%Y-%m-%d %H:%M UTC"
HEADERS = ("figure", "measured", "limit (libsodium, all cores)", "ratio", "target", "met")

Result = dict[str, Any]


def _rate(value: float, unit: str = "/s") -> str:
    return f"{value:,.0f}{unit}"


def _met(result: Result) -> str:
    return "yes" if result.get("meets_target") else "**no**"


def _limit(result: Result) -> str:
    limit = result.get("verify_limit_per_second")
    return _rate(limit) if limit else ""


def _verify_limit(result: Result) -> list[tuple[str, ...]]:
    return [
        (
            f"the limit: libsodium `crypto_sign_verify_detached`, {result['message_bytes']}-byte "
            f"message, {result['verify_threads']} threads, best of {result['passes']}",
            f"{_rate(result['verify_limit_per_second'])} "
            f"({_rate(result['verify_per_core_per_second'])} on one thread)",
            _limit(result),
            "1",
            "",
            "",
        )
    ]


def _audit(result: Result) -> list[tuple[str, ...]]:
    return [
        (
            f"full audit, the whole `redlist-verify bundle` process, {result['entries']:,} entries",
            _rate(result["entries_per_second"]),
            _limit(result),
            f"{result['ratio']:.2f}",
            f"≥ {result['target_ratio']:.2f}",
            _met(result),
        )
    ]


def _many(result: Result) -> list[tuple[str, ...]]:
    return [
        (
            f"many logs: the whole `redlist-verify bundles` process, {result['logs']} logs of "
            f"{result['entries_per_log']:,} entries",
            _rate(result["entries_per_second"]),
            _limit(result),
            f"{result['ratio']:.2f}",
            "",
            "",
        )
    ]


def _ingest(result: Result) -> list[tuple[str, ...]]:
    measured = _rate(result["entries_per_second"])
    node_cpu, client_cpu = (
        result.get("node_cpu_us_per_entry"),
        result.get("client_cpu_us_per_entry"),
    )
    if node_cpu and client_cpu:  # from runs that measured them (benchmarks/ingest.py)
        measured += (
            f"; CPU {node_cpu:,.0f} µs an entry (node and workers), {client_cpu:,.1f} (clients)"
        )
    return [
        (
            f"durable ingest over gRPC ({result['entries']:,} awards, {result['clients']} "
            f"clients, batches of {result['batch']})",
            measured,
            _limit(result),
            f"{result['ratio']:.2f}",
            f"≥ {result['target_ratio']:.2f}",
            _met(result),
        )
    ]


def _append(result: Result) -> list[tuple[str, ...]]:
    measured = (
        f"{_rate(result['late_entries_per_second'])} vs {_rate(result['early_entries_per_second'])}"
    )
    cpu = result.get("window_cpu_us_per_entry")
    if cpu:  # the same windows as the rates: the first ones after early_at, the last ones
        ends = result["window_ends"]
        early = [value for end, value in zip(ends, cpu, strict=True) if end > result["early_at"]]
        samples = result.get("samples", 3)  # results before the flag took 3
        early_cpu = statistics.median(early[:samples])
        late_cpu = statistics.median(cpu[-samples:])
        measured += f"; CPU {late_cpu:,.0f} vs {early_cpu:,.0f} µs an entry"
    return [
        (
            f"append at {result['entries']:,} entries vs at {result['early_at']:,} "
            f"(`Log.append`, batches of {result['batch']:,})",
            measured,
            _limit(result),
            f"{result['flatness']:.2f}",
            f"≥ {result['target_flatness']:.2f}",
            _met(result),
        )
    ]


def _proofs(result: Result) -> list[tuple[str, ...]]:
    at = result["rate_size"]
    largest = result["sizes"][-1]
    cost = result["us_per_hash"]
    flat = result.get("flatness_per_hash")
    again = result.get("flatness_us_per_hash", {})
    if flat is None:  # the make bench run, to 1M: proofs/s, and the cost of a hash
        return [
            (
                f"inclusion proofs from the store at {at:,} entries, one thread "
                f"(ratio: cost per proof hash at {result['sizes'][0]:,} entries, wholly in "
                "memory, over at this size; for information)",
                f"{_rate(result['proofs_per_second_at_rate_size'])}; {cost[str(at)]:.2f} µs a hash",
                _limit(result),
                f"{result['per_hash_from_smallest']:.2f}",
                f"≥ {result['target_proofs_per_second']:,}/s",
                _met(result),
            )
        ]
    return [
        (
            f"inclusion proofs: cost per proof hash at {at:,} entries over at {largest:,} "
            "(flat up to 10M; one thread, alternating rounds on the grown log)",
            f"{again[str(at)]:.2f} vs {again[str(largest)]:.2f} µs a hash; "
            f"{_rate(result['proofs_per_second'][str(largest)])} at {largest:,}",
            _limit(result),
            f"{flat:.2f}",
            f"≥ {result['target_flatness_per_hash']:.2f}",
            _met(result),
        )
    ]


def _replicate(result: Result) -> list[tuple[str, ...]]:
    return [
        (
            f"mirror catch-up vs ingest ({result['entries']:,} entries)",
            f"{_rate(result['catch_up_entries_per_second'])} vs "
            f"{_rate(result['ingest_entries_per_second'])}",
            _limit(result),
            f"{result['catch_up_to_ingest']:.2f}",
            f"≥ {result['target_catch_up_to_ingest']:.2f}",
            _met(result),
        )
    ]


def _sheet(result: Result) -> list[tuple[str, ...]]:
    return [
        (
            f"`redlist submit` of a {result['rows']:,}-row sheet",
            _rate(result["rows_per_second"], " rows/s"),
            _limit(result),
            f"{result['ratio']:.2f}",
            "",
            "",
        )
    ]


def _load(result: Result) -> list[tuple[str, ...]]:
    return [
        (
            f"mixed load for {result['seconds']:,} s ({result['submitters']} submitters, "
            f"{result['readers']} readers)",
            _rate(result["entries_per_second"]),
            _limit(result),
            f"{result['ingest_ratio']:.2f}",
            "",
            "yes" if result.get("ok") else "**no**",
        )
    ]


def _peers(result: Result) -> list[tuple[str, ...]]:
    rows = []
    names = {"pymerkle_memory": "in-memory tree", "pymerkle_sqlite": "SQLite tree"}
    ours = result["per_second"]["redlist"]
    for name, ratios in result["ratios"].items():
        theirs = result["per_second"][name]
        for kind in ("append", "inclusion", "consistency"):
            rows.append(
                (
                    f"{result['peer']} {names.get(name, name)}: {kind} "
                    f"({result['entries']:,} entries; ratio: ours over theirs)",
                    f"{_rate(ours[kind])} vs {_rate(theirs[kind])}",
                    _limit(result),
                    f"{ratios[kind]:.2f}",
                    "",
                    "",
                )
            )
    return rows


def _audit_memory(result: Result) -> list[tuple[str, ...]]:
    return [
        (
            f"auditor memory per entry ({result['accounts']:,} accounts)",
            f"{result['bytes_per_entry']:,.0f} bytes",
            "",
            "",
            "",
            "",
        )
    ]


ROWS: dict[str, Callable[[Result], list[tuple[str, ...]]]] = {
    "verify-limit": _verify_limit,
    "ingest": _ingest,
    "audit": _audit,
    "many": _many,
    "append": _append,
    "replicate": _replicate,
    "proofs": _proofs,
    "peers": _peers,
    "sheet": _sheet,
    "load": _load,
    "audit-memory": _audit_memory,
    # ``_bundles.py`` run alone: it writes the audit's bundles, and measures nothing.
    "bundle": lambda result: [],
}


def read_results(path: Path) -> list[Result]:
    """The JSON objects of ``path``, one a line; SystemExit naming the line that is not one."""
    results = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}, line {number}: not a JSON object ({exc})") from None
        if not isinstance(result, dict):
            raise SystemExit(f"{path}, line {number}: not a JSON object")
        results.append(result)
    return results


def identity(result: Result) -> tuple[str, int | None]:
    """Which row a result measures: its benchmark, and for the benchmarks run at 1M and
    at 10M (append, proofs) the size its log grew to."""
    name = str(result.get("benchmark", "?"))
    if name == "append":
        return name, result.get("entries")
    if name == "proofs" and result.get("sizes"):
        return name, result["sizes"][-1]
    return name, None


def merge(kept: list[Result], new: list[Result]) -> list[Result]:
    """``kept`` with each result of the same ``identity`` as a new one replaced by it, in
    place; the new ones that replace none follow, in their order."""
    fresh = {identity(result): result for result in new}
    merged = [fresh.pop(identity(result), result) for result in kept]
    return merged + [result for result in new if identity(result) in fresh]


def stamp(results: list[Result], when: str) -> list[Result]:
    """``results``, each without a ``measured_at`` given ``when``."""
    return [
        result if "measured_at" in result else {**result, "measured_at": when} for result in results
    ]


#: A row measured with the core run from its sources, in a table of compiled ones.
FROM_SOURCES = "core from its sources"


def _compiled(result: Result) -> bool:
    """Whether the result was measured with the core compiled (ADR 0057)."""
    machine = result.get("machine")
    return isinstance(machine, dict) and bool(machine.get("native"))


def _day(result: Result) -> str | None:
    when = result.get("measured_at")
    return str(when)[:10] if when else None


def table(results: list[Result]) -> str:
    """The generated section: a Markdown table, a row or more per benchmark, in ROWS' order."""
    by_name: dict[str, list[Result]] = {}
    for result in results:  # a benchmark run twice (append at 1M and at 10M) has two rows
        by_name.setdefault(result.get("benchmark", "?"), []).append(result)
    days = [day for day in map(_day, results) if day is not None]
    latest = max(days, default=None)
    any_compiled = any(map(_compiled, results))
    sources_marked = False  # a row of the table was measured from the sources
    rows: list[tuple[str, ...]] = []
    for name, make_rows in ROWS.items():
        # The smaller scale first (append at 1M, then at 10M), whatever order they came in.
        for result in sorted(by_name.get(name, []), key=lambda r: identity(r)[1] or 0):
            try:
                made = make_rows(result)
            except (KeyError, TypeError, ValueError) as exc:
                made = [(f"{name}: its JSON lacks {exc}", "", "", "", "", "")]
            day = _day(result)
            if day is not None and day != latest:  # kept from an earlier make bench
                made = [(row[0], f"{row[1]} (measured {day})", *row[2:]) for row in made]
            if any_compiled and not _compiled(result) and made:
                made = [(row[0], f"{row[1]} ({FROM_SOURCES})", *row[2:]) for row in made]
                sources_marked = True
            rows.extend(made)
    rows.extend(
        (f"{name} (no row format)", "", "", "", "", "") for name in by_name if name not in ROWS
    )
    newest = [r for r in results if "machine" in r and _day(r) == latest]
    machine = next((r["machine"] for r in newest or results if "machine" in r), None)
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    when = max(
        (str(r["measured_at"]) for r in results if "measured_at" in r),
        default=datetime.now(UTC).strftime(TIME_FORMAT),
    )
    if machine is not None:
        libraries = ", ".join(f"{name} {version}" for name, version in machine["libraries"].items())
        loads = [r["machine"].get("load_average") for r in newest or results if "machine" in r]
        loads = [load for load in loads if load is not None]
        busy = f", load average {min(loads):g} to {max(loads):g}" if loads else ""
        # Which copy of the core ran (ADR 0057); results from before it ran the sources.
        core = (
            f"; the core compiled by mypyc (ADR 0057), but in the rows marked {FROM_SOURCES}"
            if sources_marked
            else "; the core compiled by mypyc (ADR 0057)"
            if any_compiled
            else "; the core run from its sources"
            if any("native" in r.get("machine", {}) for r in results)
            else ""
        )
        lines.append(
            f"Measured {when} on {machine['cores']} cores ({machine['processor']}, "
            f"{machine['platform']}{busy}), Python {machine['python']}; {libraries}{core}."
        )
    else:
        lines.append(f"Measured {when}.")
    if any(day != latest for day in days):
        lines.append(
            "A row that gives a day was measured that day, by an earlier run this one did "
            "not repeat (its JSON is kept in docs/performance.jsonl)."
        )
    return "\n".join(lines) + "\n"


def replace_section(document: str, section: str) -> str:
    """``document`` with what lies between the markers replaced by ``section``."""
    if BEGIN not in document or END not in document:
        raise SystemExit(f"the document has no generated section (lines {BEGIN!r} and {END!r})")
    head, rest = document.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{section}{END}{tail}"


def plot_append(result: Result, path: Path) -> None:
    """The append benchmark's cost per entry (µs) at each window's end, and the bound."""
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    from matplotlib import pyplot

    sizes = result["window_ends"]
    costs = [1e6 / rate for rate in result["windows"]]
    early = 1e6 / result["early_entries_per_second"]
    bound = early / result["target_flatness"]
    figure, axes = pyplot.subplots(figsize=(8, 4.5), dpi=100)
    axes.plot(sizes, costs, marker=".", linewidth=1, label="wall clock per entry")
    cpu = result.get("window_cpu_us_per_entry")
    if cpu:  # steadier than the wall clock on a shared machine
        axes.plot(sizes, cpu, marker=".", linewidth=1, label="CPU per entry (all its threads)")
    axes.axhline(early, color="grey", linestyle=":", label=f"wall clock at {result['early_at']:,}")
    axes.axhline(
        bound,
        color="red",
        linestyle="--",
        label=f"bound: throughput within {1 - result['target_flatness']:.0%} of that",
    )
    axes.set_xscale("log")
    axes.set_xlim(left=min(10_000, min(sizes)), right=max(10_000_000, max(sizes)))
    axes.set_ylim(bottom=0, top=max([*costs, *(cpu or []), bound]) * 1.15)
    axes.set_xlabel("entries in the log")
    axes.set_ylabel("µs per appended entry")
    axes.set_title(
        f"Log.append, batches of {result['batch']:,}, up to {result['entries']:,} entries"
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("results", type=Path, help="the benchmarks' JSON, one object a line")
    parser.add_argument(
        "--doc", type=Path, action="append", help="a document to write the table into"
    )
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "performance-append.png")
    parser.add_argument(
        "--keep",
        type=Path,
        help="the results the table was written from before: merged with RESULTS, and written back",
    )
    args = parser.parse_args(argv)
    results = stamp(read_results(args.results), datetime.now(UTC).strftime(TIME_FORMAT))
    if args.keep is not None and args.keep.exists():
        results = merge(read_results(args.keep), results)
    documents = args.doc or [ROOT / "docs" / "performance.md", ROOT / "README.md"]
    section = table(results)
    # Every document is checked before any is written: all of them change, or none.
    updated = [replace_section(path.read_text(encoding="utf-8"), section) for path in documents]
    for path, text in zip(documents, updated, strict=True):
        path.write_text(text, encoding="utf-8")
        print(f"wrote the table into {path}", file=sys.stderr)
    if args.keep is not None:
        args.keep.write_text("".join(json.dumps(r) + "\n" for r in results), encoding="utf-8")
        print(f"kept the results in {args.keep}", file=sys.stderr)
    appends = [r for r in results if r.get("benchmark") == "append"]
    # The plot shows the longest log grown.
    append = max(appends, key=lambda r: r.get("entries", 0), default=None)
    if append is not None and append.get("window_ends"):
        plot_append(append, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    else:
        print("no append results: the plot is unchanged", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
