"""Examples in the commands' help keep their line breaks.

In a plain triple-quoted string, a backslash at the end of a line joins it to the
next: an example written as a shell command over several lines (``... \\``) would be
shown as one line with runs of spaces, in English and in every translation.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    path
    for folder in ("ledger", "node", "verifier", "staff", "proto", "demo")
    for path in (ROOT / folder / "src").rglob("*.py")
    if "_pb2" not in path.name
)
#: A line that ends in one backslash, which is not the opening of a string (``"""\``).
JOINED = re.compile(r"(?<!\\)\\$")


def test_no_source_line_ends_in_a_joining_backslash() -> None:
    joined = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in SOURCES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if JOINED.search(line) and not line.endswith('"""\\')
    ]
    assert joined == [], "write \\\\ at the end of an example's line: " + ", ".join(joined)


def test_the_check_sees_a_joining_backslash() -> None:
    assert JOINED.search("  redlist-node serve --data town \\")
    assert not JOINED.search("  redlist-node serve --data town \\\\")
