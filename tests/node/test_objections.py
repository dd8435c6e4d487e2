"""``redlist-node objections``: awards objected to and not yet reversed, with their window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.node.publicitytown import JAN_20, build

from redlist.ledger.log import Log
from redlist.node.cli import main


def test_an_objection_is_open_until_the_council_reverses_the_award(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    town = build(tmp_path / "data")
    data = str(town.data)
    assert main(["objections", "--data", data]) == 0
    out = capsys.readouterr().out  # January's deduction was reversed; March's is open
    assert "dgc-0001" in out and "litter" in out and "1 open objection(s)." in out
    assert "dgc-0003" not in out
    with Log.open(town.data) as log:
        target = town.january[1] - 1  # dgc-0004's award at the last second of January
        town.town.now_ms += 86_400_000
        objection = log.append([town.town.objection(target)], now_ms=town.town.now_ms).seqs[0]
    assert main(["objections", "--data", data, "--month", "2026-01"]) == 0
    out = capsys.readouterr().out
    assert "dgc-0004" in out and str(objection) in out and "month not yet published" in out
    assert main(["objections", "--data", data, "--month", "2026-02"]) == 0
    assert "No open objections to awards recorded in 2026-02." in capsys.readouterr().out
    # Published long ago: the window has closed, the objection waits for the council.
    record = {"month": "2026-01", "start": 0, "end": town.january[1], "published_ms": JAN_20}
    (town.data / "publicity").mkdir()
    (town.data / "publicity" / "2026-01.json").write_text(json.dumps(record))
    assert main(["objections", "--data", data, "--csv"]) == 0
    lines = capsys.readouterr().out.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("award,account,rule")
    assert lines[1].startswith(f"{target},dgc-0004,epidemic-duty,1,2026-01-31,2026-01,{objection},")
    assert lines[1].endswith("window closed 2026-01-27: for the council")
    with Log.open(town.data) as log:
        town.town.now_ms += 86_400_000
        log.append([town.town.reverse(target)], now_ms=town.town.now_ms)
    assert main(["objections", "--data", data, "--month", "2026-01"]) == 0
    assert "No open objections to awards recorded in 2026-01." in capsys.readouterr().out


def test_a_bad_month_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    town = build(tmp_path / "data")
    assert main(["objections", "--data", str(town.data), "--month", "Jan"]) == 2
    assert "YYYY-MM" in capsys.readouterr().err
