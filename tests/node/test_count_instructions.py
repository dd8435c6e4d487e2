"""scripts/count_instructions.py counts a real node's instructions under callgrind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "count_instructions.py"


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_the_node_is_counted_per_award(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            *(sys.executable, str(SCRIPT), "--small", "1", "--large", "2"),
            *("--batch", "100", "--keep", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(completed.stdout)
    assert result["awards"] == 100
    small, large = result["totals"]["1"], result["totals"]["2"]
    assert large > small > 0
    assert result["instructions_per_award"] == round((large - small) / 100)
    # An award costs the node tens of thousands of instructions, not the start-up's
    # billions: the difference of the two runs is what one more batch costs.
    assert 10_000 < result["instructions_per_award"] < 5_000_000
    assert sorted(path.name for path in tmp_path.iterdir()) == ["callgrind.1", "callgrind.2"]
