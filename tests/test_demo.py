"""``make demo`` (``python -m redlist.demo``) runs end to end and its bundle verifies."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from redlist import demo
from redlist.verifier import cli as verifier_cli

# Entries the demo appends: genesis, 6 keys, 15 rules, 300 grid entries, 3 council
# awards, 1 redemption, 1 objection, 1 reversal.
DEMO_ENTRIES = 1 + 6 + 15 + 300 + 3 + 1 + 1 + 1


def verify_json(root: Path) -> dict[str, object]:
    output = io.StringIO()
    argv = ["bundle", str(root / "bundle"), "--log-key", str(root / "node" / "log.pub"), "--json"]
    with redirect_stdout(output):
        assert verifier_cli.main(argv) == 0
    result: dict[str, object] = json.loads(output.getvalue())
    return result


def test_make_demo_command_runs_end_to_end(tmp_path: Path) -> None:
    # Exactly what `make demo` runs, in a fresh directory, with the default ./demo-data.
    result = subprocess.run(
        [sys.executable, "-m", "redlist.demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    for step in range(1, 10):
        assert f"Step {step}." in result.stdout
    assert "Result: the bundle verifies." in result.stdout
    assert "redlist-verify bundle demo-data/bundle --log-key demo-data/node/log.pub" in (
        result.stdout
    )
    verdict = verify_json(tmp_path / "demo-data")
    assert verdict["ok"] is True
    assert verdict["tree_size"] == DEMO_ENTRIES
    accounts = verdict["accounts"]
    assert isinstance(accounts, dict)
    assert sorted(accounts) == [f"dgc-{number:04d}" for number in range(1, demo.RESIDENTS + 1)]


def test_the_objected_deduction_is_reversed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "demo"
    assert demo.main(["--dir", str(root)]) == 0
    output = capsys.readouterr().out
    accounts = verify_json(root)["accounts"]
    assert isinstance(accounts, dict)
    objector = accounts[demo.OBJECTOR]
    line = re.search(
        rf"{demo.OBJECTOR}: score (\d+) \(grade \w+\) -> (\d+) \(grade (\w+)\)", output
    )
    assert line is not None, output
    before, after, grade = int(line[1]), int(line[2]), line[3]
    assert after == before + 20  # the burning-straw deduction was withdrawn
    # The node's view printed in step 7 is what the verifier recomputed independently.
    assert (after, grade) == (objector["score"], objector["grade"])


def test_the_demo_wipes_its_own_previous_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "demo"
    assert demo.main(["--dir", str(root)]) == 0
    (root / "leftover.txt").write_text("from the last run")
    assert demo.main(["--dir", str(root)]) == 0
    assert not (root / "leftover.txt").exists()
    assert verify_json(root)["tree_size"] == DEMO_ENTRIES


def test_the_demo_never_wipes_a_directory_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "important"
    root.mkdir()
    (root / "ledger.xlsx").write_bytes(b"the village's own records")
    assert demo.main(["--dir", str(root)]) == 2
    assert "was not made by the demo" in capsys.readouterr().err
    assert [path.name for path in root.iterdir()] == ["ledger.xlsx"]
